package nanochat4j.tensor.cuda;

import java.lang.ref.Cleaner;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongConsumer;
import nanochat4j.tensor.Backend;

/**
 * The caching allocator behind {@link CudaContext}: device blocks in size buckets, reused instead of going back to
 * the driver, because cuMemAlloc/cuMemFree synchronize the device and cost far more than a kernel.
 *
 * <p>A block comes back in one of two ways, whichever is first, and only once:
 * <ul>
 *   <li>at once, when its owner is done with it ({@link Block#recycle}): the autograd tape, through the
 *       {@code Recycler}, as its backward pass drops each activation and gradient, and the backend for its own
 *       temporaries (bf16 copies of activations, the loss's logits chunk). So a training step reuses the memory of the
 *       previous layer's activations rather than taking new memory until a GC runs, and its peak is its live set;</li>
 *   <li>when its owner becomes unreachable (a {@link Cleaner}): every other tensor.</li>
 * </ul>
 * Reuse needs no synchronization with the device because every kernel, copy and cuBLAS call of a context goes to
 * one stream: work queued later on that stream runs after the work that last read the block.
 */
final class DeviceMemoryPool {
    private static final Cleaner CLEANER = Cleaner.create();

    private final Map<Long, ArrayDeque<Long>> buckets = new HashMap<>();
    /** Blocks handed back (possibly by the Cleaner's thread) and not yet sorted into their bucket. */
    private final ConcurrentLinkedQueue<long[]> returned = new ConcurrentLinkedQueue<>();
    private long pooledBytes;
    /** Bytes of blocks owned by tensors now (given back from any thread: atomic), and the most so far. */
    private final AtomicLong inUse = new AtomicLong(), peakInUse = new AtomicLong();
    /** Bytes taken from the driver and not freed (in use + pooled), the most so far, and full-device flushes. */
    private long reserved, peakReserved, flushes;

    /** A block owned by {@code owner}: back to the pool on {@link Block#recycle} or when the owner is unreachable. */
    final class Block {
        private final Cleaner.Cleanable cleanable;

        private Block(Object owner, long ptr, long size) {
            // the action must not capture the owner (or this block, which the owner holds), or it never becomes unreachable
            ConcurrentLinkedQueue<long[]> q = returned;
            AtomicLong used = inUse;
            this.cleanable = CLEANER.register(owner, () -> {
                used.addAndGet(-size);
                q.add(new long[] {ptr, size});
            });
        }

        /** Back to the pool now; a second call, or the owner's later collection, does nothing. */
        void recycle() {
            cleanable.clean();
        }
    }

    /** Pool bucket of a request: 512-byte steps up to 1 MiB, 2 MiB steps above (bounded waste, few buckets). */
    static long bucket(long bytes) {
        long b = Math.max(bytes, 1);
        long step = b <= (1L << 20) ? 512 : 2L << 20;
        return (b + step - 1) / step * step;
    }

    /** A pooled block of exactly {@code size} bytes (a {@link #bucket}), or 0 when there is none. */
    synchronized long take(long size) {
        drainReturned();
        ArrayDeque<Long> q = buckets.get(size);
        if (q == null || q.isEmpty()) return 0;
        pooledBytes -= size;
        return q.pop();
    }

    /** Ties {@code ptr} (size bytes, from {@link #take} or the driver) to {@code owner}. */
    Block track(Object owner, long ptr, long size) {
        peakInUse.accumulateAndGet(inUse.addAndGet(size), Math::max);
        return new Block(owner, ptr, size);
    }

    /** A block of {@code size} bytes came from the driver (cuMemAlloc). */
    synchronized void reserved(long size) {
        reserved += size;
        peakReserved = Math.max(peakReserved, reserved);
    }

    /** Hands every pooled block to {@code free} (the caller has waited for the stream) and empties the pool. */
    synchronized void freeAll(LongConsumer free) {
        drainReturned();
        for (ArrayDeque<Long> q : buckets.values()) for (long p : q) free.accept(p);
        buckets.clear();
        reserved -= pooledBytes;
        pooledBytes = 0;
    }

    /** A full device made the context hand the pool back and collect dead tensors. */
    synchronized void flushed() {
        flushes++;
    }

    /** What the pool accounts for now and at its peaks. */
    synchronized Backend.DeviceMemory memory() {
        drainReturned();
        return new Backend.DeviceMemory(inUse.get(), peakInUse.get(), reserved, peakReserved, flushes);
    }

    /** Starts the peaks over from now: what one measured run (infer-bench's batch sizes) needed at most. */
    synchronized void resetPeaks() {
        drainReturned();
        peakInUse.set(inUse.get());
        peakReserved = reserved;
    }

    /** Bytes held in the pool (given back, not yet reused or freed). */
    synchronized long pooledBytes() {
        drainReturned();
        return pooledBytes;
    }

    private void drainReturned() {
        for (long[] r; (r = returned.poll()) != null; ) {
            buckets.computeIfAbsent(r[1], k -> new ArrayDeque<>()).push(r[0]);
            pooledBytes += r[1];
        }
    }
}
