package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.cuda.BackendConformanceTest.close;
import static nanochat4j.tensor.cuda.BackendConformanceTest.mm;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import java.util.function.Consumer;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The CUDA backend under {@link MatmulPrecision#BF16} (nanochat's CUDA policy): linear forward, both backward GEMMs
 * and the lm_head GEMMs of the chunked softcap + CE, against float64 references computed on the same
 * bf16-rounded operands (so the tolerance only covers fp32 accumulation, and one bf16 rounding of the loss
 * gradient for the lm_head backward). Also: a weight is cast once while it is unchanged, and a write into it in
 * place (optimizer kernel, accumulation, copy from the host) is seen by the next GEMM. Runs where a GPU is usable;
 * elsewhere each case is skipped with the one-line reason.
 */
class Bf16MatmulConformanceTest {
    private CudaBackend be;
    private MatmulPrecision before;

    @BeforeEach
    void bf16() {
        be = (CudaBackend) BackendConformanceTest.backend("cuda");
        before = be.setMatmulPrecision(MatmulPrecision.BF16);
    }

    @AfterEach
    void restore() {
        if (be != null) be.setMatmulPrecision(before);
    }

    /** Values rounded to bf16 (round to nearest even, as the cast kernel), as doubles. */
    static double[] bf(Tensor host) {
        float[] f = Backend.cpu().toBf16(host).toFloatArray();
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }

    static double bf(double v) {
        return bf(Tensor.of(new float[] {(float) v}))[0];
    }

    @Test
    void linearAndItsGradientsOnBf16Operands() {
        Random r = BackendConformanceTest.rng("bf16 linear");
        // an odd shape (cuBLAS only) and one our tensor-core tiles divide (the chooser times both and keeps the faster)
        for (int[] s : new int[][] {{14, 33, 19}, {256, 128, 128}}) {
            int rows = s[0], in = s[1], out = s[2];
            Tensor x = BackendConformanceTest.randT(r, 1f, rows, in), w = BackendConformanceTest.randT(r, 1f, out, in);
            Tensor dy = BackendConformanceTest.randT(r, 1f, rows, out);
            double[] xd = bf(x), wd = bf(w), dyd = bf(dy);
            String at = " " + rows + "x" + in + "→" + out;
            Tensor wDev = be.upload(w);
            close("bf16 linear" + at, mm(xd, false, wd, true, rows, out, in, 0, 0), be.linear(be.upload(x), wDev), 1e-4, 1e-4);
            close("bf16 linearBackwardInput" + at, mm(dyd, false, wd, false, rows, in, out, 0, 0), be.linearBackwardInput(be.upload(dy), wDev),
                    1e-4, 1e-4);
            Tensor dW = be.upload(Tensor.full(1f, out, in));
            be.linearBackwardWeight(be.upload(dy), be.upload(x), dW, true);
            double[] want = mm(dyd, true, xd, false, out, in, rows, 0, 0);
            for (int i = 0; i < want.length; i++) want[i] += 1;
            close("bf16 linearBackwardWeight accumulate" + at, want, dW, 1e-4, 1e-4);
        }
    }

    /** An activation kept for a backward pass: bf16 under bf16 matmuls (back to fp32 exactly its bf16 value), as is under fp32. */
    @Test
    void activationsKeptForBackwardAreBf16UnderBf16Matmuls() {
        float[] vals = {1f, -2.5f, 3.14159f, 1e-3f, 65504f, Float.MIN_NORMAL, 0f, -0f, 1.00390625f, 1.01171875f, Float.NaN};
        Tensor x = be.upload(Tensor.of(vals.clone()));
        Tensor kept = be.saveForBackward(x);
        assertEquals(DType.BF16, kept.dtype());
        float[] back = be.savedValue(kept).toCpu().toFloatArray();
        for (int i = 0; i < vals.length; i++) {
            assertEquals(Float.floatToRawIntBits(DType.fromBf16(DType.toBf16(vals[i]))), Float.floatToRawIntBits(back[i]), "kept " + vals[i]);
        }
        be.setMatmulPrecision(MatmulPrecision.FP32);
        assertSame(x, be.saveForBackward(x), "fp32 matmuls keep the fp32 activation");
        assertSame(x, be.savedValue(x));
    }

    /**
     * What a training step's backward reads after Autograd.shelve: saveForBackward's bf16 copies. The weight-gradient
     * GEMM and the attention backward (its tensor-core kernels read q, k, v and y as bf16, its fp32 kernels and a
     * first use's check their widening) give the same bits as from the widened fp32 values, under bf16 matmuls and fp32.
     */
    @Test
    void savedBf16ActivationsGiveTheSameBitsAsTheirWidening() {
        Random r = BackendConformanceTest.rng("saved bf16");
        int rows = 128, in = 64, out = 96;
        Tensor x = be.upload(BackendConformanceTest.randT(r, 1f, rows, in)), dy = be.upload(BackendConformanceTest.randT(r, 1f, rows, out));
        Tensor kept = be.saveForBackward(x), wide = be.savedValue(kept);
        for (MatmulPrecision p : MatmulPrecision.values()) {
            be.setMatmulPrecision(p);
            Tensor a = be.upload(Tensor.zeros(out, in)), b = be.upload(Tensor.zeros(out, in));
            be.linearBackwardWeight(dy, kept, a, false);
            be.linearBackwardWeight(dy, wide, b, false);
            assertEquals(java.util.Arrays.toString(b.toCpu().toFloatArray()), java.util.Arrays.toString(a.toCpu().toFloatArray()), "dW from saved x, " + p);
        }
        be.setMatmulPrecision(MatmulPrecision.BF16);
        for (int d : new int[] {16, 32, 64, 128}) {   // each head dim's own tile shape
            for (int window : new int[] {-1, 40}) {
                int bsz = 2, t = 130, h = 4, kv = 2;
                float scale = (float) (1 / Math.sqrt(d));
                Tensor q = be.upload(BackendConformanceTest.randT(r, 1f, bsz, t, h, d)), k = be.upload(BackendConformanceTest.randT(r, 1f, bsz, t, kv, d));
                Tensor v = be.upload(BackendConformanceTest.randT(r, 1f, bsz, t, kv, d)), g = be.upload(BackendConformanceTest.randT(r, 1f, bsz, t, h, d));
                Backend.AttentionOut o = be.attention(q, k, v, window, scale);
                Tensor sq = be.saveForBackward(q), sk = be.saveForBackward(k), sv = be.saveForBackward(v), sy = be.saveForBackward(o.y());
                Tensor wq = be.savedValue(sq), wk = be.savedValue(sk), wv = be.savedValue(sv), wy = be.savedValue(sy);
                be.attentionBackward(wq, wk, wv, wy, o.lse(), g, window, scale);   // a first use checks the tensor cores here
                assertEquals(TensorCoreAttention.Use.TC, be.tensorCoreAttention().use(CudaBackend.tcPass("bwd", window, t), d, MatmulPrecision.BF16),
                        "the tensor cores run this backward (else the _bf16 kernels are not what is compared)");
                Backend.AttentionGrads want = be.attentionBackward(wq, wk, wv, wy, o.lse(), g, window, scale);
                Backend.AttentionGrads got = be.attentionBackward(sq, sk, sv, sy, o.lse(), g, window, scale);
                String at = " at head dim " + d + ", window " + window;
                assertEquals(java.util.Arrays.toString(want.dq().toCpu().toFloatArray()), java.util.Arrays.toString(got.dq().toCpu().toFloatArray()), "dq" + at);
                assertEquals(java.util.Arrays.toString(want.dk().toCpu().toFloatArray()), java.util.Arrays.toString(got.dk().toCpu().toFloatArray()), "dk" + at);
                assertEquals(java.util.Arrays.toString(want.dv().toCpu().toFloatArray()), java.util.Arrays.toString(got.dv().toCpu().toFloatArray()), "dv" + at);
            }
        }
    }

    @Test
    void aWeightIsCastOnceUntilItIsWrittenInPlace() {
        Random r = BackendConformanceTest.rng("bf16 cache");
        int rows = 8, in = 16, out = 12;
        Tensor x = BackendConformanceTest.randT(r, 1f, rows, in), w = BackendConformanceTest.randT(r, 1f, out, in);
        Tensor step = BackendConformanceTest.randT(r, 1f, out, in);
        Tensor xDev = be.upload(x), wDev = be.upload(w);
        long casts0 = be.weightCastCounts()[0];
        be.linear(xDev, wDev);
        be.linearBackwardInput(be.upload(BackendConformanceTest.randT(r, 1f, rows, out)), wDev);
        be.linear(xDev, wDev);
        assertEquals(1, be.weightCastCounts()[0] - casts0, "one cast for three GEMMs on an unchanged weight");
        // an in-place update (as the optimizer's) must reach the next GEMM, not the stale copy
        be.axpy(1f, be.upload(step), wDev);
        double[] w2 = new double[out * in];
        float[] wf = w.toFloatArray(), sf = step.toFloatArray();
        for (int i = 0; i < w2.length; i++) w2[i] = wf[i] + sf[i];
        double[] w2b = bf(Tensor.of(toFloats(w2), out, in));
        close("bf16 linear after axpy into W", mm(bf(x), false, w2b, true, rows, out, in, 0, 0), be.linear(xDev, wDev), 1e-4, 1e-4);
        // a copy from the host into the weight's storage, likewise
        wDev.copyFrom(w);
        close("bf16 linear after copyFrom", mm(bf(x), false, bf(w), true, rows, out, in, 0, 0), be.linear(xDev, wDev), 1e-4, 1e-4);
        assertEquals(3, be.weightCastCounts()[0] - casts0, "a cast after each write");
    }

    private static float[] toFloats(double[] d) {
        float[] f = new float[d.length];
        for (int i = 0; i < d.length; i++) f[i] = (float) d[i];
        return f;
    }

    @Test
    void lmHeadGemmsOfTheChunkedLossInBf16() {
        Random r = BackendConformanceTest.rng("bf16 ce");
        int n = 6, c = 12, vocab = 50, vpad = 56;
        float cap = 15f;
        Tensor x = BackendConformanceTest.randT(r, 1f, n, c), w = BackendConformanceTest.randT(r, 1f, vpad, c);
        int[] tg = {3, -1, 49, 0, 17, -1};
        double[] xd = bf(x), wd = bf(w);
        double[] logits = mm(xd, false, wd, true, n, vpad, c, 0, 0);
        int count = 4;
        double mean = 0;
        double[] dl = new double[n * vpad];
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
            mean += (lse - z[tg[i]]) / count;
            for (int j = 0; j < vocab; j++) {
                double th = Math.tanh(logits[i * vpad + j] / cap);
                dl[i * vpad + j] = bf((Math.exp(z[j] - lse) - (j == tg[i] ? 1 : 0)) * (1 - th * th) / count); // enters the GEMM in bf16
            }
        }
        Backend.LinearLoss ll = be.linearSoftcapCrossEntropy(be.upload(x), be.upload(w), be.upload(Tensor.ofInts(tg)), vocab, cap,
                Reduction.MEAN, true);
        close("bf16 linearSoftcapCrossEntropy loss", new double[] {mean}, ll.loss(), 1e-4, 1e-5);
        double[] dx = mm(dl, false, wd, false, n, c, vpad, 0, 0), dW = mm(dl, true, xd, false, vpad, c, n, 0, 0);
        // the device's fp32 gradient may sit on the other side of a bf16 rounding boundary than this float64 one, and
        // round one bf16 ulp away: that much of every entry, through each GEMM, is allowed on top
        double[] ulp = new double[dl.length];
        for (int i = 0; i < dl.length; i++) ulp[i] = Math.ulp((float) dl[i]) * 65536.0; // bf16 keeps fp32's top 16 bits
        double[] dxSlack = mm(ulp, false, abs(wd), false, n, c, vpad, 0, 0), dWSlack = mm(ulp, true, abs(xd), false, vpad, c, n, 0, 0);
        close("bf16 linearSoftcapCrossEntropy dx", dx, ll.dx(), 1e-2, 1e-4, dxSlack);
        close("bf16 linearSoftcapCrossEntropy dW", dW, ll.dW(), 1e-2, 1e-4, dWSlack);
    }

    /**
     * Attention on the tensor cores (attention_tc_fwd/bwd.cu, and on Hopper attention_wgmma.cu at head dim 128 too —
     * the simulator is one; run unchecked here): y, lse, the three gradients and a prefill chunk against a KV cache
     * against float64 on the bf16-rounded q, k, v and dy, at head dims 16, 48, 64 and 128, GQA 2:1 and 1:1, the full
     * context and windows of 5 and 40, T = 130 (two whole 64-row blocks and a partial one; one 128-row block and a
     * partial for the wgmma kernels; and T = 300 at head dim 128, so their stages are reused). Tolerance relative to
     * each output's largest magnitude: the probabilities and dS round to bf16 inside the kernels; a wrong index, mask or
     * fragment is off by about the output's size. Not window 0: there dq and dk are exactly zero (one key a row, dP =
     * dsum), and the kernels' bf16 dP against the fp32 dsum leaves ~1% of a gradient's usual size (host simulation).
     */
    @Test
    void attentionOnTheTensorCoresMatchesFloat64ToBf16Rounding() {
        TensorCoreAttention.Mode mode = be.tensorCoreAttention().setMode(TensorCoreAttention.Mode.TC);
        try {
            Random r = BackendConformanceTest.rng("bf16 attention");
            int b = 2, t = 130;
            for (int dd : new int[] {16, 48, 64, 128}) {
                for (int[] heads : new int[][] {{4, 2}, {2, 2}}) {
                    int h = heads[0], kv = heads[1];
                    float scale = (float) (1 / Math.sqrt(dd));
                    Tensor q = BackendConformanceTest.randT(r, 1f, b, t, h, dd), k = BackendConformanceTest.randT(r, 1f, b, t, kv, dd);
                    Tensor v = BackendConformanceTest.randT(r, 1f, b, t, kv, dd), dy = BackendConformanceTest.randT(r, 1f, b, t, h, dd);
                    double[] qd = bf(q), kd = bf(k), vd = bf(v), dyd = bf(dy);
                    eachKernelFamily(dd, family -> {
                        for (int window : new int[] {-1, 5, 40}) {
                            String at = " D=" + dd + " H=" + h + " KV=" + kv + " window=" + window + family;
                            attentionCase(at, q, k, v, dy, qd, kd, vd, dyd, b, t, h, kv, dd, window, scale);
                        }
                    });
                }
            }
            // T = 300 at head dim 128: five 64-row tiles a pass, so the wgmma kernels' three stages are each reused
            int b1 = 1, t1 = 300, h1 = 2, kv1 = 1, d1 = 128;
            float scale = (float) (1 / Math.sqrt(d1));
            Tensor q = BackendConformanceTest.randT(r, 1f, b1, t1, h1, d1), k = BackendConformanceTest.randT(r, 1f, b1, t1, kv1, d1);
            Tensor v = BackendConformanceTest.randT(r, 1f, b1, t1, kv1, d1), dy = BackendConformanceTest.randT(r, 1f, b1, t1, h1, d1);
            eachKernelFamily(d1, family -> {
                for (int window : new int[] {-1, 150}) {
                    attentionCase(" D=128 T=300 window=" + window + family, q, k, v, dy, bf(q), bf(k), bf(v), bf(dy), b1, t1, h1, kv1, d1,
                            window, scale);
                }
            });
        } finally {
            be.tensorCoreAttention().setMode(mode);
        }
    }

    /**
     * On Hopper the training forward reads q, k, v as bf16 copies it makes, and those are the copies the backward keeps:
     * saveForBackward hands each over once (the same bits as a cast), and a write in place into its source drops it.
     */
    @Test
    void theWgmmaForwardsBf16CopiesAreTheOnesSavedForTheBackward() {
        Assumptions.assumeTrue(be.tensorCoreAttention().wgmma("fwd", TensorCoreAttention.WGMMA_HEAD_DIM, be.context().hopper()),
                "the wgmma forward runs on Hopper only: " + be.context().describe());
        TensorCoreAttention.Mode mode = be.tensorCoreAttention().setMode(TensorCoreAttention.Mode.TC);
        try {
            Random r = BackendConformanceTest.rng("bf16 attention copies");
            Tensor q = be.upload(BackendConformanceTest.randT(r, 1f, 1, 70, 2, 128)), k = be.upload(BackendConformanceTest.randT(r, 1f, 1, 70, 1, 128));
            Tensor v = be.upload(BackendConformanceTest.randT(r, 1f, 1, 70, 1, 128));
            be.attention(q, k, v, -1, 0.1f);
            long before = be.attentionCopiesHandedOver();
            Tensor sq = be.saveForBackward(q), sk = be.saveForBackward(k), sv = be.saveForBackward(v);
            assertEquals(3, be.attentionCopiesHandedOver() - before, "q, k and v: the forward's copies");
            for (Tensor[] pair : new Tensor[][] {{q, sq}, {k, sk}, {v, sv}}) {
                assertEquals(DType.BF16, pair[1].dtype());
                assertArrayEquals(be.toBf16(pair[0]).toFloatArray(), pair[1].toFloatArray(), "the same bits as a cast");
            }
            be.saveForBackward(q);
            assertEquals(3, be.attentionCopiesHandedOver() - before, "each handed over once");
            be.attention(q, k, v, -1, 0.1f);
            Tensor k2 = BackendConformanceTest.randT(r, 1f, 1, 70, 1, 128);
            k.copyFrom(k2);   // a write into k's storage: the copy made from the old values is stale
            Tensor fresh = be.saveForBackward(k);
            assertEquals(3, be.attentionCopiesHandedOver() - before, "a stale copy is not handed over");
            assertArrayEquals(be.toBf16(be.upload(k2)).toFloatArray(), fresh.toFloatArray());
        } finally {
            be.tensorCoreAttention().setMode(mode);
        }
    }

    /**
     * Runs {@code body} once per tensor-core kernel family at head dim {@code d}: on Hopper at head dim 128
     * attention_wgmma.cu's (" (wgmma)") and then the mma.sync ones (""), elsewhere the mma.sync ones only.
     */
    private void eachKernelFamily(int d, Consumer<String> body) {
        boolean hopperWgmma = be.tensorCoreAttention().wgmma("fwd", d, be.context().hopper());
        for (boolean wgmma : hopperWgmma ? new boolean[] {true, false} : new boolean[] {false}) {
            boolean before = be.tensorCoreAttention().setWgmma(wgmma);
            try {
                body.accept(wgmma ? " (wgmma)" : "");
            } finally {
                be.tensorCoreAttention().setWgmma(before);
            }
        }
    }

    /** One shape and window of {@link #attentionOnTheTensorCoresMatchesFloat64ToBf16Rounding}. */
    private void attentionCase(String at, Tensor q, Tensor k, Tensor v, Tensor dy, double[] qd, double[] kd, double[] vd, double[] dyd,
                               int b, int t, int h, int kv, int dd, int window, float scale) {
        double[] lse = new double[b * h * t];
        double[] y = BackendConformanceTest.attnRef(qd, kd, vd, b, t, h, kv, dd, window, scale, lse);
        Backend.AttentionOut out = be.attention(be.upload(q), be.upload(k), be.upload(v), window, scale);
        closeToMax("tc attention y" + at, y, out.y(), 2e-2);
        closeToMax("tc attention lse" + at, lse, out.lse(), 1e-2);
        double[][] g = BackendConformanceTest.attnGradRef(qd, kd, vd, dyd, b, t, h, kv, dd, window, scale);
        Backend.AttentionGrads gr = be.attentionBackward(be.upload(q), be.upload(k), be.upload(v), out.y(), out.lse(), be.upload(dy), window, scale);
        closeToMax("tc attention dq" + at, g[0], gr.dq(), 4e-2);
        closeToMax("tc attention dk" + at, g[1], gr.dk(), 4e-2);
        closeToMax("tc attention dv" + at, g[2], gr.dv(), 4e-2);
        // as a training step calls it: q, k, v and y as the bf16 copies it keeps
        Backend.AttentionGrads gs = be.attentionBackward(be.saveForBackward(be.upload(q)), be.saveForBackward(be.upload(k)),
                be.saveForBackward(be.upload(v)), be.saveForBackward(out.y()), out.lse(), be.upload(dy), window, scale);
        closeToMax("tc attention dq from saved copies" + at, g[0], gs.dq(), 4e-2);
        closeToMax("tc attention dk from saved copies" + at, g[1], gs.dk(), 4e-2);
        closeToMax("tc attention dv from saved copies" + at, g[2], gs.dv(), 4e-2);
        // a prefill chunk: the last 20 queries against caches holding all t keys (Tmax = t + 6)
        int tq = 20, pos = t - tq, tmax = t + 6;
        Tensor kc = Tensor.zeros(b, tmax, kv, dd), vc = Tensor.zeros(b, tmax, kv, dd), qtail = Tensor.zeros(b, tq, h, dd);
        double[] want = new double[b * tq * h * dd];
        for (int bb = 0; bb < b; bb++) {
            kc.select(bb).slice(0, t).copyFrom(k.select(bb));
            vc.select(bb).slice(0, t).copyFrom(v.select(bb));
            qtail.select(bb).copyFrom(q.select(bb).slice(pos, t));
            System.arraycopy(y, (bb * t + pos) * h * dd, want, bb * tq * h * dd, tq * h * dd);
        }
        closeToMax("tc prefill y" + at, want, be.attentionCached(be.upload(qtail), be.upload(kc), be.upload(vc), pos, window, scale), 2e-2);
    }

    /** max |got − want| ≤ tol · max |want| (and no NaN). */
    private static void closeToMax(String what, double[] want, Tensor got, double tol) {
        float[] g = got.toFloatArray();
        assertEquals(want.length, g.length, what);
        double max = 0, err = 0;
        for (int i = 0; i < want.length; i++) {
            max = Math.max(max, Math.abs(want[i]));
            double e = Math.abs(g[i] - want[i]);
            err = Double.isNaN(e) || Double.isNaN(err) ? Double.NaN : Math.max(err, e); // a NaN fails
        }
        assertTrue(err <= tol * max, what + ": max error " + err + " against largest magnitude " + max + " (allowed " + tol + " of it)");
    }

    private static double[] abs(double[] a) {
        double[] r = new double[a.length];
        for (int i = 0; i < a.length; i++) r[i] = Math.abs(a[i]);
        return r;
    }
}
