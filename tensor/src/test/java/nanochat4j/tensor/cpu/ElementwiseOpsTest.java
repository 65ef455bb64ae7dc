package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.fdGrad;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.DoubleUnaryOperator;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.OpChecks;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Activations, softcap, lerp/clamp and the broadcasting arithmetic against float64 references (rel 1e-5), and
 * every backward against finite differences of the float64 forward. Sizes cover the vector body and the tail;
 * one size crosses the parallel split.
 */
class ElementwiseOpsTest {
    private final Backend be = Backend.cpu();
    private final int n = size(1000, 997);
    private final int big = size(Elementwise.GRAIN * 2 + 40, Elementwise.GRAIN * 2 + 1);

    private static double[] map(double[] x, DoubleUnaryOperator f) {
        double[] y = new double[x.length];
        for (int i = 0; i < x.length; i++) y[i] = f.applyAsDouble(x[i]);
        return y;
    }

    private static double relu2(double x) { return x > 0 ? x * x : 0; }
    private static double sigmoid(double x) { return 1 / (1 + Math.exp(-x)); }
    private static double softcap(double x) { return 15 * Math.tanh(x / 15); }

    @Test
    void activationsMatchFloat64() {
        Random r = Ref.rng("activations");
        for (int len : new int[] {1, n, big}) {
            Tensor x = randT(r, 4f, len);
            double[] xd = d(x);
            assertClose("relu2 n=" + len, map(xd, ElementwiseOpsTest::relu2), be.relu2(x), 1e-5, 0);
            assertClose("sigmoid n=" + len, map(xd, ElementwiseOpsTest::sigmoid), be.sigmoid(x), 1e-5, 0);
            Tensor pos = be.mul(x, x);
            assertClose("sqrt n=" + len, map(d(pos), Math::sqrt), be.sqrt(pos), 1e-6, 0);
            assertClose("rsqrt n=" + len, map(d(pos), v -> 1 / Math.sqrt(v)), be.rsqrt(pos), 1e-6, 0);
            Tensor wide = be.scale(x, 30f); // spans the whole softcap range, into saturation
            assertClose("softcap n=" + len, map(d(wide), ElementwiseOpsTest::softcap), be.softcap(wide, 15f), 1e-5, 0);
        }
    }

    @Test
    void activationBackwardsMatchFiniteDifferences() {
        Random r = Ref.rng("activation-backward");
        int len = size(40, 13);
        Tensor x = randT(r, 3f, len), dy = randT(r, 1f, len);
        double[] xd = d(x), dyd = d(dy);
        assertClose("relu2 backward", fdGrad(v -> map(v, ElementwiseOpsTest::relu2), xd, dyd), be.relu2Backward(x, dy), 1e-4, 1e-5);
        assertClose("sigmoid backward", fdGrad(v -> map(v, ElementwiseOpsTest::sigmoid), xd, dyd),
                be.sigmoidBackward(be.sigmoid(x), dy), 1e-4, 1e-5);
        Tensor xs = be.scale(x, 8f);
        assertClose("softcap backward", fdGrad(v -> map(v, ElementwiseOpsTest::softcap), d(xs), dyd),
                be.softcapBackward(xs, dy, 15f), 1e-4, 1e-5);
    }

    @Test
    void sigmoidSaturatesWithoutNaN() {
        Tensor y = be.sigmoid(Tensor.of(new float[] {-200f, -89f, 0.5f, 89f, 200f}));
        float[] v = y.toFloatArray();
        assertTrue(v[0] >= 0f && v[0] < 1e-30f && v[4] == 1f, java.util.Arrays.toString(v));
    }

    @Test
    void broadcastingArithmeticMatchesFloat64() {
        Random r = Ref.rng("broadcast");
        int b = size(3, 1), t = size(8, 7), c = size(32, 13);
        int[][][] cases = {
            {{b, t, c}, {b, t, c}}, {{b, t, c}, {c}}, {{b, t, c}, {b, t, 1}}, {{b, t, c}, {1}}, {{b, t, c}, {}},
            {{b, 1, c}, {t, 1}}, {{1}, {b, t, c}}, {{t, 1}, {1, c}},
        };
        for (int[][] cs : cases) {
            Tensor a = randT(r, 2f, cs[0]), bb = randT(r, 2f, cs[1]);
            int[] out = OpChecks.broadcastShape(cs[0], cs[1]);
            double[][] ref = refBinary(d(a), cs[0], d(bb), cs[1], out);
            String name = java.util.Arrays.toString(cs[0]) + " ∘ " + java.util.Arrays.toString(cs[1]);
            Tensor sum = be.add(a, bb);
            assertArrayEquals(out, sum.shape(), name);
            assertClose("add " + name, ref[0], sum, 1e-6, 0);
            assertClose("mul " + name, ref[2], be.mul(a, bb), 1e-6, 0);
            assertClose("div " + name, ref[3], be.div(a, bb), 1e-6, 0);
        }
    }

