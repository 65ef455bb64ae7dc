package nanochat4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import org.junit.jupiter.api.Test;

/** Tensors over device memory, with a host-memory stand-in for the device (no GPU needed). */
class DeviceTensorTest {

    /** "Device" memory that is really an off-heap segment: exercises Tensor's device paths. */
    static final class FakeStorage implements DeviceStorage {
        final MemorySegment mem;

        FakeStorage(long bytes) {
            mem = Arena.ofAuto().allocate(Math.max(1, bytes), 8);
        }

        @Override public Device device() { return Device.CUDA; }

        @Override public long address() { return mem.address(); }

        @Override public long bytes() { return mem.byteSize(); }

        @Override public void copyToHost(long off, MemorySegment dst, long n) { MemorySegment.copy(mem, off, dst, 0, n); }

        @Override public void copyFromHost(MemorySegment src, long off, long n) { MemorySegment.copy(src, 0, mem, off, n); }

        @Override public void copyFromDevice(DeviceStorage src, long so, long doff, long n) {
            MemorySegment.copy(((FakeStorage) src).mem, so, mem, doff, n);
        }

        @Override public DeviceStorage allocateLike(long n) { return new FakeStorage(n); }

        int recycled;

        @Override public void recycle() { recycled++; }
    }

    /** The autograd tape's give-backs reach device memory: once, inside a scope, for op outputs only. */
    @Test
    void theRecyclerHandsAnOpOutputsDeviceMemoryBackOnceAndNothingElse() {
        FakeStorage out = new FakeStorage(24), param = new FakeStorage(24), viewed = new FakeStorage(24);
        Tensor y = Tensor.uninitializedOn(DType.F32, out, 2, 3);
        Tensor w = Tensor.onDevice(DType.F32, param, 0, 2, 3);
        Tensor v = Tensor.uninitializedOn(DType.F32, viewed, 2, 3).reshape(6);
        assertTrue(!Recycler.give(y), "outside a scope nothing goes back");
        try (var s = Recycler.open()) {
            assertTrue(Recycler.give(y));
            assertTrue(!Recycler.give(y), "given back already");
            assertTrue(!Recycler.give(w) && !Recycler.giveStorage(w), "memory the tensor does not own alone (a parameter's upload)");
            assertTrue(!Recycler.give(v), "a view is not its storage's owner");
            assertTrue(Recycler.giveStorage(v), "the tape frees what a dropped view views");
            assertTrue(!Recycler.giveStorage(v));
        }
        assertEquals(1, out.recycled);
        assertEquals(0, param.recycled);
        assertEquals(1, viewed.recycled);
        assertEquals(0, Recycler.pooledCount(), "device memory never enters the heap pool");
    }

    @Test
    void roundTripViewsAndCopies() {
        Tensor host = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor dev = host.toDevice(new FakeStorage(24));
        assertEquals(Device.CUDA, dev.device());
        assertTrue(dev.isOnDevice());
        assertArrayEquals(host.toFloatArray(), dev.toFloatArray());
        Tensor row = dev.select(1);
        assertEquals(Device.CUDA, row.device());
        assertEquals(dev.deviceAddress() + 12, row.deviceAddress());
        assertArrayEquals(new float[] {4, 5, 6}, row.toCpu().toFloatArray());
        assertEquals(5f, row.getFlat(1));
        assertEquals(6f, dev.reshape(6).slice(5, 6).item());
        Tensor copy = dev.copy();
        assertTrue(copy.isOnDevice());
        dev.copyFrom(Tensor.of(new float[] {9, 9, 9, 9, 9, 9}, 2, 3));
        assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6}, copy.toFloatArray(), "copy() owns its memory");
        Tensor back = Tensor.zeros(2, 3);
        back.copyFrom(dev);
        assertEquals(9f, back.getFlat(4));
        row.copyFrom(copy.select(0));
        assertArrayEquals(new float[] {9, 9, 9, 1, 2, 3}, dev.toFloatArray(), "device-to-device into a view");
        assertSame(host, host.toCpu());
        Tensor ids = Tensor.ofInts(new int[] {7, -1}).toDevice(new FakeStorage(8));
        assertArrayEquals(new int[] {7, -1}, ids.toIntArray());
        assertTrue(dev.toString().contains("CUDA"));
    }

    @Test
    void heapAccessorsOfADeviceTensorNameTheDevice() {
        Tensor dev = Tensor.of(new float[] {1, 2}).toDevice(new FakeStorage(8));
        IllegalStateException e = assertThrows(IllegalStateException.class, dev::floats);
        assertTrue(e.getMessage().contains("CUDA") && e.getMessage().contains("toCpu()"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> dev.fill(0f));
        assertThrows(IllegalStateException.class, Tensor.zeros(1)::deviceStorage);
        assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[] {1, 2, 3}).toDevice(new FakeStorage(8)));
    }

    @Test
    void backendOfATensorIsItsDevicesBackend() {
        assertSame(Backend.cpu(), Backend.of(Tensor.zeros(2)));
        assertSame(Backend.cpu(), Backend.forDevice(Device.CPU));
        Tensor dev = Tensor.of(new float[] {1}).toDevice(new FakeStorage(4));
        if (nanochat4j.tensor.cuda.CudaContext.unavailableReason() != null) {
            RuntimeException e = assertThrows(nanochat4j.tensor.cuda.CudaUnavailableException.class, () -> Backend.of(dev));
            assertTrue(e.getMessage().startsWith("CUDA"), e.getMessage());
        } else {
            assertEquals(Device.CUDA, Backend.of(dev).device());
        }
    }
}
