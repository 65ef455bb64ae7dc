package nanochat4j.autograd;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every autograd node against central finite differences of a float64 reference of the same op (see
 * {@link Gradcheck} for the method). Small shapes; rtol 1e-3 and atol 1e-4·max|grad| per input (fp32 backward).
 */
class OpsGradcheckTest {
    static final double RTOL = 1e-3, ATOL = 1e-4;
    static final float EPS = Backend.RMS_EPS;

    static Tensor rand(long seed, double scale, int... shape) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[Tensor.numel(shape)];
        for (int i = 0; i < v.length; i++) v[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        return Tensor.of(v, shape);
    }

    static void check(String what, Tensor[] in, java.util.function.Function<Var[], Var> op, Gradcheck.Ref64 ref) {
        Gradcheck.Report rep = Gradcheck.check(what, in, op, ref, RTOL, ATOL, 7);
        assertTrue(rep.checked() > 0);
    }

    // ---- float64 references (row-major flat arrays) ----

    static double[] linear64(double[] x, double[] w, int n, int in, int out) {
        double[] y = new double[n * out];
        for (int i = 0; i < n; i++) for (int o = 0; o < out; o++) {
            double s = 0;
            for (int k = 0; k < in; k++) s += x[i * in + k] * w[o * in + k];
            y[i * out + o] = s;
        }
        return y;
    }

    static double[] rms64(double[] x, int cols, double scale) {
        double[] y = new double[x.length];
        for (int r = 0; r < x.length / cols; r++) {
            double ss = 0;
            for (int c = 0; c < cols; c++) ss += x[r * cols + c] * x[r * cols + c];
            double inv = 1 / Math.sqrt(ss / cols + EPS);
            for (int c = 0; c < cols; c++) y[r * cols + c] = scale * x[r * cols + c] * inv;
        }
        return y;
    }

    static double sig(double z) { return 1 / (1 + Math.exp(-z)); }

    // ---- nodes ----

    @Test
    void linear() {
        check("linear", new Tensor[] {rand(1, 1, 2, 3, 5), rand(2, 1, 4, 5)},
                v -> Ops.linear(v[0], v[1]), x -> linear64(x[0], x[1], 6, 5, 4));
    }

    @Test
    void embeddingScattersIntoTheTableIncludingRepeatedIds() {
        int[] ids = {3, 1, 3, 0, 2, 3};
        check("embedding", new Tensor[] {rand(3, 1, 5, 4)}, v -> Ops.embedding(v[0], Tensor.ofInts(ids, 2, 3)), x -> {
            double[] y = new double[ids.length * 4];
            for (int i = 0; i < ids.length; i++) for (int e = 0; e < 4; e++) y[i * 4 + e] = x[0][ids[i] * 4 + e];
            return y;
        });
    }

    @Test
    void rmsNormPlainAndQkScaled() {
        check("rms_norm", new Tensor[] {rand(4, 2, 3, 8)}, v -> Ops.rmsNorm(v[0], 1f), x -> rms64(x[0], 8, 1));
        check("rms_norm x1.2", new Tensor[] {rand(5, 0.01, 2, 2, 8)}, v -> Ops.rmsNorm(v[0], 1.2f), x -> rms64(x[0], 8, 1.2f));
        // the backward from the output and 1/rms (the model's norm of a block's input and the final norm)
        check("rms_norm_out", new Tensor[] {rand(6, 2, 3, 8)}, v -> Ops.rmsNormOut(v[0], 1f), x -> rms64(x[0], 8, 1));
        check("rms_norm_out x1.2", new Tensor[] {rand(7, 0.01, 2, 2, 8)}, v -> Ops.rmsNormOut(v[0], 1.2f), x -> rms64(x[0], 8, 1.2f));
    }