    /** {a+b, a−b, a·b, a/b} in float64 with explicit broadcast index arithmetic. */
    private static double[][] refBinary(double[] a, int[] as, double[] b, int[] bs, int[] out) {
        int total = Tensor.numel(out);
        double[][] res = new double[4][total];
        int r = out.length;
        for (int flat = 0; flat < total; flat++) {
            int rem = flat, ai = 0, bi = 0, aMul = 1, bMul = 1;
            for (int dd = r - 1; dd >= 0; dd--) {
                int idx = rem % out[dd];
                rem /= out[dd];
                int ad = dd - (r - as.length), bd = dd - (r - bs.length);
                if (ad >= 0) { ai += (as[ad] == 1 ? 0 : idx) * aMul; aMul *= as[ad]; }
                if (bd >= 0) { bi += (bs[bd] == 1 ? 0 : idx) * bMul; bMul *= bs[bd]; }
            }
            res[0][flat] = a[ai] + b[bi];
            res[1][flat] = a[ai] - b[bi];
            res[2][flat] = a[ai] * b[bi];
            res[3][flat] = a[ai] / b[bi];
        }
        return res;
    }

    @Test
    void sumToShapeIsTheAdjointOfBroadcasting() {
        Random r = Ref.rng("sumTo");
        int b = size(2, 1), t = size(9, 5), c = size(24, 11);
        int[][] targets = {{c}, {b, t, 1}, {1}, {}, {b, 1, c}, {t, 1}};
        Tensor g = randT(r, 1f, b, t, c);
        for (int[] ts : targets) {
            // <sumTo(g), y> = <g, broadcast(y)> for every y: check with y random, via mul-then-sum
            Tensor y = randT(r, 1f, ts);
            double lhs = Ref.dotD(d(be.sumToShape(g, ts)), d(y));
            double[] gd = d(g), yb = d(be.mul(Tensor.full(1f, b, t, c), y));
            double rhs = Ref.dotD(gd, yb);
            // the bound scales with Σ|g·y| (the terms' size), not with the result, which random signs can cancel to
            // near zero: fp32 sums of ≤ B·T·C terms err by a few 1e-7 of it; a wrong adjoint errs by O(Σ|g·y|)
            double terms = 0;
            for (int i = 0; i < gd.length; i++) terms += Math.abs(gd[i] * yb[i]);
            double err = Math.abs(lhs - rhs);
            assertTrue(err <= 1e-5 * terms, "sumToShape " + java.util.Arrays.toString(ts) + ": <sumTo(g), y> = " + lhs + ", <g, broadcast(y)> = "
                    + rhs + ", |err| " + err + " > 1e-5 * " + terms + " (seed " + Ref.SEED + ")");
        }
        assertThrows(IllegalArgumentException.class, () -> be.sumToShape(g, t + 1));
        // large enough to split over threads: per-row sums (B·T, C) → (B·T, 1) and a full sum to (1)
        int rows = size(96, 97), cols = size(1024, 1031);
        Tensor big = randT(r, 1f, rows, cols);
        double[] bd = d(big), rowSums = new double[rows];
        double all = 0, abs = 0;
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) { rowSums[i] += bd[i * cols + j]; all += bd[i * cols + j]; abs += Math.abs(bd[i * cols + j]); }
        double[] rowAbs = new double[rows];
        for (int i = 0; i < rows; i++) for (int j = 0; j < cols; j++) rowAbs[i] += Math.abs(bd[i * cols + j]);
        float[] got = be.sumToShape(big, rows, 1).toFloatArray();
        for (int i = 0; i < rows; i++) assertEquals(rowSums[i], got[i], 1e-5 * rowAbs[i], "row sum " + i + ", seed " + Ref.SEED);
        assertEquals(all, be.sumToShape(big, 1).item(), 1e-5 * abs, "full sum, seed " + Ref.SEED);
    }

    @Test
    void scaleAxpyAxpbyAndLambdaMix() {
        Random r = Ref.rng("axpy");
        Tensor x = randT(r, 1f, n), y = randT(r, 1f, n);
        double[] xd = d(x), yd = d(y);
        assertClose("scale", map(xd, v -> 0.37 * (float) v * 1.0), be.scale(x, 0.37f), 1e-6, 0);
        double[] axpbyRef = new double[n];
        for (int i = 0; i < n; i++) axpbyRef[i] = 1.5f * xd[i] - 0.25f * yd[i];
        assertClose("axpby", axpbyRef, be.axpby(1.5f, x, -0.25f, y), 1e-5, 1e-7);
        Tensor acc = y.copy();
        be.axpy(-2f, x, acc);
        double[] axpyRef = new double[n];
        for (int i = 0; i < n; i++) axpyRef[i] = yd[i] - 2f * xd[i];
        assertClose("axpy", axpyRef, acc, 1e-5, 1e-7);

        Tensor a = Tensor.of(new float[] {1.15f}), bl = Tensor.of(new float[] {0.2f});
        Tensor mix = be.lambdaMix(a, x, bl, y);
        double[] mixRef = new double[n];
        for (int i = 0; i < n; i++) mixRef[i] = 1.15f * xd[i] + 0.2f * yd[i];
        assertClose("lambdaMix", mixRef, mix, 1e-5, 1e-7);
        Tensor dy = randT(r, 1f, n);
        Backend.MixGrads g = be.lambdaMixBackward(dy, a, x, bl, y);
        // Σ dy·x of signed terms cancels: the tolerance is relative to Σ |dy·x|
        double[] dyd = d(dy);
        assertEquals(Ref.dotD(dyd, xd), g.da().item(), 1e-5 * absDot(dyd, xd), "lambdaMix dA, seed " + Ref.SEED);
        assertEquals(Ref.dotD(dyd, yd), g.db().item(), 1e-5 * absDot(dyd, yd), "lambdaMix dB, seed " + Ref.SEED);
        assertClose("lambdaMix dx", map(d(dy), v -> 1.15f * v), g.dx(), 1e-6, 0);
        assertClose("lambdaMix dx0", map(d(dy), v -> 0.2f * v), g.dx0(), 1e-6, 0);
        assertArrayEquals(new int[] {1}, g.da().shape());
    }

    private static double absDot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += Math.abs(a[i] * b[i]);
        return s;
    }

    @Test
    void lerpFollowsTorchOnBothBranchesAndClampClips() {
        Random r = Ref.rng("lerp");
        Tensor a = randT(r, 1f, n), b = randT(r, 1f, n);
        double[] ad = d(a), bd = d(b);
        for (float w : new float[] {0.05f, 0.49f, 0.5f, 0.95f}) {
            double[] ref = new double[n];
            for (int i = 0; i < n; i++) ref[i] = ad[i] + w * (bd[i] - ad[i]);
            assertClose("lerp w=" + w, ref, be.lerp(a, b, w), 1e-5, 1e-6);
        }
        // exact endpoints, which is why torch switches formulas at 0.5
        assertArrayEquals(b.toFloatArray(), be.lerp(a, b, 1f).toFloatArray());
        assertArrayEquals(a.toFloatArray(), be.lerp(a, b, 0f).toFloatArray());
        assertClose("clamp", map(ad, v -> Math.min(Math.max(v, -0.5f), 0.3f)), be.clamp(a, -0.5f, 0.3f), 0, 0);
    }

    @Test
    void mismatchedShapesNameTheOp() {
        Tensor a = Tensor.zeros(2, 3), b = Tensor.zeros(4);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.add(a, b));
        assertTrue(ex.getMessage().contains("add") && ex.getMessage().contains("[2, 3]") && ex.getMessage().contains("[4]"), ex.getMessage());
        ex = assertThrows(IllegalArgumentException.class, () -> be.relu2Backward(a, Tensor.zeros(3, 2)));
        assertTrue(ex.getMessage().contains("relu2Backward"), ex.getMessage());
        ex = assertThrows(IllegalArgumentException.class, () -> be.sigmoid(Tensor.ofInts(new int[] {1, 2})));
        assertTrue(ex.getMessage().contains("sigmoid") && ex.getMessage().contains("F32"), ex.getMessage());
    }
}
