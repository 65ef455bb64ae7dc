package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * matmul through the Backend (every transpose combination, batched, shared 2-d operand, accumulate form), the
 * linear trio, the Muon shapes (X·Xᵀ, XᵀX, small square products) and the PyTorch polar-express fixture.
 * Tolerance ≤ 1e-4 relative to the largest output.
 */
class MatmulOpsTest {
    private final Backend be = Backend.cpu();

    /** op(A)·op(B) in float64 for one batch entry. */
    static double[] ref(double[] a, int ao, boolean ta, double[] b, int bo, boolean tb, int m, int n, int k) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                double av = ta ? a[ao + p * m + i] : a[ao + i * k + p];
                double bv = tb ? b[bo + j * k + p] : b[bo + p * n + j];
                s += av * bv;
            }
            c[i * n + j] = s;
        }
        return c;
    }

    @Test
    void everyTransposeCombinationBatchedAndShared() {
        Random r = Ref.rng("matmul");
        int batch = size(3, 1), m = size(17, 13), n = size(24, 7), k = size(33, 29);
        for (boolean ta : new boolean[] {false, true}) for (boolean tb : new boolean[] {false, true}) {
            Tensor a = ta ? randT(r, 1f, batch, k, m) : randT(r, 1f, batch, m, k);
            Tensor b = tb ? randT(r, 1f, batch, n, k) : randT(r, 1f, batch, k, n);
            Tensor b2 = tb ? randT(r, 1f, n, k) : randT(r, 1f, k, n);
            Tensor c = be.matmul(a, ta, b, tb), cs = be.matmul(a, ta, b2, tb);
            assertArrayEquals(new int[] {batch, m, n}, c.shape());
            double[] refC = new double[batch * m * n], refS = new double[batch * m * n];
            for (int i = 0; i < batch; i++) {
                System.arraycopy(ref(d(a), i * m * k, ta, d(b), i * n * k, tb, m, n, k), 0, refC, i * m * n, m * n);
                System.arraycopy(ref(d(a), i * m * k, ta, d(b2), 0, tb, m, n, k), 0, refS, i * m * n, m * n);
            }
            assertClose("matmul ta=" + ta + " tb=" + tb, refC, c, 1e-4, 1e-5);
            assertClose("matmul shared B ta=" + ta + " tb=" + tb, refS, cs, 1e-4, 1e-5);
        }
    }

    @Test
    void linearAndItsTwoBackwardProducts() {
        Random r = Ref.rng("linear");
        int bsz = size(2, 1), t = size(8, 5), in = size(32, 11), out = size(48, 7);
        Tensor x = randT(r, 1f, bsz, t, in), w = randT(r, 1f, out, in), dy = randT(r, 1f, bsz, t, out);
        int rows = bsz * t;
        assertClose("linear", ref(d(x), 0, false, d(w), 0, true, rows, out, in), be.linear(x, w), 1e-4, 1e-5);
        assertClose("linear dx", ref(d(dy), 0, false, d(w), 0, false, rows, in, out), be.linearBackwardInput(dy, w), 1e-4, 1e-5);
        double[] dW = ref(d(dy), 0, true, d(x), 0, false, out, in, rows);
        Tensor g = Tensor.full(1f, out, in);
        be.linearBackwardWeight(dy, x, g, false);
        assertClose("linear dW", dW, g, 1e-4, 1e-5);
        be.linearBackwardWeight(dy, x, g, true);
        for (int i = 0; i < dW.length; i++) dW[i] *= 2;
        assertClose("linear dW accumulated", dW, g, 1e-4, 1e-5);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.linear(x, Tensor.zeros(out, in + 1)));
        assertTrue(ex.getMessage().contains("linear") && ex.getMessage().contains("[" + out + ", " + (in + 1) + "]"), ex.getMessage());
    }

    @Test
    void muonGramShapesWork() {
        Random r = Ref.rng("muon");
        int rows = size(64, 31), cols = size(96, 53);
        Tensor x = randT(r, 1f, rows, cols);
        Tensor xxt = be.matmul(x, false, x, true), xtx = be.matmul(x, true, x, false);
        assertArrayEquals(new int[] {rows, rows}, xxt.shape());
        assertArrayEquals(new int[] {cols, cols}, xtx.shape());
        assertClose("X·Xᵀ", ref(d(x), 0, false, d(x), 0, true, rows, rows, cols), xxt, 1e-4, 1e-5);
        assertClose("XᵀX", ref(d(x), 0, true, d(x), 0, false, cols, cols, rows), xtx, 1e-4, 1e-5);
        assertClose("A·A", ref(d(xxt), 0, false, d(xxt), 0, false, rows, rows, rows), be.matmul(xxt, false, xxt, false), 1e-4, 1e-5);
        // stacked (K, m, n) matrices, as nanochat groups same-shape parameters
        Tensor st = randT(r, 1f, 3, rows, cols);
        Tensor g = be.matmul(st, false, st, true);
        assertArrayEquals(new int[] {3, rows, rows}, g.shape());
        assertClose("stacked X·Xᵀ [2]", ref(d(st), 2 * rows * cols, false, d(st), 2 * rows * cols, true, rows, rows, cols),
                be.matmul(st.select(2), false, st.select(2), true), 1e-4, 1e-5);
    }

    private static final double[][] POLAR = {
        {8.156554524902461, -22.48329292557795, 15.878769915207462},
        {4.042929935166739, -2.808917465908714, 0.5000178451051316},
        {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
        {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
        {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
    };

    /** 5 polar-express iterations written with Backend ops only (as the optimizer will). */
    private Tensor polarExpress(Tensor x) {
        boolean wide = x.shape(0) <= x.shape(1);
        for (double[] abc : POLAR) {
            float a = (float) abc[0], b = (float) abc[1], c = (float) abc[2];
            if (wide) {
                Tensor am = be.matmul(x, false, x, true);                                  // A = X Xᵀ
                Tensor bm = be.axpby(b, am, c, be.matmul(am, false, am, false));         // B = bA + cA²
                x = be.axpby(a, x, 1f, be.matmul(bm, false, x, false));                  // X = aX + B X
            } else {
                Tensor am = be.matmul(x, true, x, false);                                  // A = Xᵀ X
                Tensor bm = be.axpby(b, am, c, be.matmul(am, false, am, false));
                x = be.axpby(a, x, 1f, be.matmul(x, false, bm, false));                  // X = aX + X B
            }
        }
        return x;
    }

    @Test
    void polarExpressViaMatmulMatchesPyTorch() {
        for (String name : new String[] {"wide_64x96", "tall_96x64"}) {
            Tensor g = Fixtures.tensor("polar/" + name + "/G");
            float norm = (float) Math.sqrt(be.dot(g, g).item());
            Tensor x0 = be.scale(g, 1f / (norm * 1.01f + 1e-6f));
            Fixtures.check("polar/" + name + "/X0", x0, 1e-5);
            Fixtures.check("polar/" + name + "/polar_express_X0", polarExpress(Fixtures.tensor("polar/" + name + "/X0")), 1e-4);
        }
    }
}
