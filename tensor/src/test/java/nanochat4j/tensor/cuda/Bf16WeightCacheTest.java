package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicInteger;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** The bf16 weight-copy cache's bookkeeping, on a stand-in device storage (no GPU needed). */
class Bf16WeightCacheTest {
    /** Device memory in name only: the cache looks at identity, offset and shape, never at the bytes. */
    private record FakeStorage(long bytes) implements DeviceStorage {
        @Override public Device device() { return Device.CUDA; }
        @Override public long address() { return 0; }
        @Override public void copyToHost(long byteOffset, MemorySegment dst, long n) { throw new UnsupportedOperationException(); }
        @Override public void copyFromHost(MemorySegment src, long byteOffset, long n) { throw new UnsupportedOperationException(); }
        @Override public void copyFromDevice(DeviceStorage src, long srcOffset, long dstOffset, long n) { throw new UnsupportedOperationException(); }
        @Override public DeviceStorage allocateLike(long n) { return new FakeStorage(n); }

        @Override public boolean equals(Object o) { return this == o; } // storages are distinct memory even at equal sizes

        @Override public int hashCode() { return System.identityHashCode(this); }
    }

    @Test
    void castOncePerWeightViewUntilForgotten() {
        Bf16WeightCache cache = new Bf16WeightCache();
        AtomicInteger casts = new AtomicInteger();
        FakeStorage s = new FakeStorage(4 * 64), other = new FakeStorage(4 * 64);
        Tensor w = Tensor.onDevice(DType.F32, s, 0, 8, 8);
        Tensor first = cache.get(w, t -> { casts.incrementAndGet(); return bf16(64, 8, 8); });
        Tensor again = cache.get(Tensor.onDevice(DType.F32, s, 0, 8, 8), t -> { casts.incrementAndGet(); return null; });
        assertSame(first, again, "the same storage, offset and shape: the cached copy");
        // another window of the same storage (a different view), another shape, another storage: each its own copy
        cache.get(Tensor.onDevice(DType.F32, s, 32, 4, 8), t -> { casts.incrementAndGet(); return bf16(32, 4, 8); });
        cache.get(Tensor.onDevice(DType.F32, s, 0, 64), t -> { casts.incrementAndGet(); return bf16(64, 64); });
        cache.get(Tensor.onDevice(DType.F32, other, 0, 8, 8), t -> { casts.incrementAndGet(); return bf16(64, 8, 8); });
        assertArrayEquals(new long[] {4, 1}, cache.counts());
        cache.forget(s);
        Tensor fresh = cache.get(w, t -> { casts.incrementAndGet(); return bf16(64, 8, 8); });
        assertNotSame(first, fresh, "a write into the storage makes the next use cast again");
        cache.get(Tensor.onDevice(DType.F32, other, 0, 8, 8), t -> { casts.incrementAndGet(); return null; });
        assertArrayEquals(new long[] {5, 2}, cache.counts(), "the other storage's copy survived");
        assertEquals(5, casts.get());
    }

    /** A bf16 tensor of zeros (what a cast would return; its values do not matter here). */
    private static Tensor bf16(int n, int... shape) {
        return nanochat4j.tensor.Backend.cpu().toBf16(Tensor.of(new float[n], shape));
    }
}
