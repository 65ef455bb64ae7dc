package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import nanochat4j.tensor.Backend;
import org.junit.jupiter.api.Test;

/** The caching allocator's bookkeeping, with made-up device addresses (no GPU needed). */
class DeviceMemoryPoolTest {

    @Test
    void bucketsRoundUpInBoundedSteps() {
        assertEquals(512, DeviceMemoryPool.bucket(0));
        assertEquals(512, DeviceMemoryPool.bucket(1));
        assertEquals(1024, DeviceMemoryPool.bucket(513));
        assertEquals(1L << 20, DeviceMemoryPool.bucket(1L << 20));
        assertEquals(2L << 20, DeviceMemoryPool.bucket((1L << 20) + 1));
        assertEquals(4L << 20, DeviceMemoryPool.bucket((2L << 20) + 1));
    }

    @Test
    void aRecycledBlockIsReusedAtOnceForItsBucketOnly() {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        Object owner = new Object();
        DeviceMemoryPool.Block b = pool.track(owner, 0x1000, 4096);
        assertEquals(0, pool.take(4096), "nothing pooled before the owner is done");
        b.recycle();
        assertEquals(4096, pool.pooledBytes());
        assertEquals(0, pool.take(8192), "another bucket");
        assertEquals(0x1000, pool.take(4096));
        assertEquals(0, pool.take(4096), "taken once");
        assertEquals(0, pool.pooledBytes());
        java.lang.ref.Reference.reachabilityFence(owner); // not collected before here: only recycle() returned it
    }

    /** A block recycled by the tape and later collected with its tensor must not enter the pool twice (two owners, one block). */
    /** infer-bench's per-batch-size peak: after a reset the peaks are what is in use now, then grow again. */
    @Test
    void resetPeaksStartsThePeaksOverFromWhatIsInUse() {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        Object a = new Object(), c = new Object();
        pool.reserved(4096 + 8192);
        pool.track(a, 0x1000, 4096);
        DeviceMemoryPool.Block big = pool.track(c, 0x3000, 8192);
        big.recycle();
        assertEquals(4096 + 8192, pool.memory().peakInUse());
        pool.resetPeaks();
        assertEquals(4096, pool.memory().peakInUse());
        assertEquals(4096 + 8192, pool.memory().peakReserved(), "still reserved: the pool holds the recycled block");
        Object d = new Object();
        pool.track(d, 0x5000, 512);
        assertEquals(4096 + 512, pool.memory().peakInUse());
        java.lang.ref.Reference.reachabilityFence(a);
        java.lang.ref.Reference.reachabilityFence(d);
    }

    @Test
    void aBlockRecycledAndThenCollectedIsPooledOnce() throws InterruptedException {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        DeviceMemoryPool.Block b = pool.track(new Object(), 0x2000, 512);
        pool.track(new Object(), 0x9000, 1024); // a sentinel collected with it: once its block is back, the Cleaner has run
        b.recycle();
        b.recycle();
        assertEquals(0x9000, awaitCollected(pool, 1024));
        Thread.sleep(50);
        assertEquals(0x2000, pool.take(512));
        assertEquals(0, pool.take(512), "the same address handed out twice would give two tensors one memory");
    }

    @Test
    void anUnreachableOwnersBlockComesBackWithoutARecycle() throws InterruptedException {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        pool.track(new Object(), 0x3000, 1024);
        assertEquals(0x3000, awaitCollected(pool, 1024), "the Cleaner returned the block of a collected owner");
    }

    @Test
    void freeAllHandsEachPooledBlockToTheDriverOnce() {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        List<Object> owners = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Object o = new Object();
            owners.add(o);
            pool.track(o, 0x10000L * (i + 1), 512 * (i + 1)).recycle();
        }
        List<Long> freed = new ArrayList<>();
        pool.freeAll(freed::add);
        freed.sort(null);
        assertEquals(List.of(0x10000L, 0x20000L, 0x30000L), freed);
        assertEquals(0, pool.pooledBytes());
        assertEquals(0, pool.take(512));
        assertEquals(3, owners.size());
    }

    /** In tensors now and at the peak; from the driver now and at the peak; flushes. */
    @Test
    void itAccountsForTheBytesInTensorsAndFromTheDriver() {
        DeviceMemoryPool pool = new DeviceMemoryPool();
        Object o1 = new Object(), o2 = new Object(), o3 = new Object();
        pool.reserved(4096);
        DeviceMemoryPool.Block a = pool.track(o1, 0x1000, 4096);
        pool.reserved(1024);
        DeviceMemoryPool.Block b = pool.track(o2, 0x2000, 1024);
        a.recycle();
        assertEquals(new Backend.DeviceMemory(1024, 5120, 5120, 5120, 0), pool.memory());
        assertEquals(0x1000, pool.take(4096));
        pool.track(o3, 0x1000, 4096);   // the pooled block again: no new driver bytes
        b.recycle();
        assertEquals(new Backend.DeviceMemory(4096, 5120, 5120, 5120, 0), pool.memory());
        pool.flushed();
        pool.freeAll(ptr -> {});   // the pooled 1024 go back to the driver
        assertEquals(new Backend.DeviceMemory(4096, 5120, 4096, 5120, 1), pool.memory());
        java.lang.ref.Reference.reachabilityFence(List.of(o1, o2, o3));
    }

    /** The block of {@code size} the Cleaner returns once its owner is collected (0 after 10 s). */
    private static long awaitCollected(DeviceMemoryPool pool, long size) throws InterruptedException {
        long deadline = System.nanoTime() + 10_000_000_000L;
        long p = 0;
        while (p == 0 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(10);
            p = pool.take(size);
        }
        return p;
    }
}
