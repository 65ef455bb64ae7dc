package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** sum/mean/max/dot/norms (rel 1e-4 vs float64), argmax, top-k and softmax over the last dim. */
class ReductionOpsTest {
    private final Backend be = Backend.cpu();

    @Test
    void wholeTensorReductionsMatchFloat64() {
        Random r = Ref.rng("reduce");
        for (int n : new int[] {1, size(1000, 997), size(Elementwise.GRAIN * 3 + 8, Elementwise.GRAIN * 3 + 1)}) {
            Tensor x = randT(r, 1f, n), y = randT(r, 1f, n);
            double[] xd = d(x), yd = d(y);
            double s = 0, dot = 0, ss = 0, mx = Double.NEGATIVE_INFINITY;
            for (int i = 0; i < n; i++) { s += xd[i]; dot += xd[i] * yd[i]; ss += xd[i] * xd[i]; mx = Math.max(mx, xd[i]); }
            // sums of signed terms can cancel: compare against the sum of magnitudes' scale
            double abs = 0;
            for (double v : xd) abs += Math.abs(v);
            assertEquals(s, be.sum(x).item(), 1e-5 * abs, "sum n=" + n);
            assertEquals(s / n, be.mean(x).item(), 1e-5 * abs / n, "mean n=" + n);
            assertEquals((float) mx, be.max(x).item(), "max n=" + n);
            assertClose("frobenius n=" + n, Math.sqrt(ss), be.frobeniusNorm(x).item(), 1e-5);
            assertEquals(dot, be.dot(x, y).item(), 1e-5 * n, "dot n=" + n);
            assertEquals(0, be.sum(x).rank());
        }
    }

    @Test
    void rowNormsArgmaxTopkSoftmaxWorkPerRow() {
        Random r = Ref.rng("rows");
        int rows = size(6, 5), n = size(64, 37), k = size(5, 3);
        Tensor x = randT(r, 3f, 2, rows / 2 + 1, n);
        int nr = x.rows();
        double[] xd = d(x), norms = new double[nr], soft = new double[xd.length];
        int[] arg = new int[nr];
        for (int i = 0; i < nr; i++) {
            double ss = 0, m = Double.NEGATIVE_INFINITY, z = 0;
            for (int j = 0; j < n; j++) {
                double v = xd[i * n + j];
                ss += v * v;
                if (v > m) { m = v; arg[i] = j; }
            }
            norms[i] = Math.sqrt(ss);
            for (int j = 0; j < n; j++) z += Math.exp(xd[i * n + j] - m);
            for (int j = 0; j < n; j++) soft[i * n + j] = Math.exp(xd[i * n + j] - m) / z;
        }
        assertClose("rowNorms", norms, be.rowNorms(x), 1e-5, 0);
        Tensor am = be.argmax(x);
        assertEquals(DType.I32, am.dtype());
        assertArrayEquals(new int[] {2, rows / 2 + 1}, am.shape());
        assertArrayEquals(arg, am.toIntArray());
        assertClose("softmax", soft, be.softmax(x), 1e-5, 1e-7);

        Backend.TopK top = be.topk(x, k);
        assertArrayEquals(new int[] {2, rows / 2 + 1, k}, top.values().shape());
        for (int i = 0; i < nr; i++) {
            Integer[] order = new Integer[n];
            for (int j = 0; j < n; j++) order[j] = j;
            final int row = i;
            Arrays.sort(order, (p, q) -> Double.compare(xd[row * n + q], xd[row * n + p]));
            for (int j = 0; j < k; j++) {
                assertEquals(order[j], top.indices().ints()[i * k + j], "topk index row " + i + " rank " + j);
                assertEquals((float) xd[i * n + order[j]], top.values().floats()[i * k + j]);
            }
        }
    }

    @Test
    void argmaxAndTopkBreakTiesTowardTheLowerIndex() {
        Tensor x = Tensor.of(new float[] {1, 3, 3, 2, 3}, 1, 5);
        assertEquals(1, be.argmax(x).toIntArray()[0]);
        assertArrayEquals(new int[] {1, 2, 4, 3}, be.topk(x, 4).indices().toIntArray());
        assertThrows(IllegalArgumentException.class, () -> be.topk(x, 6));
    }

    @Test
    void softmaxOfHugeLogitsStaysFinite() {
        Tensor y = be.softmax(Tensor.of(new float[] {1000f, 999f, -1000f}, 1, 3));
        assertClose("softmax large", new double[] {1 / (1 + Math.exp(-1)), Math.exp(-1) / (1 + Math.exp(-1)), 0}, y, 1e-5, 1e-7);
    }
}
