package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import nanochat4j.tensor.DType;
import org.junit.jupiter.api.Test;

class GemvTest {

    @Test
    void fp32AndBf16WeightsMatchAFloat64ReferenceWithTailsStridesAlphaAndBeta() {
        SplittableRandom rnd = new SplittableRandom(5);
        int l = Vec.LANES;
        for (int k : new int[] {1, 7, l - 1, l, l + 3, 3 * l + 5, 97}) {
            for (int nb : new int[] {1, 2, 3}) {
                for (float beta : new float[] {0f, 1f, 0.5f}) {
                    int rows = 11, r0 = 1, r1 = 10, wo = 3, ldw = k + 2, xo = 1, ldx = k + 1, yo = 2, ldy = rows + 1;
                    float alpha = beta == 0.5f ? -1.5f : 1f;
                    float[] w = new float[wo + rows * ldw];
                    short[] wb = new short[w.length];
                    for (int i = 0; i < w.length; i++) {
                        wb[i] = DType.toBf16((float) rnd.nextGaussian());
                        w[i] = DType.fromBf16(wb[i]);   // the same values in both stores
                    }
                    float[] x = new float[xo + nb * ldx];
                    for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
                    float[] y0 = new float[yo + nb * ldy];
                    for (int i = 0; i < y0.length; i++) y0[i] = (float) rnd.nextGaussian();
                    float[] yf = y0.clone(), yb = y0.clone();
                    Gemv.rows(w, null, wo, ldw, k, x, xo, ldx, nb, yf, yo, ldy, r0, r1, alpha, beta);
                    Gemv.rows(null, wb, wo, ldw, k, x, xo, ldx, nb, yb, yo, ldy, r0, r1, alpha, beta);
                    assertArrayEquals(yf, yb, "fp32 and bf16 stores of the same values, k=" + k + " nb=" + nb);
                    for (int i = 0; i < y0.length; i++) {
                        int b = (i - yo) / ldy, r = (i - yo) % ldy;
                        String at = "k=" + k + " nb=" + nb + " beta=" + beta + " row " + r + " input " + b;
                        if (i < yo || b >= nb || r < r0 || r >= r1) {
                            assertEquals(y0[i], yf[i], 0f, "wrote outside its rows: " + at);
                            continue;
                        }
                        double s = 0, mag = 0;
                        for (int j = 0; j < k; j++) {
                            double p = (double) w[wo + r * ldw + j] * x[xo + b * ldx + j];
                            s += p;
                            mag += Math.abs(p);
                        }
                        double want = alpha * s + beta * y0[i];
                        assertEquals(want, yf[i], 1e-6 * (Math.abs(alpha) * mag + Math.abs(beta * y0[i])) + 1e-7, at);
                    }
                }
            }
        }
    }

    @Test
    void anySplitOfTheRowsGivesTheSameBits() {
        SplittableRandom rnd = new SplittableRandom(6);
        int rows = 37, k = 3 * Vec.LANES + 5, nb = 3;
        float[] w = new float[rows * k], x = new float[nb * k];
        for (int i = 0; i < w.length; i++) w[i] = (float) rnd.nextGaussian();
        for (int i = 0; i < x.length; i++) x[i] = (float) rnd.nextGaussian();
        float[] whole = new float[nb * rows], split = new float[nb * rows];
        Gemv.rows(w, null, 0, k, k, x, 0, k, nb, whole, 0, rows, 0, rows, 1f, 0f);
        for (int r = 0; r < rows; ) {
            int e = Math.min(rows, r + 1 + r % 6);   // ranges of 1..6 rows: every quad/leftover alignment
            Gemv.rows(w, null, 0, k, k, x, 0, k, nb, split, 0, rows, r, e, 1f, 0f);
            r = e;
        }
        assertArrayEquals(whole, split);
    }
}
