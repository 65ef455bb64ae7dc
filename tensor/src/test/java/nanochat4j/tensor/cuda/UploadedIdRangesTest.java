package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStorage;
import org.junit.jupiter.api.Test;

/** Which uploaded ids an embedding may take unchecked, on stand-in storages (no GPU needed). */
class UploadedIdRangesTest {
    /** Device memory in name only: the ranges look at identity, never at the bytes. */
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
        UploadedIdRanges r = new UploadedIdRanges();
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
}
