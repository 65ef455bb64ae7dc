package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;
import java.util.stream.Stream;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The backend conformance suite, written once against {@link Backend}: every op on random inputs against a float64
 * reference computed here, on the CPU backend always and on the CUDA backend where a GPU is usable (elsewhere each
 * CUDA case is skipped with the one-line reason: no driver, no device, missing library). Inputs are built on the
 * host and copied to the backend's device ({@link #up}); results come back with {@link Tensor#toCpu()}.
 * {@code -Dnanochat4j.test.seed=N} replays a failing seed.
 */
class BackendConformanceTest {
    static final long SEED = Long.getLong("nanochat4j.test.seed", System.nanoTime());

    static Stream<String> backends() {
        return Stream.of("cpu", "cuda");
    }

    static Backend backend(String name) {
        if (name.equals("cpu")) return Backend.cpu();
        return CudaTesting.gpu("CUDA backend");
    }

    static Tensor up(Backend be, Tensor host) {
        return be.device() == Device.CPU ? host : ((CudaBackend) be).upload(host);
    }

    static Random rng(String test) {
        return new Random(SEED ^ test.hashCode());
    }

    static float[] rand(Random r, int n, float scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        return a;
    }

    static Tensor randT(Random r, float scale, int... shape) {
        return Tensor.of(rand(r, Tensor.numel(shape), scale), shape);
    }

    static double[] d(Tensor t) {
        float[] f = t.toCpu().toFloatArray();
        double[] o = new double[f.length];
        for (int i = 0; i < f.length; i++) o[i] = f[i];
        return o;
    }

    /** |got − want| ≤ atol + rtol·|want| everywhere; the message names the op, the index and the seed. */
    static void close(String what, double[] want, Tensor got, double rtol, double atol) {
        close(what, want, got, rtol, atol, new double[want.length]);
    }

