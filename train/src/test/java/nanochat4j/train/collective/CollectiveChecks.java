package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;

/**
 * The correctness battery shared by the in-process and the multi-process tests: every collective on random data of
 * awkward sizes (empty, smaller than the world, not multiples of the world size or of a frame's chunk), compared
 * bit for bit with a serial reference that sums in the ring's documented order (segment g:
 * x[g+1] + x[g+2] + … + x[g], AVG dividing once at the end). Each rank generates every
 * rank's input from a seed, so it can compute the reference alone. The operated range sits inside a larger array
 * whose margins must stay untouched.
 */
final class CollectiveChecks {
    private CollectiveChecks() {}

    static final int CHUNK_F32 = 16352; // elements per frame over IPC
    static final int[] SIZES = {0, 1, 2, 3, 5, 7, 1000, CHUNK_F32 - 1, CHUNK_F32 + 1, 2 * CHUNK_F32 + 3, 3 * CHUNK_F32 + 7};
    private static final int MARGIN = 3;
    private static final float SENTINEL = -12345.5f;

    /** Runs every check on this rank; returns how many collectives it ran. */
    static int runAll(Collective c) {
        int ops = 0;
        for (int len : SIZES) {
            for (ReduceOp op : ReduceOp.values()) {
                allReduceF32(c, len, op);
                reduceScatterF32(c, len, op);
                ops += 2;
            }
            allGatherF32(c, len);
            ops++;
            c.barrier();
            ops++;
        }
        return ops;
    }

    /** Input of a rank: gaussian values of mixed scale, so the order of summation shows in the low bits. */
    static float[] input(int rank, int len, long salt) {
        Random rnd = new Random(salt * 1_000_003L + rank * 7919L + len);
        float[] x = new float[len];
        for (int i = 0; i < len; i++) x[i] = (float) (rnd.nextGaussian() * Math.pow(10, rnd.nextInt(5) - 2));
        return x;
    }

    /** The reduction of element i (in segment g) over all ranks in ring order. */
    static float[] reference(float[][] xs, ReduceOp op) {
        int n = xs.length, len = xs[0].length;
        float[] out = new float[len];
        for (int g = 0; g < n; g++) {
            for (int i = Collective.shardStart(len, g, n); i < Collective.shardStart(len, g + 1, n); i++) {
                float acc = xs[(g + 1) % n][i];
                for (int k = 2; k <= n; k++) {
                    float x = xs[(g + k) % n][i];
                    acc = op == ReduceOp.MAX ? Math.max(acc, x) : acc + x;
                }
                out[i] = op == ReduceOp.AVG ? acc / n : acc;
            }
        }
        return out;
    }

    private static float[] embed(float[] x) {
        float[] a = new float[x.length + 2 * MARGIN];
        java.util.Arrays.fill(a, SENTINEL);
        System.arraycopy(x, 0, a, MARGIN, x.length);
        return a;
    }

    private static void assertMargins(float[] a, String what) {
        for (int i = 0; i < MARGIN; i++) {
            assertEquals(SENTINEL, a[i], what + ": wrote before the range");
            assertEquals(SENTINEL, a[a.length - 1 - i], what + ": wrote after the range");
        }
    }

    private static float[][] inputs(int n, int len, long salt) {
        float[][] xs = new float[n][];
        for (int r = 0; r < n; r++) xs[r] = input(r, len, salt);
        return xs;
    }

    /** The collectives on a {@link SharedFloats} of every kind and op, sizes as {@link #SIZES}; returns the ops run. */
    static int runShared(Collective c) {
        SharedFloats b = c.sharedFloats(SIZES[SIZES.length - 1] + 2 * MARGIN);
        int ops = 0;
        for (int len : SIZES) {
            for (ReduceOp op : ReduceOp.values()) {
                allReduceF32(c, len, op, b);
                reduceScatterF32(c, len, op, b);
                ops += 2;
            }
            allGatherF32(c, len, b);
            ops++;
        }
        return ops;
    }

    static void allReduceF32(Collective c, int len, ReduceOp op) {
        allReduceF32(c, len, op, null);
    }

    /** Runs onHeap on the array a, or copies a into shared, runs onShared and copies the result back into a. */
    private static void run(SharedFloats shared, float[] a, Runnable onHeap, Runnable onShared) {
        if (shared == null) {
            onHeap.run();
            return;
        }
        shared.copyFrom(a, 0, 0, a.length);
        onShared.run();
        shared.copyTo(0, a, 0, a.length);
    }

    private static String label(SharedFloats shared) {
        return shared == null ? "" : " (shared buffer)";
    }

    /** Start of this rank's shard (next = 0) or of the next rank's (next = 1) in a range of len elements. */
    static int shardStart(Collective c, int len, int next) {
        return Collective.shardStart(len, c.rank() + next, c.worldSize());
    }

    /** With {@code shared}: the data goes through that buffer, else a heap array. */
    static void allReduceF32(Collective c, int len, ReduceOp op, SharedFloats shared) {
        float[][] xs = inputs(c.worldSize(), len, 1 + op.ordinal());
        float[] a = embed(xs[c.rank()]);
        run(shared, a, () -> c.allReduce(a, MARGIN, len, op), () -> c.allReduce(shared, MARGIN, len, op));
        String what = "allReduce fp32 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(reference(xs, op), java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }

    static void reduceScatterF32(Collective c, int len, ReduceOp op) {
        reduceScatterF32(c, len, op, null);
    }

    static void reduceScatterF32(Collective c, int len, ReduceOp op, SharedFloats shared) {
        float[][] xs = inputs(c.worldSize(), len, 21 + op.ordinal());
        float[] a = embed(xs[c.rank()]);
        run(shared, a, () -> c.reduceScatterAsync(a, MARGIN, len, op).await(),
                () -> c.reduceScatterAsync(shared, MARGIN, len, op).await());
        int s = shardStart(c, len, 0), e = shardStart(c, len, 1);
        String what = "reduceScatter fp32 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(java.util.Arrays.copyOfRange(reference(xs, op), s, e),
                java.util.Arrays.copyOfRange(a, MARGIN + s, MARGIN + e), what);
        assertMargins(a, what);
    }

    static void allGatherF32(Collective c, int len) {
        allGatherF32(c, len, null);
    }

    static void allGatherF32(Collective c, int len, SharedFloats shared) {
        float[] full = input(99, len, 41);
        float[] a = embed(new float[len]);
        java.util.Arrays.fill(a, MARGIN, MARGIN + len, Float.NaN);
        int s = shardStart(c, len, 0), e = shardStart(c, len, 1);
        System.arraycopy(full, s, a, MARGIN + s, e - s);
        run(shared, a, () -> c.allGather(a, MARGIN, len), () -> c.allGatherAsync(shared, MARGIN, len).await());
        String what = "allGather fp32 of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(full, java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }
}
