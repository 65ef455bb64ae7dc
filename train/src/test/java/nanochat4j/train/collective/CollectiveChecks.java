package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;

/**
 * The correctness battery shared by the in-process and the multi-process tests: every collective on random data of
 * awkward sizes (empty, smaller than the world, not multiples of the world size or of a frame's chunk), fp32 and
 * bf16, compared bit for bit with a serial reference that sums in the ring's documented order (segment g:
 * x[g+1] + x[g+2] + … + x[g], AVG dividing once at the end; bf16 rounding once per hop). Each rank generates every
 * rank's input from a seed, so it can compute the reference alone. The operated range sits inside a larger array
 * whose margins must stay untouched.
 */
final class CollectiveChecks {
    private CollectiveChecks() {}

    static final int CHUNK_F32 = 16352, CHUNK_BF16 = 32704; // elements per frame over IPC
    static final int[] SIZES = {0, 1, 2, 3, 5, 7, 1000, CHUNK_F32 - 1, CHUNK_F32 + 1, CHUNK_BF16 + 3, 3 * CHUNK_F32 + 7};
    private static final int MARGIN = 3;
    private static final float SENTINEL = -12345.5f;

    /** Runs every check on this rank; returns how many collectives it ran. */
    static int runAll(Collective c) {
        int ops = 0;
        for (int len : SIZES) {
            for (ReduceOp op : ReduceOp.values()) {
                allReduceF32(c, len, op);
                allReduceBf16(c, len, op);
                reduceScatterF32(c, len, op);
                reduceScatterBf16(c, len, op);
                ops += 4;
            }
            allGatherF32(c, len);
            allGatherBf16(c, len);
            ops += 2;
            for (int root = 0; root < c.worldSize(); root++) {
                broadcastF32(c, len, root);
                ops++;
            }
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

    static short[] inputBf16(int rank, int len, long salt) {
        float[] x = input(rank, len, salt);
        short[] b = new short[len];
        for (int i = 0; i < len; i++) b[i] = Payload.fromFloat(x[i]);
        return b;
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

    static short[] referenceBf16(short[][] xs, ReduceOp op) {
        int n = xs.length, len = xs[0].length;
        short[] out = new short[len];
        for (int g = 0; g < n; g++) {
            for (int i = Collective.shardStart(len, g, n); i < Collective.shardStart(len, g + 1, n); i++) {
                short acc = xs[(g + 1) % n][i];
                for (int k = 2; k <= n; k++) {
                    float a = Payload.toFloat(acc), x = Payload.toFloat(xs[(g + k) % n][i]);
                    float r = op == ReduceOp.MAX ? Math.max(a, x) : a + x;
                    if (k == n && op == ReduceOp.AVG) r /= n;
                    acc = Payload.fromFloat(r);
                }
                out[i] = acc;
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

    private static short[] embed(short[] x) {
        short[] a = new short[x.length + 2 * MARGIN];
        java.util.Arrays.fill(a, (short) 0x7abc);
        System.arraycopy(x, 0, a, MARGIN, x.length);
        return a;
    }

    private static void assertMargins(float[] a, String what) {
        for (int i = 0; i < MARGIN; i++) {
            assertEquals(SENTINEL, a[i], what + ": wrote before the range");
            assertEquals(SENTINEL, a[a.length - 1 - i], what + ": wrote after the range");
        }
    }

    private static void assertMargins(short[] a, String what) {
        for (int i = 0; i < MARGIN; i++) {
            assertEquals((short) 0x7abc, a[i], what + ": wrote before the range");
            assertEquals((short) 0x7abc, a[a.length - 1 - i], what + ": wrote after the range");
        }
    }

    private static float[][] inputs(int n, int len, long salt) {
        float[][] xs = new float[n][];
        for (int r = 0; r < n; r++) xs[r] = input(r, len, salt);
        return xs;
    }

    private static short[][] inputsBf16(int n, int len, long salt) {
        short[][] xs = new short[n][];
        for (int r = 0; r < n; r++) xs[r] = inputBf16(r, len, salt);
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

    /** With {@code shared}: the data goes through that buffer (async when the op is AVG), else a heap array. */
    static void allReduceF32(Collective c, int len, ReduceOp op, SharedFloats shared) {
        float[][] xs = inputs(c.worldSize(), len, 1 + op.ordinal());
        float[] a = embed(xs[c.rank()]);
        run(shared, a, () -> c.allReduce(a, MARGIN, len, op), () -> {
            if (op == ReduceOp.AVG) c.allReduceAsync(shared, MARGIN, len, op).await();
            else c.allReduce(shared, MARGIN, len, op);
        });
        String what = "allReduce fp32 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(reference(xs, op), java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }

    static void allReduceBf16(Collective c, int len, ReduceOp op) {
        short[][] xs = inputsBf16(c.worldSize(), len, 11 + op.ordinal());
        short[] a = embed(xs[c.rank()]);
        c.allReduce(a, MARGIN, len, op);
        String what = "allReduce bf16 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize();
        assertArrayEquals(referenceBf16(xs, op), java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }

    static void reduceScatterF32(Collective c, int len, ReduceOp op) {
        reduceScatterF32(c, len, op, null);
    }

    static void reduceScatterF32(Collective c, int len, ReduceOp op, SharedFloats shared) {
        float[][] xs = inputs(c.worldSize(), len, 21 + op.ordinal());
        float[] a = embed(xs[c.rank()]);
        run(shared, a, () -> c.reduceScatter(a, MARGIN, len, op), () -> {
            if (op == ReduceOp.AVG) c.reduceScatterAsync(shared, MARGIN, len, op).await();
            else c.reduceScatter(shared, MARGIN, len, op);
        });
        int s = c.shardStart(len), e = s + c.shardLength(len);
        String what = "reduceScatter fp32 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(java.util.Arrays.copyOfRange(reference(xs, op), s, e),
                java.util.Arrays.copyOfRange(a, MARGIN + s, MARGIN + e), what);
        assertMargins(a, what);
    }

    static void reduceScatterBf16(Collective c, int len, ReduceOp op) {
        short[][] xs = inputsBf16(c.worldSize(), len, 31 + op.ordinal());
        short[] a = embed(xs[c.rank()]);
        c.reduceScatter(a, MARGIN, len, op);
        int s = c.shardStart(len), e = s + c.shardLength(len);
        String what = "reduceScatter bf16 " + op + " of " + len + " on rank " + c.rank() + "/" + c.worldSize();
        assertArrayEquals(java.util.Arrays.copyOfRange(referenceBf16(xs, op), s, e),
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
        int s = c.shardStart(len), e = s + c.shardLength(len);
        System.arraycopy(full, s, a, MARGIN + s, e - s);
        run(shared, a, () -> c.allGather(a, MARGIN, len), () -> c.allGatherAsync(shared, MARGIN, len).await());
        String what = "allGather fp32 of " + len + " on rank " + c.rank() + "/" + c.worldSize() + label(shared);
        assertArrayEquals(full, java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }

    static void allGatherBf16(Collective c, int len) {
        short[] full = inputBf16(98, len, 42);
        short[] a = embed(new short[len]);
        int s = c.shardStart(len), e = s + c.shardLength(len);
        System.arraycopy(full, s, a, MARGIN + s, e - s);
        c.allGather(a, MARGIN, len);
        String what = "allGather bf16 of " + len + " on rank " + c.rank() + "/" + c.worldSize();
        assertArrayEquals(full, java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }

    static void broadcastF32(Collective c, int len, int root) {
        float[] x = input(root, len, 51);
        float[] a = embed(c.rank() == root ? x : new float[len]);
        c.broadcast(a, MARGIN, len, root);
        String what = "broadcast fp32 of " + len + " from " + root + " on rank " + c.rank() + "/" + c.worldSize();
        assertArrayEquals(x, java.util.Arrays.copyOfRange(a, MARGIN, MARGIN + len), what);
        assertMargins(a, what);
    }
}
