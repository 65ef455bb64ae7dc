package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import nanochat4j.tensor.DType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class GemvTest {

    /** {@link Gemv#rows}'s signature: the two loops it picks between by vector width, tested at every width. */
    interface Loop {
        void rows(float[] wf, short[] wb, int wo, int ldw, int k, float[] x, int xo, int ldx, int nb, float[] y, int yo,
                  int ldy, int r0, int r1, float alpha, float beta);
    }

    static Stream<Arguments> loops() {
        return Stream.concat(Stream.of(Arguments.of("rows", (Loop) Gemv::rows)), bothLoops());
    }

    static Stream<Arguments> bothLoops() {
        return Stream.of(Arguments.of("streamRows", (Loop) Gemv::streamRows), Arguments.of("quadRows", (Loop) Gemv::quadRows));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("loops")
    void fp32AndBf16WeightsMatchAFloat64ReferenceWithTailsStridesAlphaAndBeta(String name, Loop gemv) {
        SplittableRandom rnd = new SplittableRandom(5);
        int l = Vec.LANES;
        for (int k : new int[] {1, 7, l - 1, l, l + 3, 3 * l + 5, 4 * l, 9 * l + 3, 97}) {
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
                    gemv.rows(w, null, wo, ldw, k, x, xo, ldx, nb, yf, yo, ldy, r0, r1, alpha, beta);
                    gemv.rows(null, wb, wo, ldw, k, x, xo, ldx, nb, yb, yo, ldy, r0, r1, alpha, beta);
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

    @ParameterizedTest(name = "{0}")
    @MethodSource("loops")
    void anySplitOfTheRowsGivesTheSameBits(String name, Loop gemv) {
        SplittableRandom rnd = new SplittableRandom(6);
        int rows = 37, k = 9 * Vec.LANES + 5, nb = 3;
        float[] w = gaussian(rnd, rows * k), x = gaussian(rnd, nb * k);
        float[] whole = new float[nb * rows], split = new float[nb * rows];
        gemv.rows(w, null, 0, k, k, x, 0, k, nb, whole, 0, rows, 0, rows, 1f, 0f);
        for (int r = 0; r < rows; ) {
            int e = Math.min(rows, r + 1 + r % 6);   // ranges of 1..6 rows: every quad/leftover alignment
            gemv.rows(w, null, 0, k, k, x, 0, k, nb, split, 0, rows, r, e, 1f, 0f);
            r = e;
        }
        assertArrayEquals(whole, split);
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("bothLoops")
    void eachLoopGivesAnInputRowTheSameBitsAloneOrBesideOthers(String name, Loop gemv) {
        // within one loop, input rows sharing a pass change nothing (rows picks its loop by batch size, so it may)
        SplittableRandom rnd = new SplittableRandom(7);
        int rows = 13, k = 9 * Vec.LANES + 3, nb = 3;
        float[] w = gaussian(rnd, rows * k), x = gaussian(rnd, nb * k);
        short[] wb = new short[w.length];
        for (int i = 0; i < w.length; i++) wb[i] = DType.toBf16(w[i]);
        for (boolean bf16 : new boolean[] {false, true}) {
            float[] wf = bf16 ? null : w;
            short[] ws = bf16 ? wb : null;
            float[] batch = new float[nb * rows];
            gemv.rows(wf, ws, 0, k, k, x, 0, k, nb, batch, 0, rows, 0, rows, 1f, 0f);
            for (int b = 0; b < nb; b++) {
                float[] alone = new float[rows];
                gemv.rows(wf, ws, 0, k, k, x, b * k, k, 1, alone, 0, rows, 0, rows, 1f, 0f);
                assertArrayEquals(alone, Arrays.copyOfRange(batch, b * rows, (b + 1) * rows),
                        (bf16 ? "bf16" : "fp32") + " weights, input row " + b);
            }
        }
    }

    private static float[] gaussian(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) rnd.nextGaussian();
        return a;
    }
}
