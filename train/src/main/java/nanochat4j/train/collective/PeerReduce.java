package nanochat4j.train.collective;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Vec;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * Collectives on {@link SharedFloats} whose ranks all share a host: every rank reads the others' buffers directly,
 * with no copy through a queue. Rank r owns segment r (the same segments as the ring, see {@link Schedule}):
 * <ol>
 * <li>each rank announces the operation on its control area (kind, offset, length; checked against the others);</li>
 * <li>reduce (all-reduce, reduce-scatter): the owner of segment g sums it over all buffers in the ring's order,
 *     x[g+1] + x[g+2] + … + x[g] (AVG divides once, at the end), {@link #CHUNK} elements at a time, into its own
 *     buffer — so the results are bit for bit those of the ring — and, for an all-reduce, writes each finished chunk
 *     into every other rank's buffer too (pushing it while it is in cache is faster than having every rank pull
 *     the other segments afterwards);</li>
 * <li>gather (all-gather): every rank copies each other segment from its owner's buffer;</li>
 * <li>each rank announces it is done, and returns when all are: until then another rank may still read or write its
 *     buffer.</li>
 * </ol>
 * An all-reduce thus moves, per rank, one read of the buffer's size and one write of it: a memcpy's worth, against
 * twice that for the ring, which has to copy through shared memory. The counters are
 * release-stored and acquire-loaded on cache lines of their own. While waiting, the ring's Aeron links are watched:
 * a dead rank, an ABORT or the job's timeout ends the wait with a {@link CollectiveException}.
 */
final class PeerReduce {
    static final int ALL_REDUCE = 1, REDUCE_SCATTER = 2, ALL_GATHER = 3;
    private static final String[] KIND_NAMES = {"", "allReduce", "reduceScatter", "allGather"};
    // control area: counters on separate cache-line pairs, then the operation's description
    private static final long ARRIVED = 0, FINISHED = 128, KIND = 256, OFF = 264, LEN = 272, OP = 280;
    private static final VarHandle LONG = ValueLayout.JAVA_LONG.varHandle();
    private static final VectorSpecies<Float> S = Vec.F;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    /** Elements reduced per pass: 64 KB, still in cache when an all-reduce pushes them to the other ranks. */
    private static final int CHUNK = 16 << 10;
    private static final long CHECK_EVERY_NS = TimeUnit.MILLISECONDS.toNanos(20);

