package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import nanochat4j.tensor.Tensor;

/**
 * Test support for the kernel suites: fresh-seeded random inputs that are never zero, size picking for the
 * odd-size run ({@code -Dnanochat4j.test.sizes=odd}), tolerance checks against float64 references, and
 * central finite differences of a float64 forward.
 * Every failure message carries the seed; {@code -Dnanochat4j.test.seed=N} replays it.
 */
final class Ref {
    private Ref() {}

    static final long SEED = Long.getLong("nanochat4j.test.seed", System.nanoTime());
    static final boolean ODD = "odd".equals(System.getProperty("nanochat4j.test.sizes"));

    /** {@code normal} in the default runs, {@code odd} (primes, 1, not lane multiples) in the odd-size run. */
    static int size(int normal, int odd) {
        return ODD ? odd : normal;
    }

    static Random rng(String test) {
        return new Random(SEED ^ test.hashCode());
    }

    /** Uniform in ±[0.1·scale, scale]: random sign, never zero. */
    static float[] rand(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            float m = 0.1f + 0.9f * r.nextFloat();
            a[i] = (r.nextBoolean() ? m : -m) * scale;
        }
        return a;
    }

    /** The element of t at the multi-index idx (row-major). */
    static float at(Tensor t, int... idx) {
        int flat = 0;
        for (int d = 0; d < idx.length; d++) flat = flat * t.shape(d) + idx[d];
        return t.toFloatArray()[flat];
    }

    static Tensor randT(Random r, float scale, int... shape) {
        return Tensor.of(rand(r, Tensor.numel(shape), scale), shape);
    }

    static double[] d(float[] a) {
        double[] o = new double[a.length];
        for (int i = 0; i < a.length; i++) o[i] = a[i];
        return o;
    }

    static double[] d(Tensor t) {
        return d(t.toFloatArray());
    }

    static double maxAbs(double[] a) {
        double m = 0;
        for (double v : a) m = Math.max(m, Math.abs(v));
        return m;
    }

    /**
     * |got − ref| ≤ rtol·|ref| + atolFrac·max|ref| for every element. atolFrac covers outputs that are
     * differences of nearly equal values (a gradient element near 0) on an otherwise O(max) scale.
     */
    static void assertClose(String what, double[] ref, float[] got, double rtol, double atolFrac) {
        if (ref.length != got.length) fail(what + ": length " + got.length + " != reference " + ref.length + " (seed " + SEED + ")");
        double atol = atolFrac * maxAbs(ref);
        for (int i = 0; i < ref.length; i++) {
            double err = Math.abs(got[i] - ref[i]);
            if (!(err <= rtol * Math.abs(ref[i]) + atol)) {
                fail(String.format("%s: element %d = %.9g, reference %.9g (|err| %.3g > rtol %.1g·|ref| + atol %.3g), seed %d",
                        what, i, got[i], ref[i], err, rtol, atol, SEED));
            }
        }
    }

    static void assertClose(String what, double[] ref, Tensor got, double rtol, double atolFrac) {
        assertClose(what, ref, got.toFloatArray(), rtol, atolFrac);
    }

    static void assertClose(String what, double ref, float got, double rtol) {
        if (!(Math.abs(got - ref) <= rtol * Math.abs(ref) + 1e-30)) {
            fail(String.format("%s: %.9g, reference %.9g (rel err %.3g > %.1g), seed %d", what, got, ref,
                    Math.abs(got - ref) / Math.abs(ref), rtol, SEED));
        }
    }

    /** A float64 function of one flat input. */
    interface Fn {
        double[] apply(double[] x);
    }

    /** ∂(Σ dy·f(x))/∂x by central differences in float64 (step 1e-6·max(1,|x_i|)). */
    static double[] fdGrad(Fn f, double[] x, double[] dy) {
        double[] g = new double[x.length];
        double[] xx = x.clone();
        for (int i = 0; i < x.length; i++) {
            double h = 1e-6 * Math.max(1, Math.abs(x[i]));
            xx[i] = x[i] + h;
            double lp = dotD(dy, f.apply(xx));
            xx[i] = x[i] - h;
            double lm = dotD(dy, f.apply(xx));
            xx[i] = x[i];
            g[i] = (lp - lm) / (2 * h);
        }
        return g;
    }

    static double dotD(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }
}