    @Test
    void rotaryWithOffset() {
        int b = 1, t = 3, h = 2, d = 8, off = 5;
        Backend.RotaryTables tab = Backend.cpu().rotaryTables(16, d, 100000);
        float[] cos = tab.cos().toFloatArray(), sin = tab.sin().toFloatArray();
        check("rotary", new Tensor[] {rand(6, 1, b, t, h, d)}, v -> Ops.rotary(v[0], tab.cos(), tab.sin(), off), x -> {
            double[] y = new double[x[0].length];
            int half = d / 2;
            for (int ti = 0; ti < t; ti++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < half; i++) {
                int o = (ti * h + hi) * d;
                double c = cos[(ti + off) * half + i], s = sin[(ti + off) * half + i];
                double x1 = x[0][o + i], x2 = x[0][o + half + i];
                y[o + i] = x1 * c + x2 * s;
                y[o + half + i] = -x1 * s + x2 * c;
            }
            return y;
        });
    }

    @Test
    void relu2AndSoftcap() {
        check("relu2", new Tensor[] {rand(7, 1, 3, 7)}, v -> Ops.relu2(v[0]), x -> {
            double[] y = new double[x[0].length];
            for (int i = 0; i < y.length; i++) y[i] = Math.max(0, x[0][i]) * Math.max(0, x[0][i]);
            return y;
        });
        check("softcap", new Tensor[] {rand(8, 40, 3, 7)}, v -> Ops.softcap(v[0], 15f), x -> {
            double[] y = new double[x[0].length];
            for (int i = 0; i < y.length; i++) y[i] = 15 * Math.tanh(x[0][i] / 15);
            return y;
        });
    }

    @Test
    void addReshapeNarrow() {
        check("add", new Tensor[] {rand(9, 1, 2, 3), rand(10, 1, 2, 3)}, v -> Ops.add(v[0], v[1]), x -> {
            double[] y = new double[6];
            for (int i = 0; i < 6; i++) y[i] = x[0][i] + x[1][i];
            return y;
        });
        check("add same var twice", new Tensor[] {rand(9, 1, 2, 3)}, v -> Ops.add(v[0], v[0]), x -> {
            double[] y = new double[6];
            for (int i = 0; i < 6; i++) y[i] = 2 * x[0][i];
            return y;
        });
        check("reshape", new Tensor[] {rand(11, 1, 2, 6)}, v -> Ops.reshape(v[0], 3, 4), x -> {
            double[] y = new double[12];
            for (int i = 0; i < 12; i++) y[i] = x[0][i];
            return y;
        });
        check("narrow", new Tensor[] {rand(12, 1, 2, 3, 10)}, v -> Ops.narrow(v[0], 2, 2, 5), x -> {
            double[] y = new double[30];
            for (int r = 0; r < 6; r++) for (int c = 0; c < 5; c++) y[r * 5 + c] = x[0][r * 10 + 2 + c];
            return y;
        });
    }

    @Test
    void attentionCausalWindowedGqa() {
        int b = 2, t = 6, h = 4, kv = 2, d = 4, window = 2;
        float scale = 0.5f;
        for (int w : new int[] {-1, window}) {
            check("attention window " + w, new Tensor[] {rand(13, 1, b, t, h, d), rand(14, 1, b, t, kv, d), rand(15, 1, b, t, kv, d)},
                    v -> Ops.attention(v[0], v[1], v[2], w, scale), x -> {
                        double[] y = new double[b * t * h * d];
                        for (int bi = 0; bi < b; bi++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < t; i++) {
                            int g = hi / (h / kv);
                            double[] s = new double[t];
                            double m = Double.NEGATIVE_INFINITY;
                            for (int j = 0; j <= i; j++) {
                                if (w >= 0 && i - j > w) { s[j] = Double.NEGATIVE_INFINITY; continue; }
                                double dot = 0;
                                for (int di = 0; di < d; di++) dot += x[0][((bi * t + i) * h + hi) * d + di] * x[1][((bi * t + j) * kv + g) * d + di];
                                s[j] = dot * scale;
                                m = Math.max(m, s[j]);
                            }
                            double z = 0;
                            for (int j = 0; j <= i; j++) z += Math.exp(s[j] - m);
                            for (int j = 0; j <= i; j++) {
                                double p = Math.exp(s[j] - m) / z;
                                for (int di = 0; di < d; di++) y[((bi * t + i) * h + hi) * d + di] += p * x[2][((bi * t + j) * kv + g) * d + di];
                            }
                        }
                        return y;
                    });
        }
    }

