package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Reductions: whole-tensor sum / max / dot, and per-row (last dim) norms and argmax, and one row's softmax. Sums
 * accumulate in fp32 vector lanes over blocks of {@link #BLOCK} elements and in double across blocks, so error does
 * not grow with the tensor size. The public forms ({@link #dot}, {@link #softmaxRow}) run on the calling thread, for
 * kernels that schedule their own threads.
 */
public final class Reduce {
    private Reduce() {}

    private static final VectorSpecies<Float> S = Vec.F;
    private static final int BLOCK = 1024;

    /** Σ x[o..o+n) (serial; a building block of the kernels). */
    static float sum(float[] x, int o, int n) {
        return (float) sumD(x, o, n);
    }

    static double sumD(float[] x, int o, int n) {
        double total = 0;
        for (int b = 0; b < n; b += BLOCK) {
            int e = Math.min(n, b + BLOCK), i = b, ub = b + S.loopBound(e - b);
            var acc = FloatVector.zero(S);
            for (; i < ub; i += S.length()) acc = acc.add(FloatVector.fromArray(S, x, o + i));
            float t = VecMath.sum(acc);
            for (; i < e; i++) t += x[o + i];
            total += t;
        }
        return total;
    }

    /** Σ a·b over n elements (serial), rounded to fp32. */
    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        return (float) dotD(a, ao, b, bo, n);
    }

    /** Σ a·b over n elements (serial). */
    static double dotD(float[] a, int ao, float[] b, int bo, int n) {
        double total = 0;
        for (int s = 0; s < n; s += BLOCK) {
            int e = Math.min(n, s + BLOCK), i = s, ub = s + S.loopBound(e - s);
            var acc = FloatVector.zero(S);
            for (; i < ub; i += S.length()) {
                acc = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), acc);
            }
            float t = VecMath.sum(acc);
            for (; i < e; i++) t += a[ao + i] * b[bo + i];
            total += t;
        }
        return total;
    }

    /**
     * Σ a·b, split over the pool by BLOCKs, whose double partials are then added in order: the same value as
     * {@link #dotD} whatever the thread count (an accumulator shared by threads would add in arrival order).
     */
    static double dotParallel(float[] a, int ao, float[] b, int bo, int n) {
        double[] part = new double[(n + BLOCK - 1) / BLOCK];
        Parallel.forRange(part.length, Math.max(1, Elementwise.GRAIN / BLOCK), (s, e) -> {
            for (int i = s; i < e; i++) part[i] = dotD(a, ao + i * BLOCK, b, bo + i * BLOCK, Math.min(BLOCK, n - i * BLOCK));
        });
        return inOrder(part);
    }

    /** Σ x, split over the pool like {@link #dotParallel}: the same value as {@link #sumD}. */
    static double sumParallel(float[] x, int o, int n) {
        double[] part = new double[(n + BLOCK - 1) / BLOCK];
        Parallel.forRange(part.length, Math.max(1, Elementwise.GRAIN / BLOCK), (s, e) -> {
            for (int i = s; i < e; i++) part[i] = sumD(x, o + i * BLOCK, Math.min(BLOCK, n - i * BLOCK));
        });
        return inOrder(part);
    }

    private static double inOrder(double[] part) {
        double total = 0;
        for (double p : part) total += p;
        return total;
    }

    /** max of x (NaN if any element is NaN); −inf for n = 0. */
    static float max(float[] x, int o, int n) {
        float m = Float.NEGATIVE_INFINITY;
        int i = 0, ub = S.loopBound(n);
        // Lane maxima in a small array rather than a vector carried around the loop: C2 boxed such a vector on
        // every iteration where the reduction after the loop was devirtualized late (see CrossEntropy.cappedE).
        float[] lanes = new float[S.length()];
        java.util.Arrays.fill(lanes, Float.NEGATIVE_INFINITY);
        for (; i < ub; i += S.length()) {
            FloatVector.fromArray(S, lanes, 0).max(FloatVector.fromArray(S, x, o + i)).intoArray(lanes, 0);
        }
        for (float l : lanes) m = Math.max(m, l);
        for (; i < n; i++) m = Math.max(m, x[o + i]);
        return m;
    }

    /** out[r] = sqrt(Σ_j x[r, j]²) for rows × n. */
    static void rowNorms(float[] x, int xo, float[] out, int oo, int rows, int n) {
        Parallel.forRange(rows, Math.max(1, Elementwise.GRAIN / Math.max(n, 1)), (s, e) -> {
            for (int r = s; r < e; r++) out[oo + r] = (float) Math.sqrt(dotD(x, xo + r * n, x, xo + r * n, n));
        });
    }

    /**
     * out[r] = index of the first maximum of row r (NaN counts as the maximum, as in torch): a vector max, then
     * a scan for the first element equal to it.
     */
    static void argmax(float[] x, int xo, int[] out, int oo, int rows, int n) {
        Parallel.forRange(rows, Math.max(1, Elementwise.GRAIN / Math.max(n, 1)), (s, e) -> {
            for (int r = s; r < e; r++) {
                int base = xo + r * n;
                float m = max(x, base, n);
                int j = 0;
                if (Float.isNaN(m)) {
                    while (!Float.isNaN(x[base + j])) j++;
                } else {
                    while (x[base + j] != m) j++;
                }
                out[oo + r] = j;
            }
        });
    }

    /** softmax of one row of n (in place when y, yb are x, xb). */
    public static void softmaxRow(float[] x, int xb, float[] y, int yb, int n) {
        float m = max(x, xb, n);
        var mv = FloatVector.broadcast(S, m);
        float[] acc = new float[S.length()];                    // lane sums in memory: see max
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            var ev = VecMath.exp(FloatVector.fromArray(S, x, xb + i).sub(mv));
            ev.intoArray(y, yb + i);
            FloatVector.fromArray(S, acc, 0).add(ev).intoArray(acc, 0);
        }
        float sum = VecMath.sum(acc);
        for (; i < n; i++) { float ev = VecMath.exp(x[xb + i] - m); y[yb + i] = ev; sum += ev; }
        float inv = 1f / sum;
        i = 0;
        for (; i < ub; i += S.length()) FloatVector.fromArray(S, y, yb + i).mul(inv).intoArray(y, yb + i);
        for (; i < n; i++) y[yb + i] *= inv;
    }
}
