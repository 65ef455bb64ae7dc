package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.assertClose;
import static nanochat4j.tensor.cpu.Ref.d;
import static nanochat4j.tensor.cpu.Ref.fdGrad;
import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** rms_norm (incl. QK-norm's 1.2 scale) and rotary: float64 references, finite differences, PyTorch fixtures. */
class RmsNormRotaryTest {
    private final Backend be = Backend.cpu();

    static double[] refRms(double[] x, int d, double scale) {
        double[] y = new double[x.length];
        for (int r = 0; r < x.length / d; r++) {
            double ss = 0;
            for (int j = 0; j < d; j++) ss += x[r * d + j] * x[r * d + j];
            double k = scale / Math.sqrt(ss / d + Backend.RMS_EPS);
            for (int j = 0; j < d; j++) y[r * d + j] = x[r * d + j] * k;
        }
        return y;
    }

    @Test
    void rmsNormMatchesFloat64AcrossRowScales() {
        Random r = Ref.rng("rms");
        int rows = size(24, 7), dd = size(64, 37);
        Tensor x = randT(r, 1f, rows, dd);
        float[] xv = x.floats();
        for (int i = 0; i < rows; i++) for (int j = 0; j < dd; j++) xv[i * dd + j] *= (float) Math.pow(10, (i % 7) - 3);
        for (float scale : new float[] {1f, 1.2f}) {
            assertClose("rmsNorm scale " + scale, refRms(d(x), dd, scale), be.rmsNorm(x, scale), 1e-5, 0);
        }
    }

    @Test
    void rmsNormBackwardMatchesFiniteDifferences() {
        Random r = Ref.rng("rms-bwd");
        int rows = size(3, 2), dd = size(16, 7);
        Tensor x = randT(r, 2f, rows, dd), dy = randT(r, 1f, rows, dd);
        for (float scale : new float[] {1f, 1.2f}) {
            double[] fd = fdGrad(v -> refRms(v, dd, scale), d(x), d(dy));
            assertClose("rmsNormBackward scale " + scale, fd, be.rmsNormBackward(x, dy, scale), 1e-4, 1e-5);
        }
    }

    @Test
    void rmsNormMatchesPyTorchIncludingTheZeroRow() {
        Tensor x = Fixtures.tensor("rms_norm/x");
        Fixtures.check("rms_norm/y", be.rmsNorm(x, 1f), 1e-4);
        Fixtures.check("rms_norm/y_sampled_demo", be.rmsNorm(x, 1f), 1e-4);
        Fixtures.check("rms_norm/dx", be.rmsNormBackward(x, Fixtures.tensor("rms_norm/dy"), 1f), 1e-4);
    }

    static double[] refRope(double[] x, double[] cos, double[] sin, int b, int t, int h, int dd, int off, double sign) {
        int half = dd / 2;
        double[] y = new double[x.length];
        for (int bi = 0; bi < b; bi++) for (int ti = 0; ti < t; ti++) for (int hi = 0; hi < h; hi++) {
            int base = ((bi * t + ti) * h + hi) * dd, p = (off + ti) * half;
            for (int i = 0; i < half; i++) {
                double x1 = x[base + i], x2 = x[base + half + i], c = cos[p + i], s = sign * sin[p + i];
                y[base + i] = x1 * c + x2 * s;
                y[base + half + i] = -x1 * s + x2 * c;
            }
        }
        return y;
    }

    @Test
    void rotaryMatchesFloat64WithOffsetAndItsBackwardIsTheTranspose() {
        Random r = Ref.rng("rope");
        int b = size(2, 1), t = size(8, 5), h = size(3, 3), dd = size(32, 14), off = size(9, 3);
        Backend.RotaryTables tab = be.rotaryTables(t + off + 4, dd, 100000);
        Tensor x = randT(r, 1f, b, t, h, dd), dy = randT(r, 1f, b, t, h, dd);
        double[] cos = d(tab.cos()), sin = d(tab.sin());
        assertClose("rotary", refRope(d(x), cos, sin, b, t, h, dd, off, 1), be.rotary(x, tab.cos(), tab.sin(), off), 1e-5, 1e-6);
        double[] fd = fdGrad(v -> refRope(v, cos, sin, b, t, h, dd, off, 1), d(x), d(dy));
        assertClose("rotaryBackward", fd, be.rotaryBackward(dy, tab.cos(), tab.sin(), off), 1e-4, 1e-5);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.rotary(x, tab.cos(), tab.sin(), off + 5));
        assertTrue(ex.getMessage().contains("rotary"), ex.getMessage());
    }

    @Test
    void rotaryTablesAndRotationMatchPyTorch() {
        Backend.RotaryTables tab = be.rotaryTables(16, 32, 100000);
        Fixtures.check("rope/cos", tab.cos(), 1e-5);
        Fixtures.check("rope/sin", tab.sin(), 1e-5);
        Tensor cos = Fixtures.tensor("rope/cos"), sin = Fixtures.tensor("rope/sin");
        Fixtures.check("rope/y", be.rotary(Fixtures.tensor("rope/x"), cos, sin, 0), 1e-4);
        Fixtures.check("rope/dx", be.rotaryBackward(Fixtures.tensor("rope/dy"), cos, sin, 0), 1e-4);
        Fixtures.check("rope/y_offset9", be.rotary(Fixtures.tensor("rope/x_offset9"), cos, sin, 9), 1e-4);
    }

    @Test
    void softcapMatchesPyTorch() {
        Tensor x = Fixtures.tensor("softcap/x");
        Fixtures.check("softcap/y", be.softcap(x, 15f), 1e-5);
        Fixtures.check("softcap/dx", be.softcapBackward(x, Fixtures.tensor("softcap/dy"), 15f), 1e-4);
    }
}