    @Test
    void lambdaMixIncludingTheSameVarAsXAndX0() {
        check("lambda_mix", new Tensor[] {rand(16, 1, 3), rand(17, 1, 2, 2, 4), rand(18, 1, 3), rand(19, 1, 2, 2, 4)},
                v -> Ops.lambdaMix(v[0], 1, v[1], v[2], 2, v[3]), x -> {
                    double[] y = new double[16];
                    for (int i = 0; i < 16; i++) y[i] = x[0][1] * x[1][i] + x[2][2] * x[3][i];
                    return y;
                });
        check("lambda_mix layer 0", new Tensor[] {rand(20, 1, 2), rand(21, 1, 2, 2, 4), rand(22, 1, 2)},
                v -> Ops.lambdaMix(v[0], 0, v[1], v[2], 0, v[1]), x -> {
                    double[] y = new double[16];
                    for (int i = 0; i < 16; i++) y[i] = (x[0][0] + x[2][0]) * x[1][i];
                    return y;
                });
    }

    @Test
    void smearGate() {
        int b = 2, t = 4, c = 30, ch = 24;
        check("smear", new Tensor[] {rand(23, 1, b, t, c), rand(24, 0.5, 1, ch), Tensor.of(new float[] {0.3f}, 1)},
                v -> Ops.smear(v[0], v[1], v[2], ch), x -> {
                    double[] y = x[0].clone();
                    for (int bi = 0; bi < b; bi++) for (int ti = 1; ti < t; ti++) {
                        int o = (bi * t + ti) * c;
                        double z = 0;
                        for (int k = 0; k < ch; k++) z += x[1][k] * x[0][o + k];
                        double g = x[2][0] * sig(z);
                        for (int k = 0; k < c; k++) y[o + k] = x[0][o + k] + g * x[0][o - c + k];
                    }
                    return y;
                });
    }

    @Test
    void valueEmbedGate() {
        int b = 2, t = 3, kv = 2, d = 4, c = 16, ch = 12, vocab = 5;
        int[] ids = {4, 0, 2, 2, 1, 4};   // repeated ids: their table rows' gradients add up
        check("value_embed_mix", new Tensor[] {rand(25, 1, b, t, kv, d), rand(26, 1, b, t, c), rand(27, 0.5, kv, ch), rand(28, 1, vocab, kv * d)},
                v -> Ops.valueEmbedMix(v[0], v[1], v[2], v[3], Tensor.ofInts(ids, b, t), ch), x -> {
                    double[] y = x[0].clone();
                    for (int r = 0; r < b * t; r++) for (int g = 0; g < kv; g++) {
                        double z = 0;
                        for (int k = 0; k < ch; k++) z += x[2][g * ch + k] * x[1][r * c + k];
                        double gate = 3 * sig(z);
                        for (int di = 0; di < d; di++) y[(r * kv + g) * d + di] += gate * x[3][(ids[r] * kv + g) * d + di];
                    }
                    return y;
                });
    }

    @Test
    void linearResidual() {
        int n = 5, in = 4, out = 3;
        check("linear_residual", new Tensor[] {rand(40, 1, n, out), rand(41, 1, n, in), rand(42, 1, out, in)},
                v -> Ops.linearResidual(v[0], v[1], v[2], null), x -> {
                    double[] y = linear64(x[1], x[2], n, in, out);
                    for (int i = 0; i < y.length; i++) y[i] += x[0][i];
                    return y;
                });
    }

    @Test
    void mlpResidual() {
        int n = 6, c = 4, hidden = 8;
        check("mlp_residual", new Tensor[] {rand(43, 1, 2, 3, c), rand(45, 0.7, hidden, c), rand(46, 0.7, c, hidden)},
                v -> Ops.mlpResidual(v[0], v[1], v[2], null), x -> {
                    double[] a = linear64(rms64(x[0], c, 1), x[1], n, c, hidden);
                    for (int i = 0; i < a.length; i++) a[i] = Math.max(0, a[i]) * Math.max(0, a[i]);
                    double[] y = linear64(a, x[2], n, hidden, c);
                    for (int i = 0; i < y.length; i++) y[i] += x[0][i];
                    return y;
                });
    }

