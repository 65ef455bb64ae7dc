package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.fdGrad;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Fused softcap + cross-entropy and the chunked lm_head form: float64 references for every reduction, finite
 * differences of the float64 loss, the ignore index, the all-ignored definition, bad targets, non-finite logits,
 * and PyTorch's values.
 */
class CrossEntropyTest {
    private final Backend be = Backend.cpu();

    /** Per-row losses in float64 (0 for ignored rows). cap ≤ 0: no softcap. */
    static double[] refLosses(double[] z, int n, int v, int[] t, double cap) {
        double[] out = new double[n];
        for (int r = 0; r < n; r++) {
            if (t[r] == -1) continue;
            double m = Double.NEGATIVE_INFINITY;
            double[] s = new double[v];
            for (int j = 0; j < v; j++) {
                s[j] = cap > 0 ? cap * Math.tanh(z[r * v + j] / cap) : z[r * v + j];
                m = Math.max(m, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < v; j++) sum += Math.exp(s[j] - m);
            out[r] = m + Math.log(sum) - s[t[r]];
        }
        return out;
    }

    static double reduce(double[] losses, int[] t, Reduction red) {
        double s = 0;
        int c = 0;
        for (int i = 0; i < losses.length; i++) if (t[i] != -1) { s += losses[i]; c++; }
        return red == Reduction.SUM ? s : (c == 0 ? 0 : s / c);
    }

    static int[] targets(Random r, int n, int v) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) t[i] = i % 5 == 3 ? -1 : r.nextInt(v);
        return t;
    }

    @Test
    void lossesMatchFloat64ForEveryReductionWithAndWithoutSoftcap() {
        Random r = Ref.rng("ce");
        int n = size(16, 13), v = size(300, 257);
        Tensor logits = randT(r, 20f, n, v);
        int[] t = targets(r, n, v);
        for (float cap : new float[] {15f, 0f}) {
            double[] ref = refLosses(d(logits), n, v, t, cap);
            for (Reduction red : Reduction.values()) {
                Backend.Loss l = be.crossEntropy(logits, Tensor.ofInts(t), cap, red, red != Reduction.SUM);
                if (red == Reduction.NONE) {
                    assertClose("CE none cap " + cap, ref, l.loss(), 1e-5, 1e-6);
                } else {
                    assertEquals(0, l.loss().rank());
                    assertClose("CE " + red + " cap " + cap, reduce(ref, t, red), l.loss().item(), 1e-5);
                }
                if (red == Reduction.SUM) assertNull(l.dlogits());
            }
        }
    }

    @Test
    void gradientMatchesFiniteDifferencesOfTheMeanLoss() {
        Random r = Ref.rng("ce-grad");
        int n = size(6, 5), v = size(24, 11);
        Tensor logits = randT(r, 25f, n, v);
        int[] t = targets(r, n, v);
        for (float cap : new float[] {15f, 0f}) {
            for (Reduction red : new Reduction[] {Reduction.MEAN, Reduction.SUM, Reduction.NONE}) {
                // NONE's gradient is for upstream 1 on every row = the gradient of the sum
                Reduction lossRed = red == Reduction.NONE ? Reduction.SUM : red;
                double[] fd = fdGrad(z -> new double[] {reduce(refLosses(z, n, v, t, cap), t, lossRed)}, d(logits), new double[] {1});
                Tensor g = be.crossEntropy(logits, Tensor.ofInts(t), cap, red, true).dlogits();
                assertClose("dlogits " + red + " cap " + cap, fd, g, 1e-4, 1e-5);
                for (int j = 0; j < v; j++) assertEquals(0f, Ref.at(g, 3, j), "ignored row has zero gradient");
            }
        }
    }

    @Test
    void allIgnoredRowsGiveZeroLossAndZeroGradient() {
        Tensor logits = randT(Ref.rng("ce-ignored"), 3f, 4, 9);
        Tensor t = Tensor.ofInts(new int[] {-1, -1, -1, -1});
        Backend.Loss l = be.crossEntropy(logits, t, 15f, Reduction.MEAN, true);
        assertEquals(0f, l.loss().item());
        for (float g : l.dlogits().toFloatArray()) assertEquals(0f, g);
        Backend.LinearLoss ll = be.linearSoftcapCrossEntropy(randT(Ref.rng("x"), 1f, 4, 5), randT(Ref.rng("w"), 1f, 9, 5),
                t, 9, 15f, Reduction.MEAN, true);
        assertEquals(0f, ll.loss().item());
        for (float g : ll.dx().toFloatArray()) assertEquals(0f, g);
    }

    @Test
    void badTargetsAndNonFiniteLogitsThrowNamingTheOp() {
        Tensor logits = randT(Ref.rng("ce-bad"), 1f, 3, 5);
        var ex = assertThrows(IllegalArgumentException.class,
                () -> be.crossEntropy(logits, Tensor.ofInts(new int[] {0, 5, 1}), 15f, Reduction.MEAN, true));
        assertTrue(ex.getMessage().contains("crossEntropy") && ex.getMessage().contains("target 5") && ex.getMessage().contains("row 1"), ex.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> be.crossEntropy(logits, Tensor.ofInts(new int[] {0, -2, 1}), 15f, Reduction.MEAN, true));
        assertThrows(IllegalArgumentException.class, () -> be.crossEntropy(logits, Tensor.ofInts(new int[] {0, 1}), 15f, Reduction.MEAN, true));
        for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY}) {
            Tensor l2 = logits.copy();
            l2.floats()[2 * logits.cols() + 3] = bad;
            ex = assertThrows(IllegalArgumentException.class, () -> be.crossEntropy(l2, Tensor.ofInts(new int[] {0, 1, 1}), 15f, Reduction.MEAN, false));
            assertTrue(ex.getMessage().contains("non-finite") && ex.getMessage().contains("row 2"), ex.getMessage());
        }
    }

    @Test
    void crossEntropyMatchesPyTorch() {
        Tensor logits = Fixtures.tensor("cross_entropy/logits"), t = Fixtures.tensor("cross_entropy/targets");
        Backend.Loss mean = be.crossEntropy(logits, t, 0f, Reduction.MEAN, true);
        Fixtures.check("cross_entropy/loss", mean.loss(), 1e-5);
        Fixtures.check("cross_entropy/dlogits", mean.dlogits(), 1e-4);
        Fixtures.check("cross_entropy/loss_sum", be.crossEntropy(logits, t, 0f, Reduction.SUM, false).loss(), 1e-5);
    }

    @Test
    void chunkedLinearCrossEntropyEqualsTheUnchunkedComposition() {
        Random r = Ref.rng("linear-ce");
        int n = size(20, 13), c = size(16, 7), vocab = size(50, 37), vpad = size(64, 41);
        Tensor x = randT(r, 1f, n, c), w = randT(r, 2f, vpad, c);
        int[] t = targets(r, n, vocab);
        // reference: logits = x Wᵀ cropped, CE in float64, gradients through the float64 chain rule
        double[] logits = new double[n * vocab];
        double[] xd = d(x), wd = d(w);
        for (int i = 0; i < n; i++) for (int j = 0; j < vocab; j++) {
            double s = 0;
            for (int k = 0; k < c; k++) s += xd[i * c + k] * wd[j * c + k];
            logits[i * vocab + j] = s;
        }
        for (Reduction red : Reduction.values()) {
            double[] losses = refLosses(logits, n, vocab, t, 15);
            Backend.LinearLoss full = be.linearSoftcapCrossEntropy(x, w, Tensor.ofInts(t), vocab, 15f, red, true);
            if (red == Reduction.NONE) assertClose("linear CE none", losses, full.loss(), 1e-5, 1e-6);
            else assertClose("linear CE " + red, reduce(losses, t, red), full.loss().item(), 1e-5);
            // the same through the plain ops: linear → narrow → crossEntropy → matmuls
            Reduction gr = red == Reduction.NONE ? Reduction.NONE : red;
            Tensor lg = be.narrow(be.linear(x, w), -1, 0, vocab);
            Tensor dl = be.crossEntropy(lg, Tensor.ofInts(t), 15f, gr, true).dlogits();
            Tensor dx = be.matmul(dl, false, be.narrow(w, 0, 0, vocab), false);
            Tensor dW = be.narrowBackward(be.matmul(dl, true, x, false), 0, 0, vpad);
            for (int chunk : new int[] {0, 1, 3, n}) {
                float[] loss = new float[n];
                float[] gx = new float[n * c], gw = new float[vpad * c];
                float wAll = red == Reduction.MEAN ? 1f / countKept(t) : 1f;
                CrossEntropy.linear(x.floats(), 0, w.floats(), 0, n, c, vpad, vocab, t, 0, 15f, wAll, null, loss, gx, gw, chunk, "test");
                assertClose("dx " + red + " chunk " + chunk, d(dx), gx, 1e-4, 1e-5);
                assertClose("dW " + red + " chunk " + chunk, d(dW), gw, 1e-4, 1e-5);
            }
            assertClose("dx " + red, d(dx), full.dx(), 1e-4, 1e-5);
            assertClose("dW " + red, d(dW), full.dW(), 1e-4, 1e-5);
            for (int j = vocab * c; j < vpad * c; j++) assertEquals(0f, full.dW().floats()[j], "padded vocab rows get no gradient");
        }
        // weighted rows (reduction NONE with a non-uniform upstream gradient)
        Tensor rowGrad = randT(r, 1f, n);
        Backend.LinearLoss wl = be.linearSoftcapCrossEntropyBackward(x, w, Tensor.ofInts(t), vocab, 15f, rowGrad);
        Tensor lg = be.narrow(be.linear(x, w), -1, 0, vocab);
        Tensor dl = be.mul(be.crossEntropy(lg, Tensor.ofInts(t), 15f, Reduction.NONE, true).dlogits(), rowGrad.reshape(n, 1));
        assertClose("weighted dx", d(be.matmul(dl, false, be.narrow(w, 0, 0, vocab), false)), wl.dx(), 1e-4, 1e-5);
        assertClose("weighted losses", refLosses(logits, n, vocab, t, 15), wl.loss(), 1e-5, 1e-6);
        assertArrayEquals(new int[] {vpad, c}, wl.dW().shape());
    }

    @Test
    void linearCrossEntropyWithA4KiBVocabRowMatchesThePlainOps() {
        // vocab 1,024: the chunk's rows are padded to a 1,040-float stride (the weight gradient reads them in place)
        Random r = Ref.rng("linear-ce-4k");
        int n = 9, c = 8, vocab = 1024, vpad = 1088;
        Tensor x = randT(r, 1f, n, c), w = randT(r, 2f, vpad, c);
        int[] t = targets(r, n, vocab);
        t[4] = -1;   // an ignored row: its padded gradient row is cleared, not its neighbour's
        Tensor lg = be.narrow(be.linear(x, w), -1, 0, vocab);
        Tensor dl = be.crossEntropy(lg, Tensor.ofInts(t), 15f, Reduction.SUM, true).dlogits();
        Tensor dx = be.matmul(dl, false, be.narrow(w, 0, 0, vocab), false);
        Tensor dW = be.narrowBackward(be.matmul(dl, true, x, false), 0, 0, vpad);
        Tensor losses = be.crossEntropy(lg, Tensor.ofInts(t), 15f, Reduction.NONE, false).loss();
        for (int chunk : new int[] {0, 2, n}) {
            float[] loss = new float[n], gx = new float[n * c], gw = new float[vpad * c];
            CrossEntropy.linear(x.floats(), 0, w.floats(), 0, n, c, vpad, vocab, t, 0, 15f, 1f, null, loss, gx, gw, chunk, "test");
            assertClose("losses chunk " + chunk, d(losses), loss, 1e-5, 1e-6);
            assertClose("dx chunk " + chunk, d(dx), gx, 1e-4, 1e-5);
            assertClose("dW chunk " + chunk, d(dW), gw, 1e-4, 1e-5);
        }
    }

    private static int countKept(int[] t) {
        int c = 0;
        for (int v : t) if (v != -1) c++;
        return c;
    }

    @Test
    void linearCrossEntropyGradientMatchesFiniteDifferences() {
        Random r = Ref.rng("linear-ce-fd");
        int n = size(4, 3), c = size(6, 5), vocab = size(10, 7), vpad = size(16, 11);
        Tensor x = randT(r, 1f, n, c), w = randT(r, 2f, vpad, c);
        int[] t = targets(r, n, vocab);
        double[] wd = d(w), xd = d(x);
        Ref.Fn lossOfX = xv -> new double[] {reduce(refLosses(logits(xv, wd, n, c, vocab), n, vocab, t, 15), t, Reduction.MEAN)};
        Ref.Fn lossOfW = wv -> new double[] {reduce(refLosses(logits(xd, wv, n, c, vocab), n, vocab, t, 15), t, Reduction.MEAN)};
        Backend.LinearLoss l = be.linearSoftcapCrossEntropy(x, w, Tensor.ofInts(t), vocab, 15f, Reduction.MEAN, true);
        assertClose("dx", fdGrad(lossOfX, xd, new double[] {1}), l.dx(), 1e-4, 1e-5);
        assertClose("dW", fdGrad(lossOfW, wd, new double[] {1}), l.dW(), 1e-4, 1e-5);
    }

    private static double[] logits(double[] x, double[] w, int n, int c, int vocab) {
        double[] z = new double[n * vocab];
        for (int i = 0; i < n; i++) for (int j = 0; j < vocab; j++) {
            double s = 0;
            for (int k = 0; k < c; k++) s += x[i * c + k] * w[j * c + k];
            z[i * vocab + j] = s;
        }
        return z;
    }
}