    private final Ring ring;
    private final int rank, world;
    private final IdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
            TimeUnit.MICROSECONDS.toNanos(100));
    private long sequence;
    /** Partial sums of one chunk when more than two ranks reduce. */
    private final MemorySegment scratch = java.lang.foreign.Arena.ofAuto().allocate((long) CHUNK * Float.BYTES, 64);

    PeerReduce(Ring ring, int rank, int world) {
        this.ring = ring;
        this.rank = rank;
        this.world = world;
    }

    void run(int kind, SharedFloats b, int off, int len, ReduceOp op) {
        long k = ++sequence;
        MemorySegment mine = b.control[rank];
        mine.set(ValueLayout.JAVA_LONG, KIND, kind);
        mine.set(ValueLayout.JAVA_LONG, OFF, off);
        mine.set(ValueLayout.JAVA_LONG, LEN, len);
        mine.set(ValueLayout.JAVA_LONG, OP, op == null ? -1 : op.ordinal());
        LONG.setRelease(mine, ARRIVED, k);
        for (int p = 0; p < world; p++) {
            if (p == rank) continue;
            awaitAtLeast(b.control[p], ARRIVED, k, p, "to start shared-buffer operation #" + k);
            checkSame(b.control[p], p, k, kind, off, len, op);
        }
        int start = off + Schedule.segmentStart(len, rank, world), end = off + Schedule.segmentStart(len, rank + 1, world);
        if (kind == ALL_GATHER) gather(b, off, len);
        else reduce(b, start, end, op, kind == ALL_REDUCE);
        LONG.setRelease(mine, FINISHED, k);
        for (int p = 0; p < world; p++)
            if (p != rank) awaitAtLeast(b.control[p], FINISHED, k, p, "to finish shared-buffer operation #" + k);
    }

    /**
     * Reduces segment [start, end) over every rank's buffer into this rank's, in the ring's order, chunk by chunk:
     * partial = x[g+1] ⊕ x[g+2] ⊕ … in a scratch chunk (in cache between the passes), then out = partial ⊕ x[g],
     * since out is x[g] itself; with {@code push}, the chunk is then copied into every other rank's buffer.
     */
    private void reduce(SharedFloats b, int start, int end, ReduceOp op, boolean push) {
        MemorySegment out = b.data[rank];
        for (int c = start; c < end; c += CHUNK) {
            int n = Math.min(CHUNK, end - c);
            long at = (long) c * Float.BYTES;
            MemorySegment partial = b.data[(rank + 1) % world];
            long partialAt = at;
            for (int t = 2; t < world; t++) {
                combine(partial, partialAt, b.data[(rank + t) % world], at, scratch, 0, n, op, false);
                partial = scratch;
                partialAt = 0;
            }
            combine(partial, partialAt, out, at, out, at, n, op, op == ReduceOp.AVG);
            if (push)
                for (int p = 0; p < world; p++)
                    if (p != rank) MemorySegment.copy(out, at, b.data[p], at, (long) n * Float.BYTES);
        }
    }

    /** out = x ⊕ y over n floats at the given byte offsets (divided by the world size when {@code divide}). */
    private void combine(MemorySegment x, long xAt, MemorySegment y, long yAt, MemorySegment out, long outAt, int n,
                         ReduceOp op, boolean divide) {
        float divisor = world;
        boolean max = op == ReduceOp.MAX;
        int i = 0;
        for (int bound = S.loopBound(n); i < bound; i += S.length()) {
            long o = (long) i * Float.BYTES;
            FloatVector a = FloatVector.fromMemorySegment(S, x, xAt + o, ORDER);
            FloatVector v = FloatVector.fromMemorySegment(S, y, yAt + o, ORDER);
            FloatVector r = max ? a.max(v) : a.add(v);
            if (divide) r = r.div(divisor);
            r.intoMemorySegment(out, outAt + o, ORDER);
        }
        for (; i < n; i++) {
            long o = (long) i * Float.BYTES;
            float a = x.get(ValueLayout.JAVA_FLOAT, xAt + o), v = y.get(ValueLayout.JAVA_FLOAT, yAt + o);
            float r = max ? Math.max(a, v) : a + v;
            out.set(ValueLayout.JAVA_FLOAT, outAt + o, divide ? r / divisor : r);
        }
    }

    /** Copies every other rank's segment (its own contribution, in place since it arrived) from its buffer. */
    private void gather(SharedFloats b, int off, int len) {
        for (int s = 1; s < world; s++) {
            int p = (rank + s) % world;
            long start = off + Schedule.segmentStart(len, p, world), end = off + Schedule.segmentStart(len, p + 1, world);
            MemorySegment.copy(b.data[p], start * Float.BYTES, b.data[rank], start * Float.BYTES, (end - start) * Float.BYTES);
        }
    }

    private void awaitAtLeast(MemorySegment control, long counter, long k, int p, String what) {
        long lastProgress = System.nanoTime(), lastCheck = lastProgress;
        while ((long) LONG.getAcquire(control, counter) < k) {
            idle.idle();
            long now = System.nanoTime();
            if (now - lastCheck > CHECK_EVERY_NS) {
                lastCheck = now;
                ring.checkAlive(lastProgress, "waiting for rank " + p + " " + what);
            }
        }
        idle.reset();
    }

    private void checkSame(MemorySegment theirs, int p, long k, int kind, int off, int len, ReduceOp op) {
        long tk = theirs.get(ValueLayout.JAVA_LONG, KIND), to = theirs.get(ValueLayout.JAVA_LONG, OFF);
        long tl = theirs.get(ValueLayout.JAVA_LONG, LEN), top = theirs.get(ValueLayout.JAVA_LONG, OP);
        if (tk == kind && to == off && tl == len && top == (op == null ? -1 : op.ordinal())) return;
        String why = "rank " + rank + ": shared-buffer operation #" + k + " is " + describe(kind, off, len, op == null ? -1 : op.ordinal())
                + " here but " + describe(tk, to, tl, top) + " on rank " + p + ": ranks called different collectives or sizes";
        ring.abort(why);
        throw new CollectiveException(why);
    }

    private static String describe(long kind, long off, long len, long op) {
        String name = kind > 0 && kind < KIND_NAMES.length ? KIND_NAMES[(int) kind] : "operation " + kind;
        return name + (op >= 0 ? "(" + ReduceOp.values()[(int) op] + ")" : "") + " of " + len + " elements at " + off;
    }
}
