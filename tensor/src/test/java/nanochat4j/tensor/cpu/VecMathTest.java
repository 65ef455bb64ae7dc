package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import java.util.function.DoubleUnaryOperator;
import jdk.incubator.vector.FloatVector;
import org.junit.jupiter.api.Test;

/**
 * VecMath against float64 over sweeps of the float line (every ~1000th float bit pattern in the range that
 * matters: every binade, ~2 million points; plus the edges), and each vector function against its scalar twin bit for bit.
 */
class VecMathTest {
    private static final int L = Vec.LANES;

    /** Floats from lo to hi (same sign or crossing zero), stepping by bit patterns so every binade is covered. */
    private static float[] sweep(float lo, float hi, int step) {
        float[] out = new float[1 << 16];
        int size = 0;
        for (float x = lo; x <= hi; ) {
            if (size == out.length) out = java.util.Arrays.copyOf(out, 2 * size);
            out[size++] = x;
            int bits = Float.floatToRawIntBits(x);
            float next = x < 0 ? Float.intBitsToFloat(bits - step) : Float.intBitsToFloat(bits + step);
            if (x < 0 && next >= 0 || x < 0 && Float.isNaN(next)) next = 0f;
            else if (x == 0f) next = Float.MIN_VALUE;
            if (next <= x) break;
            x = next;
        }
        float[] edges = {0f, -0f, Float.MIN_VALUE, -Float.MIN_VALUE, Float.MIN_NORMAL, 1f, -1f,
                Float.MAX_VALUE, -Float.MAX_VALUE, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.NaN};
        float[] x = new float[(size + edges.length + L - 1) / L * L];
        System.arraycopy(out, 0, x, 0, size);
        System.arraycopy(edges, 0, x, size, edges.length);
        return x;
    }

    private interface VecFn { FloatVector apply(FloatVector v); }
    private interface ScalarFn { float apply(float x); }

    /** Worst error against the float64 reference, as ulps of the true value and absolute; vector == scalar twin. */
    private static double[] check(String name, float[] xs, VecFn vf, ScalarFn sf, DoubleUnaryOperator ref) {
        double maxUlp = 0, maxAbs = 0;
        float[] y = new float[L];
        for (int i = 0; i < xs.length; i += L) {
            vf.apply(FloatVector.fromArray(Vec.F, xs, i)).intoArray(y, 0);
            for (int j = 0; j < L; j++) {
                float x = xs[i + j], scalar = sf.apply(x);
                assertEquals(Float.floatToIntBits(scalar), Float.floatToIntBits(y[j]),
                        name + "(" + x + "): vector lane " + y[j] + " != scalar twin " + scalar);
                double r = ref.applyAsDouble(x);
                if (Double.isNaN(r)) {
                    assertTrue(Float.isNaN(scalar), name + "(" + x + ") = " + scalar + ", expected NaN");
                    continue;
                }
                if (Double.isInfinite(r) || Math.abs(r) > Float.MAX_VALUE) {
                    assertEquals((float) r, scalar, name + "(" + x + ")");
                    continue;
                }
                double err = Math.abs(scalar - r);
                maxAbs = Math.max(maxAbs, err);
                if (Math.abs(r) >= Float.MIN_NORMAL) maxUlp = Math.max(maxUlp, err / Math.ulp((float) r));
            }
        }
        return new double[] {maxUlp, maxAbs};
    }

    @Test
    void expIsWithinTwoUlpEverywhereAndMatchesItsScalarTwin() {
        double[] e = check("exp", sweep(-110f, 95f, 1009), VecMath::exp, VecMath::exp, Math::exp);
        assertTrue(e[0] <= 2.0, "exp max error " + e[0] + " ulp");
    }

    @Test
    void expNonPositiveIsExpOnItsDomain() {
        float[] swept = sweep(VecMath.EXP_NONPOSITIVE_LO, 0f, 1009), xs = new float[swept.length];
        int n = 0;
        for (float x : swept) if (x >= VecMath.EXP_NONPOSITIVE_LO && x <= 0f) xs[n++] = x; // the sweep's edges lie outside
        assertTrue(n > 100_000, "sweep of the domain too short: " + n);
        double[] e = check("expNonPositive", xs, VecMath::expNonPositive, VecMath::expNonPositive, Math::exp);
        assertTrue(e[0] <= 2.0, "expNonPositive max error " + e[0] + " ulp");
        for (float x : xs) {
            assertEquals(Float.floatToIntBits(VecMath.exp(x)), Float.floatToIntBits(VecMath.expNonPositive(x)), "x = " + x);
        }
    }

    @Test
    void expUnderflowsAndOverflowsLikeFloat() {
        assertEquals(0f, VecMath.exp(-200f));
        assertEquals(Float.POSITIVE_INFINITY, VecMath.exp(100f));
        assertEquals(1f, VecMath.exp(0f));
        assertTrue(VecMath.exp(-100f) > 0f && VecMath.exp(-100f) < Float.MIN_NORMAL, "subnormal results are kept");
        assertTrue(Float.isNaN(VecMath.exp(Float.NaN)));
    }

    @Test
    void tanhAndSigmoidAreAccurateEverywhereAndMatchTheirScalarTwins() {
        float[] xs = sweep(-30f, 30f, 613);
        double[] t = check("tanh", xs, VecMath::tanh, VecMath::tanh, Math::tanh);
        assertTrue(t[0] <= 3.0 && t[1] <= 2e-7, "tanh max error " + t[0] + " ulp, " + t[1] + " absolute");
        double[] s = check("sigmoid", xs, VecMath::sigmoid, VecMath::sigmoid, x -> 1.0 / (1.0 + Math.exp(-x)));
        assertTrue(s[0] <= 3.0 && s[1] <= 2e-7, "sigmoid max error " + s[0] + " ulp, " + s[1] + " absolute");
        assertEquals(1f, VecMath.tanh(Float.POSITIVE_INFINITY));
        assertEquals(-1f, VecMath.tanh(Float.NEGATIVE_INFINITY));
        assertEquals(0f, VecMath.tanh(-0f)); // the sign of a zero result is not kept (no consumer looks at it)
    }

    @Test
    void sumAddsLanesInTheDocumentedTreeOrder() {
        SplittableRandom rnd = new SplittableRandom(7);
        float[] x = new float[L];
        for (int round = 0; round < 1000; round++) {
            for (int i = 0; i < L; i++) x[i] = (float) ((rnd.nextDouble() - 0.5) * Math.pow(10, rnd.nextInt(-6, 7)));
            // the tree: lane i + lane i+L/2, then the halves again, down to one lane
            float[] t = x.clone();
            for (int h = L / 2; h >= 1; h /= 2) {
                for (int i = 0; i < h; i++) t[i] = t[i] + t[i + h];
            }
            assertEquals(Float.floatToIntBits(t[0]), Float.floatToIntBits(VecMath.sum(FloatVector.fromArray(Vec.F, x, 0))));
            float[] lanes = x.clone();
            assertEquals(Float.floatToIntBits(t[0]), Float.floatToIntBits(VecMath.sum(lanes)), "the array form, same tree");
            assertEquals(java.util.Arrays.toString(x), java.util.Arrays.toString(lanes), "the array form leaves its lanes as they were");
        }
    }
}
