package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * What the backend keeps of uploaded ids, on stand-in storages (no GPU needed): which an embedding may take unchecked,
 * the ignore-index count of a loss's targets, and the segments of a deterministic scatter, sorted once per batch.
 */
class UploadedIdsTest {
    /** Device memory in name only: what is kept looks at identity, never at the bytes. */
    private static final class FakeStorage implements DeviceStorage {
        @Override public Device device() { return Device.CUDA; }
        @Override public long address() { return 0; }
        @Override public long bytes() { return 64; }
        @Override public void copyToHost(long byteOffset, MemorySegment dst, long n) { throw new UnsupportedOperationException(); }
        @Override public void copyFromHost(MemorySegment src, long byteOffset, long n) { throw new UnsupportedOperationException(); }
        @Override public void copyFromDevice(DeviceStorage src, long srcOffset, long dstOffset, long n) { throw new UnsupportedOperationException(); }
        @Override public DeviceStorage allocateLike(long n) { return new FakeStorage(); }
    }

    @Test
    void idsKnownInRangeSkipTheCheckUntilTheStorageIsWritten() {
        UploadedIds r = new UploadedIds();
        FakeStorage s = new FakeStorage(), other = new FakeStorage(), empty = new FakeStorage();
        r.remember(s, new int[] {5, 0, 99, 42});
        assertTrue(r.within(s, 100), "ids 0..99 in a table of 100 rows");
        assertFalse(r.within(s, 99), "id 99 is outside a table of 99 rows: the device check runs and names it");
        assertFalse(r.within(other, 1000), "ids never seen going up: checked on the device");
        assertFalse(r.within(null, 1000));
        r.remember(empty, new int[0]);
        assertFalse(r.within(empty, 1000), "nothing recorded for no ids");
        r.remember(other, new int[] {3, -1});
        assertFalse(r.within(other, 1000), "a negative id (e.g. an ignore index) is never taken unchecked");
        r.forget(s);
        assertFalse(r.within(s, 100), "written in place since: unknown again");
        r.forget(null);
    }

    /** A stand-in device tensor over {@code s}: the ids' window is its offset and size; the bytes are never read. */
    private static Tensor on(FakeStorage s, int offset, int... shape) {
        return Tensor.uninitializedOn(DType.I32, s, Tensor.numel(shape) + offset).slice(offset, offset + Tensor.numel(shape)).reshape(shape);
    }

    @Test
    void ignoredTargetsAreCountedOnTheHostWhenTheyWentUpThroughTheBackend() {
        UploadedIds r = new UploadedIds();
        FakeStorage s = new FakeStorage();
        r.remember(s, new int[] {4, -1, 7, -1, -1, 2});
        assertEquals(3, r.count(on(s, 0, 6), -1));
        assertEquals(2, r.count(on(s, 3, 2), -1), "a view counts its own window (ids 3 and 4)");
        assertEquals(0, r.count(on(s, 5, 1), -1));
        assertEquals(-1, r.count(on(new FakeStorage(), 0, 6), -1), "unknown ids: the device counts");
        r.forget(s);
        assertEquals(-1, r.count(on(s, 0, 6), -1));
    }

    @Test
    void idsAreSortedIntoSegmentsOncePerBatchInPositionOrder() {
        int[] ids = {5, 0, 5, 3, 0, 5, 9};
        int[] packed = UploadedIds.sortIntoSegments(ids);
        // perm: id 0 at 1, 4; id 3 at 3; id 5 at 0, 2, 5; id 9 at 6 | starts 0 2 3 6 7 | ids 0 3 5 9
        assertArrayEquals(new int[] {1, 4, 3, 0, 2, 5, 6, 0, 2, 3, 6, 7, 0, 3, 5, 9}, packed);
        UploadedIds r = new UploadedIds();
        FakeStorage s = new FakeStorage();
        r.remember(s, ids.clone());
        int[] uploads = {0};
        UploadedIds.Segments a = r.segments(on(s, 0, 7), p -> {
            uploads[0]++;
            return Tensor.ofInts(p);
        });
        assertEquals(4, a.count());
        assertArrayEquals(packed, a.packed().toIntArray());
        assertSame(a, r.segments(on(s, 0, 1, 7), p -> Tensor.ofInts(p)), "the same batch (any shape): sorted and uploaded once");
        assertEquals(1, uploads[0]);
        UploadedIds.Segments tail = r.segments(on(s, 4, 3), p -> Tensor.ofInts(p));
        assertArrayEquals(UploadedIds.sortIntoSegments(new int[] {0, 5, 9}), tail.packed().toIntArray(), "a window of the batch");
        r.forget(s);
        assertEquals(-1, r.count(on(s, 0, 7), 1), "forgotten: unknown again");
    }
}