    @Test
    void projectionRotaryThenNorm() {
        int b = 2, t = 3, c = 5, h = 2, d = 8, off = 4;
        Backend.RotaryTables tab = Backend.cpu().rotaryTables(16, d, 100000);
        float[] cos = tab.cos().toFloatArray(), sin = tab.sin().toFloatArray();
        check("linear_rotary_norm", new Tensor[] {rand(47, 1, b, t, c), rand(48, 0.7, h * d, c)},
                v -> Ops.linearRotaryNorm(v[0], v[1], h, tab.cos(), tab.sin(), off, 1.2f), x -> {
            double[] p = linear64(x[0], x[1], b * t, c, h * d);
            double[] r = new double[p.length];
            int half = d / 2;
            for (int bi = 0; bi < b; bi++) for (int ti = 0; ti < t; ti++) for (int hi = 0; hi < h; hi++) for (int i = 0; i < half; i++) {
                int o = ((bi * t + ti) * h + hi) * d;
                double cc = cos[(ti + off) * half + i], ss = sin[(ti + off) * half + i];
                double x1 = p[o + i], x2 = p[o + half + i];
                r[o + i] = x1 * cc + x2 * ss;
                r[o + half + i] = -x1 * ss + x2 * cc;
            }
            return rms64(r, d, 1.2);
        });
    }

    @Test
    void backout() {
        check("backout", new Tensor[] {rand(29, 1, 2, 3, 4), Tensor.of(new float[] {0.2f}, 1), rand(30, 1, 2, 3, 4)},
                v -> Ops.backout(v[0], v[1], v[2]), x -> {
                    double[] y = new double[24];
                    for (int i = 0; i < 24; i++) y[i] = x[0][i] - x[1][0] * x[2][i];
                    return y;
                });
    }

    /** The device path of backout (λ never read to the host; run here on the CPU backend): same values and gradients. */
    @Test
    void backoutWithLambdaLeftOnTheDevice() {
        check("backout (λ on the device)", new Tensor[] {rand(29, 1, 2, 3, 4), Tensor.of(new float[] {0.2f}, 1), rand(30, 1, 2, 3, 4)},
                v -> Ops.backoutOnDevice(Backend.cpu(), v[0], v[1], v[2]), x -> {
                    double[] y = new double[24];
                    for (int i = 0; i < 24; i++) y[i] = x[0][i] - x[1][0] * x[2][i];
                    return y;
                });
    }

    @ParameterizedTest
    @EnumSource(Reduction.class)
    void fusedLinearSoftcapCrossEntropyCropsPaddedVocabAndIgnoresMinusOne(Reduction red) {
        int n = 5, c = 6, vpad = 12, vocab = 10;
        int[] targets = {3, -1, 9, 0, 3};
        check("linear_softcap_ce " + red, new Tensor[] {rand(31, 1, n, c), rand(32, 3, vpad, c)},
                v -> Ops.linearSoftcapCrossEntropy(v[0], v[1], Tensor.ofInts(targets, n), vocab, 15f, red), x -> {
                    double[] logits = linear64(x[0], x[1], n, c, vpad);
                    double[] per = new double[n];
                    double sum = 0;
                    int cnt = 0;
                    for (int i = 0; i < n; i++) {
                        if (targets[i] < 0) continue;
                        double m = Double.NEGATIVE_INFINITY;
                        double[] z = new double[vocab];
                        for (int j = 0; j < vocab; j++) {
                            z[j] = 15 * Math.tanh(logits[i * vpad + j] / 15);
                            m = Math.max(m, z[j]);
                        }
                        double se = 0;
                        for (int j = 0; j < vocab; j++) se += Math.exp(z[j] - m);
                        per[i] = m + Math.log(se) - z[targets[i]];
                        sum += per[i];
                        cnt++;
                    }
                    return switch (red) {
                        case MEAN -> new double[] {sum / cnt};
                        case SUM -> new double[] {sum};
                        case NONE -> per;
                    };
                });
    }
}
