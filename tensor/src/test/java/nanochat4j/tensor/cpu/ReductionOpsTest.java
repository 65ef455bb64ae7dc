package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** dot and row norms (rel 1e-4 vs float64) and argmax over the last dim. */
class ReductionOpsTest {
    private final Backend be = Backend.cpu();

    @Test
    void dotMatchesFloat64() {
        Random r = Ref.rng("reduce");
        for (int n : new int[] {1, size(1000, 997), size(Elementwise.GRAIN * 3 + 8, Elementwise.GRAIN * 3 + 1)}) {
            Tensor x = randT(r, 1f, n), y = randT(r, 1f, n);
            double[] xd = d(x), yd = d(y);
            double dot = 0;
            for (int i = 0; i < n; i++) dot += xd[i] * yd[i];
            assertEquals(dot, be.dot(x, y).item(), 1e-5 * n, "dot n=" + n);
            assertEquals(0, be.dot(x, y).rank());
        }
    }

    @Test
    void rowNormsAndArgmaxWorkPerRow() {
        Random r = Ref.rng("rows");
        int rows = size(6, 5), n = size(64, 37);
        Tensor x = randT(r, 3f, 2, rows / 2 + 1, n);
        int nr = x.rows();
        double[] xd = d(x), norms = new double[nr];
        int[] arg = new int[nr];
        for (int i = 0; i < nr; i++) {
            double ss = 0, m = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                double v = xd[i * n + j];
                ss += v * v;
                if (v > m) { m = v; arg[i] = j; }
            }
            norms[i] = Math.sqrt(ss);
        }
        assertClose("rowNorms", norms, be.rowNorms(x), 1e-5, 0);
        Tensor am = be.argmax(x);
        assertEquals(DType.I32, am.dtype());
        assertArrayEquals(new int[] {2, rows / 2 + 1}, am.shape());
        assertArrayEquals(arg, am.toIntArray());
    }

    @Test
    void argmaxBreaksTiesTowardTheLowerIndex() {
        Tensor x = Tensor.of(new float[] {1, 3, 3, 2, 3}, 1, 5);
        assertEquals(1, be.argmax(x).toIntArray()[0]);
    }
}