    /** {@link #close} with {@code slack[i]} more allowed at index i (an error bound the reference carries). */
    static void close(String what, double[] want, Tensor got, double rtol, double atol, double[] slack) {
        float[] g = got.toCpu().toFloatArray();
        assertEquals(want.length, g.length, what + ": element count");
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(g[i] - want[i]);
            if (!(err <= atol + rtol * Math.abs(want[i]) + slack[i])) {
                fail(what + ": index " + i + " got " + g[i] + " want " + want[i] + " (seed " + SEED + ", backend tensor " + got + ")");
            }
        }
    }

    static void close(String what, double[] want, Tensor got) {
        close(what, want, got, 1e-4, 1e-5);
    }

    // ------------------------------------------------------------------ references

    /** C = op(A)·op(B) for one 2-d problem (row-major). */
    static double[] mm(double[] a, boolean ta, double[] b, boolean tb, int m, int n, int k, int ao, int bo) {
        double[] c = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int p = 0; p < k; p++) {
                    double av = ta ? a[ao + p * m + i] : a[ao + i * k + p];
                    double bv = tb ? b[bo + j * k + p] : b[bo + p * n + j];
                    s += av * bv;
                }
                c[i * n + j] = s;
            }
        }
        return c;
    }

    // ------------------------------------------------------------------ matmul

    @ParameterizedTest
    @MethodSource("backends")
    void matmulAllTransposesAndBatches(String name) {
        Backend be = backend(name);
        Random r = rng("matmul");
        int batch = 3, m = 17, n = 13, k = 29;
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                Tensor a = randT(r, 1f, batch, ta ? k : m, ta ? m : k);
                Tensor b2 = randT(r, 1f, tb ? n : k, tb ? k : n);
                Tensor b3 = randT(r, 1f, batch, tb ? n : k, tb ? k : n);
                double[] ad = d(a), b2d = d(b2), b3d = d(b3);
                double[] want2 = new double[batch * m * n], want3 = new double[batch * m * n];
                for (int q = 0; q < batch; q++) {
                    System.arraycopy(mm(ad, ta, b2d, tb, m, n, k, q * m * k, 0), 0, want2, q * m * n, m * n);
                    System.arraycopy(mm(ad, ta, b3d, tb, m, n, k, q * m * k, q * n * k), 0, want3, q * m * n, m * n);
                }
                close("matmul shared B ta=" + ta + " tb=" + tb, want2, be.matmul(up(be, a), ta, up(be, b2), tb));
                close("matmul batched ta=" + ta + " tb=" + tb, want3, be.matmul(up(be, a), ta, up(be, b3), tb));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void linearAndItsGradients(String name) {
        Backend be = backend(name);
        Random r = rng("linear");
        int rows = 2 * 7, in = 33, out = 19;
        Tensor x = randT(r, 1f, 2, 7, in), w = randT(r, 1f, out, in), dy = randT(r, 1f, 2, 7, out);
        double[] xd = d(x), wd = d(w), dyd = d(dy);
        close("linear", mm(xd, false, wd, true, rows, out, in, 0, 0), be.linear(up(be, x), up(be, w)));
        close("linearBackwardInput", mm(dyd, false, wd, false, rows, in, out, 0, 0), be.linearBackwardInput(up(be, dy), up(be, w)));
        Tensor dW = up(be, Tensor.full(1f, out, in));
        be.linearBackwardWeight(up(be, dy), up(be, x), dW, true);
        double[] want = mm(dyd, true, xd, false, out, in, rows, 0, 0);
        for (int i = 0; i < want.length; i++) want[i] += 1;
        close("linearBackwardWeight accumulate", want, dW);
    }

    /** A product over an empty inner dimension is a sum of nothing: zeros, never what the allocator left there. */
    @ParameterizedTest
    @MethodSource("backends")
    void productsOverAnEmptyInnerDimAreZeros(String name) {
        Backend be = backend(name);
        Tensor y = be.linear(up(be, Tensor.zeros(2, 3, 0)), up(be, Tensor.zeros(5, 0))); // in = 0
        assertArrayEquals(new int[] {2, 3, 5}, y.shape());
        assertArrayEquals(new float[30], y.toCpu().toFloatArray(), "linear with in = 0");
        Tensor dx = be.linearBackwardInput(up(be, Tensor.zeros(3, 0)), up(be, Tensor.zeros(0, 4))); // out = 0
        assertArrayEquals(new int[] {3, 4}, dx.shape());
        assertArrayEquals(new float[12], dx.toCpu().toFloatArray(), "linearBackwardInput with out = 0");
    }

    // ------------------------------------------------------------------ norms, rotary, activations

    @ParameterizedTest
    @MethodSource("backends")
    void rmsNormForwardBackward(String name) {
        Backend be = backend(name);
        Random r = rng("rms");
        for (int dd : new int[] {40, 300}) {   // under and over one block's threads a row
            int rows = 6;
            float scale = 1.2f;
            Tensor x = randT(r, 2f, rows, dd), dy = randT(r, 1f, rows, dd);
            double[] xd = d(x), g = d(dy), y = new double[xd.length], dx = new double[xd.length], inv = new double[rows];
            for (int i = 0; i < rows; i++) {
                double ss = 0, dot = 0;
                for (int j = 0; j < dd; j++) {
                    ss += xd[i * dd + j] * xd[i * dd + j];
                    dot += g[i * dd + j] * xd[i * dd + j];
                }
                double rs = 1 / Math.sqrt(ss / dd + Backend.RMS_EPS);
                inv[i] = rs;
                for (int j = 0; j < dd; j++) {
                    y[i * dd + j] = scale * xd[i * dd + j] * rs;
                    dx[i * dd + j] = scale * rs * g[i * dd + j] - scale * rs * rs * rs * dot / dd * xd[i * dd + j];
                }
            }
            close("rmsNorm D=" + dd, y, be.rmsNorm(up(be, x), scale));
            close("rmsNormBackward D=" + dd, dx, be.rmsNormBackward(up(be, x), up(be, dy), scale));
            // keeping 1/rms, and the backward from the output and 1/rms (the residual stream not read)
            Backend.NormOut n = be.rmsNormKeepingInv(up(be, x), scale);
            close("rmsNormKeepingInv y D=" + dd, y, n.y());
            close("rmsNormKeepingInv 1/rms D=" + dd, inv, n.inv());
            assertArrayEquals(new int[] {rows, 1}, n.inv().shape());
            close("rmsNormBackwardFromOutput D=" + dd, dx, be.rmsNormBackwardFromOutput(up(be, dy), n.y(), n.inv(), scale));
        }
    }

    @ParameterizedTest
    @MethodSource("backends")
    void rotaryForwardBackward(String name) {
        Backend be = backend(name);
        Random r = rng("rotary");
        int b = 2, t = 5, h = 3, dd = 8, off = 4, half = dd / 2;
        Backend.RotaryTables tab = be.rotaryTables(16, dd, 10000);
        double[] cos = d(tab.cos()), sin = d(tab.sin());
        Tensor x = randT(r, 1f, b, t, h, dd);
        double[] xd = d(x), y = new double[xd.length], back = new double[xd.length];
        for (int bt = 0; bt < b * t; bt++) {
            int pos = off + bt % t;
            for (int hh = 0; hh < h; hh++) {
                int base = (bt * h + hh) * dd;
                for (int i = 0; i < half; i++) {
                    double c = cos[pos * half + i], s = sin[pos * half + i], x1 = xd[base + i], x2 = xd[base + half + i];
                    y[base + i] = x1 * c + x2 * s;
                    y[base + half + i] = -x1 * s + x2 * c;
                    back[base + i] = x1 * c - x2 * s;
                    back[base + half + i] = x1 * s + x2 * c;
                }
            }
        }
        assertEquals(Math.cos(3 * Math.pow(10000, -2.0 / dd)), cos[3 * half + 1], 1e-6, "rotary table entry");
        close("rotary", y, be.rotary(up(be, x), tab.cos(), tab.sin(), off));
        close("rotaryBackward", back, be.rotaryBackward(up(be, x), tab.cos(), tab.sin(), off));

        // QK-norm after RoPE (rotaryRmsNorm) and its backward from the output: against rms_norm of the rotated rows
        // above and the rotation by +θ of rms_norm's gradient, in float64
        float scale = 1.2f;
        Tensor dy = randT(r, 1f, b, t, h, dd);
        double[] g = d(dy), yn = new double[xd.length], inv = new double[b * t * h], dr = new double[xd.length], dx = new double[xd.length];
        for (int row = 0; row < b * t * h; row++) {
            int base = row * dd, pos = off + (row / h) % t;
            double ss = 0, dot = 0;
            for (int i = 0; i < dd; i++) {
                ss += y[base + i] * y[base + i];
                dot += g[base + i] * y[base + i];
            }
            double rs = 1 / Math.sqrt(ss / dd + Backend.RMS_EPS);
            inv[row] = rs;
            for (int i = 0; i < dd; i++) {
                yn[base + i] = scale * y[base + i] * rs;
                dr[base + i] = scale * rs * g[base + i] - scale * rs * rs * rs * dot / dd * y[base + i];
            }
            for (int i = 0; i < half; i++) {
                double c = cos[pos * half + i], sn = sin[pos * half + i], g1 = dr[base + i], g2 = dr[base + half + i];
                dx[base + i] = g1 * c - g2 * sn;
                dx[base + half + i] = g1 * sn + g2 * c;
            }
        }
        Backend.NormOut n = be.rotaryRmsNorm(up(be, x), tab.cos(), tab.sin(), off, scale, true);
        close("rotaryRmsNorm y", yn, n.y());
        close("rotaryRmsNorm 1/rms", inv, n.inv());
        close("rotaryRmsNormBackward", dx, be.rotaryRmsNormBackward(up(be, dy), n.y(), n.inv(), tab.cos(), tab.sin(), off, scale));
        assertEquals(null, be.rotaryRmsNorm(up(be, x), tab.cos(), tab.sin(), off, scale, false).inv(), "no 1/rms unless asked");
    }

    @ParameterizedTest
    @MethodSource("backends")
    void activationsAndTheirGradients(String name) {
        Backend be = backend(name);
        Random r = rng("act");
        Tensor x = randT(r, 3f, 7, 11), dy = randT(r, 1f, 7, 11);
        double[] xd = d(x), g = d(dy);
        int n = xd.length;
        double[] relu2 = new double[n], drelu2 = new double[n], sig = new double[n], sc = new double[n], dsc = new double[n];
        double cap = 2.5;
        for (int i = 0; i < n; i++) {
            double m = Math.max(xd[i], 0);
            relu2[i] = m * m;
            drelu2[i] = 2 * m * g[i];
            sig[i] = 1 / (1 + Math.exp(-xd[i]));
            sc[i] = cap * Math.tanh(xd[i] / cap);
            double t = Math.tanh(xd[i] / cap);
            dsc[i] = g[i] * (1 - t * t);
        }
        Tensor xs = up(be, x), dys = up(be, dy);
        close("relu2", relu2, be.relu2(xs));
        close("relu2Backward", drelu2, be.relu2Backward(xs, dys));
        Tensor s = be.sigmoid(xs);
        close("sigmoid", sig, s);
        double[] dsig = new double[n];
        for (int i = 0; i < n; i++) dsig[i] = g[i] * sig[i] * (1 - sig[i]);
        close("sigmoidBackward", dsig, be.sigmoidBackward(s, dys));
        close("softcap", sc, be.softcap(xs, (float) cap));
        close("softcapBackward", dsc, be.softcapBackward(xs, dys, (float) cap));
        assertThrows(IllegalArgumentException.class, () -> be.softcap(xs, 0f));
        // NaN goes through relu² both ways (Math.max and PyTorch's relu keep it; a max that drops it hides a diverged run)
        Tensor nan = up(be, Tensor.of(new float[] {Float.NaN, -1f, 2f, Float.NaN}, 4));
        Tensor ones = up(be, Tensor.of(new float[] {1f, 1f, 1f, 1f}, 4));
        float[] fw = be.relu2(nan).toCpu().toFloatArray(), bw = be.relu2Backward(nan, ones).toCpu().toFloatArray();
        assertTrue(Float.isNaN(fw[0]) && fw[1] == 0f && fw[2] == 4f && Float.isNaN(fw[3]), java.util.Arrays.toString(fw));
        assertTrue(Float.isNaN(bw[0]) && bw[1] == 0f && bw[2] == 4f && Float.isNaN(bw[3]), java.util.Arrays.toString(bw));
    }

    // ------------------------------------------------------------------ elementwise

    @ParameterizedTest
    @MethodSource("backends")
    void broadcastingBinaryOpsAndSumToShape(String name) {
        Backend be = backend(name);
        Random r = rng("bcast");
        Tensor a = randT(r, 2f, 3, 4, 5), b = randT(r, 2f, 4, 1);
        double[] ad = d(a), bd = d(b), add = new double[60], mul = new double[60], div = new double[60];
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 4; j++) {
                for (int k = 0; k < 5; k++) {
                    int o = (i * 4 + j) * 5 + k;
                    double x = ad[o], y = bd[j];
                    add[o] = x + y;
                    mul[o] = x * y;
                    div[o] = x / y;
                }
            }
        }
        Tensor as = up(be, a), bs = up(be, b);
        close("add", add, be.add(as, bs));
        close("mul", mul, be.mul(as, bs));
        close("div", div, be.div(as, bs));
        close("add (b first)", add, be.add(bs, as));
        double[] s = new double[4], s2 = new double[5];
        for (int o = 0; o < 60; o++) {
            s[(o / 5) % 4] += ad[o];
            s2[o % 5] += ad[o];
        }
        close("sumToShape (4,1)", s, be.sumToShape(as, 4, 1));
        close("sumToShape (5)", s2, be.sumToShape(as, 5));
        assertThrows(IllegalArgumentException.class, () -> be.add(as, up(be, Tensor.zeros(3, 5))));
    }

    @ParameterizedTest
    @MethodSource("backends")
    void scaleAxpyMixLerpClampSqrt(String name) {
        Backend be = backend(name);
        Random r = rng("mix");
        int n = 37;
        Tensor x = randT(r, 1f, n), y = randT(r, 1f, n), pos = Tensor.of(rand(r, n, 1f));
        for (int i = 0; i < n; i++) pos.floats()[i] = Math.abs(pos.floats()[i]) + 0.1f;
        double[] xd = d(x), yd = d(y), pd = d(pos);
        double[] sc = new double[n], ax = new double[n], apb = new double[n], mix = new double[n], lerp = new double[n], lerp2 = new double[n],
                cl = new double[n], sq = new double[n], rsq = new double[n];
        for (int i = 0; i < n; i++) {
            sc[i] = 3 * xd[i];
            ax[i] = yd[i] + 0.5 * xd[i];
            apb[i] = 2 * xd[i] - 3 * yd[i];
            mix[i] = 0.7 * xd[i] + 0.2 * yd[i];
            lerp[i] = xd[i] + 0.3 * (yd[i] - xd[i]);
            lerp2[i] = yd[i] - (yd[i] - xd[i]) * (1 - 0.8);
            cl[i] = Math.min(Math.max(xd[i], -0.3), 0.4);
            sq[i] = Math.sqrt(pd[i]);
            rsq[i] = 1 / Math.sqrt(pd[i]);
        }
        Tensor xs = up(be, x), ys = up(be, y);
        close("scale", sc, be.scale(xs, 3f));
        Tensor acc = up(be, y.copy());
        be.axpy(0.5f, xs, acc);
        close("axpy", ax, acc);
        close("axpby", apb, be.axpby(2f, xs, -3f, ys));
        Tensor la = up(be, Tensor.of(new float[] {0.7f})), lb = up(be, Tensor.of(new float[] {0.2f}));
        close("lambdaMix", mix, be.lambdaMix(la, xs, lb, ys));
        Backend.MixGrads mg = be.lambdaMixBackward(ys, la, xs, lb, ys);
        double dA = 0, dB = 0;
        double[] dx = new double[n], dx0 = new double[n];
        for (int i = 0; i < n; i++) {
            dA += yd[i] * xd[i];
            dB += yd[i] * yd[i];
            dx[i] = 0.7 * yd[i];
            dx0[i] = 0.2 * yd[i];
        }
        close("lambdaMixBackward dA", new double[] {dA}, mg.da());
        close("lambdaMixBackward dB", new double[] {dB}, mg.db());
        close("lambdaMixBackward dx", dx, mg.dx());
        close("lambdaMixBackward dx0", dx0, mg.dx0());
        close("lerp w<0.5", lerp, be.lerp(xs, ys, 0.3f));
        close("lerp w>=0.5", lerp2, be.lerp(xs, ys, 0.8f));
        close("clamp", cl, be.clamp(xs, -0.3f, 0.4f));
        float[] cn = be.clamp(up(be, Tensor.of(new float[] {Float.NaN, -1f, 1f}, 3)), -0.3f, 0.4f).toCpu().toFloatArray();
        assertTrue(Float.isNaN(cn[0]) && cn[1] == -0.3f && cn[2] == 0.4f, "clamp keeps NaN: " + java.util.Arrays.toString(cn));
        close("sqrt", sq, be.sqrt(up(be, pos)));
        close("rsqrt", rsq, be.rsqrt(up(be, pos)));
    }

    /** dx = a·dy and dx0 = b·dy are plain products: an infinite upstream gradient stays infinite (a·dy + 0·dy is NaN). */
    @ParameterizedTest
    @MethodSource("backends")
    void lambdaMixBackwardKeepsAnInfiniteGradientInfinite(String name) {
        Backend be = backend(name);
        float inf = Float.POSITIVE_INFINITY;
        Tensor dy = up(be, Tensor.of(new float[] {inf, -inf, 1f}, 3)), x = up(be, Tensor.of(new float[] {1f, 1f, 1f}, 3));
        Tensor a = up(be, Tensor.of(new float[] {2f})), b = up(be, Tensor.of(new float[] {0.5f}));
        Backend.MixGrads g = be.lambdaMixBackward(dy, a, x, b, x);
        assertArrayEquals(new float[] {inf, -inf, 2f}, g.dx().toCpu().toFloatArray(), "dx");
        assertArrayEquals(new float[] {inf, -inf, 0.5f}, g.dx0().toCpu().toFloatArray(), "dx0");
        assertArrayEquals(new int[] {3}, g.dx().shape());
    }

    // ------------------------------------------------------------------ reductions

    @ParameterizedTest
    @MethodSource("backends")
    void reductions(String name) {
        Backend be = backend(name);
        Random r = rng("red");
        int rows = 9, cols = 301;
        Tensor x = randT(r, 1f, rows, cols), y = randT(r, 1f, rows, cols);
        x.floats()[4 * cols + 17] = 5f; // a clear maximum
        x.floats()[4 * cols + 200] = 5f; // a tie after it: argmax takes the first
        double[] xd = d(x), yd = d(y);
        double dot = 0;
        for (int i = 0; i < xd.length; i++) dot += xd[i] * yd[i];
        Tensor xs = up(be, x);
        close("dot", new double[] {dot}, be.dot(xs, up(be, y)), 1e-5, 1e-4);
        double[] norms = new double[rows];
        int[] amax = new int[rows];
        for (int i = 0; i < rows; i++) {
            double s = 0, m = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < cols; j++) {
                double v = xd[i * cols + j];
                s += v * v;
                if (v > m) {
                    m = v;
                    amax[i] = j;
                }
            }
            norms[i] = Math.sqrt(s);
        }
        close("rowNorms", norms, be.rowNorms(xs));
        Tensor am = be.argmax(xs);
        assertEquals(DType.I32, am.dtype());
        assertArrayEquals(amax, am.toCpu().toIntArray(), "argmax (seed " + SEED + ")");
        assertArrayEquals(new int[] {rows}, am.shape(), "argmax drops the last dim");
    }

    // ------------------------------------------------------------------ layout, embedding

    @ParameterizedTest
    @MethodSource("backends")
    void narrowConcatAssign(String name) {
        Backend be = backend(name);
        Random r = rng("layout");
        Tensor x = randT(r, 1f, 3, 6, 4);
        float[] xf = x.toFloatArray();
        Tensor xs = up(be, x);
        Tensor nar = be.narrow(xs, 1, 2, 3);
        double[] want = new double[3 * 3 * 4];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) for (int k = 0; k < 4; k++) want[(i * 3 + j) * 4 + k] = xf[(i * 6 + j + 2) * 4 + k];
        close("narrow", want, nar, 0, 0);
        double[] back = new double[xf.length];
        for (int i = 0; i < 3; i++) for (int j = 0; j < 3; j++) for (int k = 0; k < 4; k++) back[(i * 6 + j + 2) * 4 + k] = want[(i * 3 + j) * 4 + k];
        close("narrowBackward", back, be.narrowBackward(nar, 1, 2, 6), 0, 0);
        Tensor a = be.narrow(xs, 1, 0, 2), b = be.narrow(xs, 1, 2, 4);
        close("concat", d(x), be.concat(1, a, b), 0, 0);
        Tensor dst = up(be, Tensor.zeros(3, 6, 4));
        be.narrowAssign(dst, 1, 2, nar);
        close("narrowAssign", back, dst, 0, 0);
    }

    @ParameterizedTest
    @MethodSource("backends")
    void embeddingGatherScatterAndBadIds(String name) {
        Backend be = backend(name);
        Random r = rng("emb");
        int v = 11, e = 7;
        Tensor table = randT(r, 1f, v, e);
        int[] ids = {3, 0, 10, 3, 5, 3};
        double[] td = d(table), want = new double[ids.length * e];
        for (int i = 0; i < ids.length; i++) for (int c = 0; c < e; c++) want[i * e + c] = td[ids[i] * e + c];
        Tensor idT = up(be, Tensor.ofInts(ids, 2, 3));
        Tensor out = be.embedding(up(be, table), idT);
        assertArrayEquals(new int[] {2, 3, e}, out.shape());
        close("embedding", want, out, 0, 0);
        Tensor dy = randT(r, 1f, 2, 3, e);
        double[] dyd = d(dy), grad = new double[v * e];
        for (int i = 0; i < ids.length; i++) for (int c = 0; c < e; c++) grad[ids[i] * e + c] += dyd[i * e + c];
        Tensor dT = up(be, Tensor.zeros(v, e));
        be.embeddingBackward(up(be, dy), idT, dT);
        close("embeddingBackward", grad, dT);
        Tensor badIds = up(be, Tensor.ofInts(new int[] {1, 11}, 2));
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, () -> be.embedding(up(be, table), badIds));
        assertTrue(ex.getMessage().contains("11"), ex.getMessage());
    }

    // ------------------------------------------------------------------ attention

    /** Naive float64 causal GQA attention with a window; returns y and fills lse. */
    static double[] attnRef(double[] q, double[] k, double[] v, int b, int t, int h, int kv, int dd, int window, double scale, double[] lse) {
        double[] y = new double[q.length];
        int g = h / kv;
        for (int bb = 0; bb < b; bb++) {
            for (int hh = 0; hh < h; hh++) {
                int kh = hh / g;
                for (int i = 0; i < t; i++) {
                    double[] s = new double[t];
                    double m = Double.NEGATIVE_INFINITY;
                    for (int j = 0; j <= i; j++) {
                        if (window >= 0 && i - j > window) {
                            s[j] = Double.NEGATIVE_INFINITY;
                            continue;
                        }
                        double acc = 0;
                        for (int c = 0; c < dd; c++) acc += q[((bb * t + i) * h + hh) * dd + c] * k[((bb * t + j) * kv + kh) * dd + c];
                        s[j] = acc * scale;
                        m = Math.max(m, s[j]);
                    }
                    double z = 0;
                    for (int j = 0; j <= i; j++) if (s[j] != Double.NEGATIVE_INFINITY) z += Math.exp(s[j] - m);
                    if (lse != null) lse[(bb * h + hh) * t + i] = m + Math.log(z);
                    for (int j = 0; j <= i; j++) {
                        if (s[j] == Double.NEGATIVE_INFINITY) continue;
                        double p = Math.exp(s[j] - m) / z;
                        for (int c = 0; c < dd; c++) y[((bb * t + i) * h + hh) * dd + c] += p * v[((bb * t + j) * kv + kh) * dd + c];
                    }
                }
            }
        }
        return y;
    }

    @ParameterizedTest
    @MethodSource("backends")
    void attentionForwardBackwardAndCached(String name) {
        Backend be = backend(name);
        Random r = rng("attn");
        // head dims 16, 64 and 128 (nanochat's): the kernels keep DPL = ⌈D/32⌉ values a lane, 1, 2 and 4 here
        for (int dd : new int[] {16, 64, 128}) {
            int b = 2, t = 37, h = 4, kv = 2;
            float scale = (float) (1 / Math.sqrt(dd));
            Tensor q = randT(r, 1f, b, t, h, dd), k = randT(r, 1f, b, t, kv, dd), v = randT(r, 1f, b, t, kv, dd);
            Tensor dy = randT(r, 1f, b, t, h, dd);
            double[] qd = d(q), kd = d(k), vd = d(v), dyd = d(dy);
            Tensor qs = up(be, q), ks = up(be, k), vs = up(be, v), dys = up(be, dy);
            for (int window : new int[] {-1, 5}) {
                double[] lse = new double[b * h * t];
                double[] y = attnRef(qd, kd, vd, b, t, h, kv, dd, window, scale, lse);
                Backend.AttentionOut out = be.attention(qs, ks, vs, window, scale);
                close("attention y D=" + dd + " window=" + window, y, out.y(), 1e-4, 1e-5);
                close("attention lse D=" + dd + " window=" + window, lse, out.lse(), 1e-5, 1e-5);
                // gradients by central differences of Σ dy·y in float64 would be slow; use the analytic float64 backward
                double[][] g = attnGradRef(qd, kd, vd, dyd, b, t, h, kv, dd, window, scale);
                Backend.AttentionGrads gr = be.attentionBackward(qs, ks, vs, out.y(), out.lse(), dys, window, scale);
                close("attention dq D=" + dd + " window=" + window, g[0], gr.dq(), 1e-3, 1e-4);
                close("attention dk D=" + dd + " window=" + window, g[1], gr.dk(), 1e-3, 1e-4);
                close("attention dv D=" + dd + " window=" + window, g[2], gr.dv(), 1e-3, 1e-4);
                // cached: the last 3 queries against caches holding all t keys (Tmax = t + 4)
                int tq = 3, pos = t - tq, tmax = t + 4;
                Tensor kc = Tensor.zeros(b, tmax, kv, dd), vc = Tensor.zeros(b, tmax, kv, dd);
                for (int bb = 0; bb < b; bb++) {
                    kc.select(bb).slice(0, t).copyFrom(k.select(bb));
                    vc.select(bb).slice(0, t).copyFrom(v.select(bb));
                }
                Tensor qtail = Tensor.zeros(b, tq, h, dd);
                double[] want = new double[b * tq * h * dd];
                for (int bb = 0; bb < b; bb++) {
                    qtail.select(bb).copyFrom(q.select(bb).slice(pos, t));
                    System.arraycopy(y, (bb * t + pos) * h * dd, want, bb * tq * h * dd, tq * h * dd);
                }
                close("attentionCached D=" + dd + " window=" + window, want,
                        be.attentionCached(up(be, qtail), up(be, kc), up(be, vc), pos, window, scale), 1e-4, 1e-5);
                // decode steps: one query at positions across the decode kernel's 32-key chunks (the cache holding
                // later keys too), with the position as an argument and as an int in device memory
                for (int p : new int[] {0, 31, 32, t - 1}) {
                    Tensor q1 = Tensor.zeros(b, 1, h, dd);
                    double[] want1 = new double[b * h * dd];
                    for (int bb = 0; bb < b; bb++) {
                        q1.select(bb).copyFrom(q.select(bb).slice(p, p + 1));
                        System.arraycopy(y, (bb * t + p) * h * dd, want1, bb * h * dd, h * dd);
                    }
                    String at = " D=" + dd + " window=" + window + " position " + p;
                    close("decode" + at, want1, be.attentionCached(up(be, q1), up(be, kc), up(be, vc), p, window, scale), 1e-4, 1e-5);
                    close("decode, position on the device," + at, want1, be.attentionCachedAt(up(be, q1), up(be, kc), up(be, vc),
                            up(be, Tensor.ofInts(new int[] {p}, 1)), window, scale), 1e-4, 1e-5);
                }
            }
        }
    }

    /**
     * Bad shapes get the same message from every backend (OpChecks holds each op's shape rules): each call here is
     * refused on the CPU and on this backend, with one message but for the device the tensors name.
     */
    @ParameterizedTest
    @MethodSource("backends")
    void badShapesGetTheSameMessageOnEveryBackend(String name) {
        Backend be = backend(name), cpu = Backend.cpu();
        String[] cases = {"matmul 1-d", "matmul inner", "matmul batch", "linear", "linearBackwardInput", "linearBackwardWeight", "rotary odd D",
                "rotary tables", "rotary positions", "add", "sumToShape", "lambdaMix", "clamp", "rowNorms", "argmax", "narrow", "narrowBackward",
                "concat none", "concat ranks", "concat shapes", "narrowAssign shapes", "narrowAssign range", "embedding", "embeddingBackward",
                "attention qkv", "attentionBackward lse", "attentionCached caches", "attentionCached GQA", "attentionCached overflow",
                "crossEntropy logits", "crossEntropy targets", "linearSoftcapCrossEntropyBackward rowGrad"};
        for (String c : cases) {
            String want = refusal(cpu, c), got = refusal(be, c);
            assertTrue(want.contains(":"), c + ": " + want);
            assertEquals(want, got.replace(" " + Device.CUDA, ""), c);
        }
    }

    /** The message {@code be} refuses the bad call {@code c} with. */
    private static String refusal(Backend be, String c) {
        Tensor m23 = up(be, Tensor.zeros(2, 3)), m45 = up(be, Tensor.zeros(4, 5)), v4 = up(be, Tensor.zeros(4));
        Tensor x = up(be, Tensor.zeros(1, 2, 2, 4)), k = up(be, Tensor.zeros(1, 2, 1, 4)), cs = up(be, Tensor.zeros(8, 2));
        Tensor ids = up(be, Tensor.ofInts(new int[] {0, 1}, 2)), one = up(be, Tensor.scalar(1f));
        Executable call = switch (c) {
            case "matmul 1-d" -> () -> be.matmul(v4, false, m23, false);
            case "matmul inner" -> () -> be.matmul(m23, false, m45, false);
            case "matmul batch" -> () -> be.matmul(up(be, Tensor.zeros(2, 2, 3)), false, up(be, Tensor.zeros(3, 3, 2)), false);
            case "linear" -> () -> be.linear(m23, m45);
            case "linearBackwardInput" -> () -> be.linearBackwardInput(m23, m45);
            case "linearBackwardWeight" -> () -> be.linearBackwardWeight(m23, up(be, Tensor.zeros(3, 5)), up(be, Tensor.zeros(3, 5)), false);
            case "rotary odd D" -> () -> be.rotary(up(be, Tensor.zeros(1, 2, 1, 3)), cs, cs, 0);
            case "rotary tables" -> () -> be.rotary(x, up(be, Tensor.zeros(8, 3)), cs, 0);
            case "rotary positions" -> () -> be.rotary(x, cs, cs, 7);
            case "add" -> () -> be.add(m23, v4);
            case "sumToShape" -> () -> be.sumToShape(m23, 4);
            case "lambdaMix" -> () -> be.lambdaMix(up(be, Tensor.zeros(2)), m23, one, m23);
            case "clamp" -> () -> be.clamp(m23, 1f, -1f);
            case "rowNorms" -> () -> be.rowNorms(one);
            case "argmax" -> () -> be.argmax(up(be, Tensor.zeros(2, 0)));
            case "narrow" -> () -> be.narrow(m23, 1, 2, 2);
            case "narrowBackward" -> () -> be.narrowBackward(m23, 1, 2, 4);
            case "concat none" -> () -> be.concat(0);
            case "concat ranks" -> () -> be.concat(0, m23, v4);
            case "concat shapes" -> () -> be.concat(0, m23, m45);
            case "narrowAssign shapes" -> () -> be.narrowAssign(m45, 1, 0, m23);
            case "narrowAssign range" -> () -> be.narrowAssign(up(be, Tensor.zeros(2, 4)), 1, 2, m23);
            case "embedding" -> () -> be.embedding(v4, ids);
            case "embeddingBackward" -> () -> be.embeddingBackward(m23, ids, m45);
            case "attention qkv" -> () -> be.attention(x, up(be, Tensor.zeros(1, 3, 1, 4)), up(be, Tensor.zeros(1, 3, 1, 4)), -1, 0.5f);
            case "attentionBackward lse" -> () -> be.attentionBackward(x, k, k, x, up(be, Tensor.zeros(1, 2, 3)), x, -1, 0.5f);
            case "attentionCached caches" -> () -> be.attentionCached(x, up(be, Tensor.zeros(1, 8, 1, 2)), up(be, Tensor.zeros(1, 8, 1, 2)), 0, -1, 0.5f);
            case "attentionCached GQA" -> () -> be.attentionCached(up(be, Tensor.zeros(1, 1, 3, 4)), up(be, Tensor.zeros(1, 8, 2, 4)),
                    up(be, Tensor.zeros(1, 8, 2, 4)), 0, -1, 0.5f);
            case "attentionCached overflow" -> () -> be.attentionCached(x, up(be, Tensor.zeros(1, 8, 1, 4)), up(be, Tensor.zeros(1, 8, 1, 4)), 7, -1, 0.5f);
            case "crossEntropy logits" -> () -> be.crossEntropy(v4, ids, 15f, Reduction.MEAN, false);
            case "crossEntropy targets" -> () -> be.crossEntropy(m23, up(be, Tensor.ofInts(new int[] {0, 1, 2}, 3)), 15f, Reduction.MEAN, false);
            case "linearSoftcapCrossEntropyBackward rowGrad" -> () -> be.linearSoftcapCrossEntropyBackward(m23, up(be, Tensor.zeros(8, 3)), ids, 8, 15f, v4);
            default -> throw new IllegalArgumentException("no such case " + c);
        };
        return assertThrows(IllegalArgumentException.class, call, c + " on " + be.device()).getMessage();
    }

    /** Every backend refuses an empty attention (it would leave lse unwritten) and a scale that is not finite and positive. */
    @ParameterizedTest
    @MethodSource("backends")
    void attentionRefusesEmptySizesAndBadScales(String name) {
        Backend be = backend(name);
        Tensor q = up(be, Tensor.zeros(1, 2, 2, 4)), k = up(be, Tensor.zeros(1, 2, 1, 4)), lse = up(be, Tensor.zeros(1, 2, 2));
        Tensor q0 = up(be, Tensor.zeros(1, 2, 2, 0)), k0 = up(be, Tensor.zeros(1, 2, 1, 0));
        refused("attention forward: sizes must be positive", () -> be.attention(q0, k0, k0, -1, 1f));
        refused("attention backward: sizes must be positive", () -> be.attentionBackward(q0, k0, k0, q0, lse, q0, -1, 1f));
        Tensor cache = up(be, Tensor.zeros(1, 4, 1, 0));
        refused("attention forwardCached: sizes must be positive", () -> be.attentionCached(up(be, Tensor.zeros(1, 1, 2, 0)), cache, cache, 0, -1, 1f));
        Tensor qt = up(be, Tensor.zeros(1, 0, 2, 4)), kt = up(be, Tensor.zeros(1, 0, 1, 4));
        refused("attention forward: sizes must be positive", () -> be.attention(qt, kt, kt, -1, 1f));
        Tensor kc = up(be, Tensor.zeros(1, 4, 1, 4));
        for (float s : new float[] {0f, -0.5f, Float.NaN, Float.POSITIVE_INFINITY}) {
            refused("attention forward: scale must be positive and finite", () -> be.attention(q, k, k, -1, s));
            refused("attention backward: scale must be positive and finite", () -> be.attentionBackward(q, k, k, q, lse, q, -1, s));
            refused("attention forwardCached: scale must be positive and finite", () -> be.attentionCached(q, kc, kc, 0, -1, s));
        }
    }

    static void refused(String message, Executable call) {
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class, call, message);
        assertTrue(ex.getMessage().startsWith(message), ex.getMessage());
    }

    /**
     * A NaN key poisons exactly the rows that see it, past the kernel's first 32-key tile too (a running max by
     * IEEE maxNum once took NaN for "nothing seen yet" and skipped that tile, leaving later rows finite).
     */
    @ParameterizedTest
    @MethodSource("backends")
    void attentionPropagatesANanKeyToTheRowsThatSeeIt(String name) {
        Backend be = backend(name);
        Random r = rng("attn-nan");
        int b = 2, t = 40, h = 4, kv = 2, dd = 16;
        Tensor q = randT(r, 1f, b, t, h, dd), k = randT(r, 1f, b, t, kv, dd), v = randT(r, 1f, b, t, kv, dd);
        float[] kf = k.toFloatArray();
        kf[0] = Float.NaN; // batch 0, position 0, kv head 0: seen by query heads 0 and 1 of batch 0
        Tensor kn = Tensor.of(kf, b, t, kv, dd);
        for (int window : new int[] {-1, 5}) {
            float[] y = be.attention(up(be, q), up(be, kn), up(be, v), window, (float) (1 / Math.sqrt(dd))).y().toCpu().toFloatArray();
            for (int bb = 0; bb < b; bb++) {
                for (int i = 0; i < t; i++) {
                    for (int hh = 0; hh < h; hh++) {
                        boolean sees = bb == 0 && hh / (h / kv) == 0 && (window < 0 || i <= window);
                        for (int c = 0; c < dd; c++) {
                            float x = y[((bb * t + i) * h + hh) * dd + c];
                            assertTrue(sees == Float.isNaN(x), "window " + window + " batch " + bb + " row " + i + " head " + hh
                                    + " channel " + c + ": " + x + (sees ? " (sees the NaN key)" : ""));
                        }
                    }
                }
            }
        }
    }

    /** dq, dk, dv of Σ dy·y by the analytic softmax backward in float64. */
    static double[][] attnGradRef(double[] q, double[] k, double[] v, double[] dy, int b, int t, int h, int kv, int dd, int window, double scale) {
        double[] dq = new double[q.length], dk = new double[k.length], dv = new double[v.length];
        int g = h / kv;
        for (int bb = 0; bb < b; bb++) {
            for (int hh = 0; hh < h; hh++) {
                int kh = hh / g;
                for (int i = 0; i < t; i++) {
                    double[] p = new double[t];
                    double m = Double.NEGATIVE_INFINITY;
                    boolean[] ok = new boolean[t];
                    for (int j = 0; j <= i; j++) {
                        ok[j] = window < 0 || i - j <= window;
                        if (!ok[j]) continue;
                        double acc = 0;
                        for (int c = 0; c < dd; c++) acc += q[((bb * t + i) * h + hh) * dd + c] * k[((bb * t + j) * kv + kh) * dd + c];
                        p[j] = acc * scale;
                        m = Math.max(m, p[j]);
                    }
                    double z = 0;
                    for (int j = 0; j <= i; j++) if (ok[j]) z += Math.exp(p[j] - m);
                    double[] dp = new double[t];
                    double rowSum = 0;
                    for (int j = 0; j <= i; j++) {
                        if (!ok[j]) continue;
                        p[j] = Math.exp(p[j] - m) / z;
                        double acc = 0;
                        for (int c = 0; c < dd; c++) acc += dy[((bb * t + i) * h + hh) * dd + c] * v[((bb * t + j) * kv + kh) * dd + c];
                        dp[j] = acc;
                        rowSum += p[j] * acc;
                    }
                    for (int j = 0; j <= i; j++) {
                        if (!ok[j]) continue;
                        double ds = p[j] * (dp[j] - rowSum) * scale;
                        for (int c = 0; c < dd; c++) {
                            int qi = ((bb * t + i) * h + hh) * dd + c, kj = ((bb * t + j) * kv + kh) * dd + c;
                            dq[qi] += ds * k[kj];
                            dk[kj] += ds * q[qi];
                            dv[kj] += p[j] * dy[qi];
                        }
                    }
                }
            }
        }
        return new double[][] {dq, dk, dv};
    }

    // ------------------------------------------------------------------ loss

    @ParameterizedTest
    @MethodSource("backends")
    void softcapCrossEntropyAndTheLinearForm(String name) {
        Backend be = backend(name);
        Random r = rng("ce");
        int n = 6, c = 12, vocab = 50, vpad = 56;
        float cap = 15f;
        Tensor x = randT(r, 1f, n, c), w = randT(r, 1f, vpad, c);
        int[] tg = {3, -1, 49, 0, 17, -1};
        double[] xd = d(x), wd = d(w);
        double[] logits = mm(xd, false, wd, true, n, vpad, c, 0, 0);
        double[] rowLoss = new double[n], dl = new double[n * vocab];
        int count = 0;
        for (int t : tg) if (t != -1) count++;
        for (int i = 0; i < n; i++) {
            if (tg[i] == -1) continue;
            double m = Double.NEGATIVE_INFINITY;
            double[] z = new double[vocab];
            for (int j = 0; j < vocab; j++) {
                z[j] = cap * Math.tanh(logits[i * vpad + j] / cap);
                m = Math.max(m, z[j]);
            }
            double s = 0;
            for (int j = 0; j < vocab; j++) s += Math.exp(z[j] - m);
            double lse = m + Math.log(s);
            rowLoss[i] = lse - z[tg[i]];
            for (int j = 0; j < vocab; j++) {
                double th = Math.tanh(logits[i * vpad + j] / cap);
                dl[i * vocab + j] = (Math.exp(z[j] - lse) - (j == tg[i] ? 1 : 0)) * (1 - th * th) / count;
            }
        }
        double mean = 0;
        for (double l : rowLoss) mean += l;
        mean /= count;
        // crossEntropy on the cropped logits
        float[] lg = new float[n * vocab];
        for (int i = 0; i < n; i++) for (int j = 0; j < vocab; j++) lg[i * vocab + j] = (float) logits[i * vpad + j];
        Tensor targets = up(be, Tensor.ofInts(tg));
        Backend.Loss l = be.crossEntropy(up(be, Tensor.of(lg, n, vocab)), targets, cap, Reduction.MEAN, true);
        close("crossEntropy MEAN", new double[] {mean}, l.loss(), 1e-4, 1e-5);
        close("crossEntropy dlogits", dl, l.dlogits(), 1e-3, 1e-6);
        close("crossEntropy NONE", rowLoss, be.crossEntropy(up(be, Tensor.of(lg, n, vocab)), targets, cap, Reduction.NONE, false).loss(), 1e-4, 1e-5);
        // linear form: dx = dl·W[:vocab], dW[:vocab] = dlᵀ·x
        Backend.LinearLoss ll = be.linearSoftcapCrossEntropy(up(be, x), up(be, w), targets, vocab, cap, Reduction.MEAN, true);
        close("linearSoftcapCrossEntropy loss", new double[] {mean}, ll.loss(), 1e-4, 1e-5);
        double[] dx = new double[n * c], dW = new double[vpad * c];
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < vocab; j++) {
                for (int q = 0; q < c; q++) {
                    dx[i * c + q] += dl[i * vocab + j] * wd[j * c + q];
                    dW[j * c + q] += dl[i * vocab + j] * xd[i * c + q];
                }
            }
        }
        close("linearSoftcapCrossEntropy dx", dx, ll.dx(), 1e-3, 1e-5);
        close("linearSoftcapCrossEntropy dW", dW, ll.dW(), 1e-3, 1e-5);
        // per-row upstream gradients: rowGrad·count reproduces MEAN's gradient for rowGrad = 1/count
        float[] rg = new float[n];
        java.util.Arrays.fill(rg, 1f / count);
        Backend.LinearLoss lb = be.linearSoftcapCrossEntropyBackward(up(be, x), up(be, w), targets, vocab, cap, up(be, Tensor.of(rg)));
        close("linearSoftcapCrossEntropyBackward dx", dx, lb.dx(), 1e-3, 1e-5);
        close("linearSoftcapCrossEntropyBackward losses", rowLoss, lb.loss(), 1e-4, 1e-5);
        // an ignored row's logits are not read: a NaN there is no error, and the loss and its gradient stay as they were
        float[] lgIgnored = lg.clone();
        lgIgnored[vocab + 4] = Float.NaN; // row 1, target -1
        lgIgnored[vocab + 9] = Float.POSITIVE_INFINITY;
        Backend.Loss li = be.crossEntropy(up(be, Tensor.of(lgIgnored, n, vocab)), targets, cap, Reduction.MEAN, true);
        close("crossEntropy MEAN, non-finite logits in an ignored row", new double[] {mean}, li.loss(), 1e-4, 1e-5);
        close("crossEntropy dlogits, non-finite logits in an ignored row", dl, li.dlogits(), 1e-3, 1e-6);
        lg[7] = Float.NaN;
        IllegalArgumentException ex = assertThrows(IllegalArgumentException.class,
                () -> be.crossEntropy(up(be, Tensor.of(lg, n, vocab)), targets, cap, Reduction.MEAN, true));
        assertTrue(ex.getMessage().contains("non-finite"), ex.getMessage());
    }

    /** C = 0 (x without features) is refused by name; N = 0 is a loss over nothing with dW all zeros. */
    @ParameterizedTest
    @MethodSource("backends")
    void linearCrossEntropyRefusesNoFeaturesAndZeroesDwForNoRows(String name) {
        Backend be = backend(name);
        Tensor x = up(be, Tensor.zeros(2, 0)), w = up(be, Tensor.zeros(3, 0)), t = up(be, Tensor.ofInts(new int[] {0, 1}));
        refused("linearSoftcapCrossEntropy: need C >= 1",
                () -> be.linearSoftcapCrossEntropy(x, w, t, 3, 15f, Reduction.MEAN, true));
        refused("linearSoftcapCrossEntropyBackward: need C >= 1",
                () -> be.linearSoftcapCrossEntropyBackward(x, w, t, 3, 15f, up(be, Tensor.of(new float[] {1f, 1f}))));
        Tensor x0 = up(be, Tensor.zeros(0, 4)), w6 = up(be, Tensor.zeros(6, 4)), none = up(be, Tensor.ofInts(new int[0]));
        Backend.LinearLoss f = be.linearSoftcapCrossEntropy(x0, w6, none, 5, 15f, Reduction.SUM, true);
        assertArrayEquals(new float[24], f.dW().toCpu().toFloatArray(), "dW of the forward with N = 0");
        assertEquals(0f, f.loss().toCpu().item());
        Backend.LinearLoss b = be.linearSoftcapCrossEntropyBackward(x0, w6, none, 5, 15f, up(be, Tensor.zeros(0)));
        assertArrayEquals(new float[24], b.dW().toCpu().toFloatArray(), "dW of the backward with N = 0");
    }

    // ------------------------------------------------------------------ dtype

    @ParameterizedTest
    @MethodSource("backends")
    void bf16Cast(String name) {
        Backend be = backend(name);
        float[] vals = {1f, -2.5f, 3.14159f, 1e-3f, 65504f, Float.MIN_NORMAL, 0f, -0f, 1.00390625f, 1.01171875f};
        Tensor h = be.toBf16(up(be, Tensor.of(vals.clone())));
        assertEquals(DType.BF16, h.dtype());
        short[] bits = h.toCpu().shorts();
        for (int i = 0; i < vals.length; i++) assertEquals(DType.toBf16(vals[i]), bits[i], "bf16 of " + vals[i]);
    }
}
