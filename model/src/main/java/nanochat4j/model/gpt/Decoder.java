package nanochat4j.model.gpt;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Team;
import nanochat4j.tensor.cpu.Vec;

/**
 * The KV-cache decode step — one new token in each of B sample rows — as plain loops over buffers planned once per
 * cache; the math of {@link GPT#forwardCached} (which keeps running prefill chunks), without a tensor or autograd
 * node per op:
 * <ul>
 *   <li>x = rms_norm(wte[tok]); smear: x += λ·σ(w·x[0:24])·prev, prev = the last pre-smear embedding; x0 = x;</li>
 *   <li>per layer x = resid_λ·x + x0_λ·x0; hn = rms_norm(x); q,k,v = W·hn; v += 3·σ(W_gate·hn[0:12])·ve[tok];
 *       RoPE, then QK-norm ×1.2; k, v into the cache; causal windowed GQA attention over the cache;
 *       x += W_proj·y; x += W_mlp·relu²(W_fc·rms_norm(x)); backout: x −= λ·x_mid (after block n//2);</li>
 *   <li>logits = 15·tanh(W_lm·rms_norm(x)/15) over the real vocab rows only (the padding is never computed).</li>
 * </ul>
 * A decode step is bound by reading the weights, so every matmul is a GEMV y[b,r] = W[r,:]·x[b,:] for all B rows at
 * once: four weight rows per pass, each read once and reused from L1 by every sample row; the residual add, relu² and
 * softcap are its epilogues. Each weight-sized phase (q/k/v together, proj, fc, mlp proj, lm_head) and the attention
 * (one task per row and kv head: ve mix, RoPE, QK-norm, cache write, then its query heads) is split over
 * {@link Team}, whose helpers spin between phases: a d6 step is ~30 phases of 10–300 µs. Norms and lambda mixes over
 * B·C floats run on the caller.
 */
final class Decoder {
    private static final VectorSpecies<Float> F = Vec.F;
    private static final int L = Vec.LANES;
    /** Weight floats per GEMV chunk (128 KB): large enough that claiming it costs nothing, small enough to balance. */
    private static final int CHUNK_FLOATS = 1 << 15;

    private final GPTConfig cfg;
    private final int c, h, kv, d, g, vocab;
    private final Tensor wte, lmHead, residLambdas, x0Lambdas, smearGate, smearLambda, backoutLambda, cos, sin;
    private final Tensor[] cq, ck, cv, cProj, veGate, cFc, mlpProj, valueEmbed;

    Decoder(GPT model, Tensor cos, Tensor sin) {
        cfg = model.config();
        c = cfg.nEmbd();
        h = cfg.nHead();
        kv = cfg.nKvHead();
        d = cfg.headDim();
        g = h / kv;
        vocab = cfg.vocabSize();
        this.cos = cos;
        this.sin = sin;
        wte = model.parameter("transformer.wte.weight").tensor();
        lmHead = model.parameter("lm_head.weight").tensor();
        residLambdas = model.parameter("resid_lambdas").tensor();
        x0Lambdas = model.parameter("x0_lambdas").tensor();
        smearGate = model.parameter("smear_gate.weight").tensor();
        smearLambda = model.parameter("smear_lambda").tensor();
        backoutLambda = model.parameter("backout_lambda").tensor();
        int n = cfg.nLayer();
        cq = new Tensor[n];
        ck = new Tensor[n];
        cv = new Tensor[n];
        cProj = new Tensor[n];
        veGate = new Tensor[n];
        cFc = new Tensor[n];
        mlpProj = new Tensor[n];
        valueEmbed = new Tensor[n];
        for (int i = 0; i < n; i++) {
            String p = "transformer.h." + i + ".";
            cq[i] = model.parameter(p + "attn.c_q.weight").tensor();
            ck[i] = model.parameter(p + "attn.c_k.weight").tensor();
            cv[i] = model.parameter(p + "attn.c_v.weight").tensor();
            cProj[i] = model.parameter(p + "attn.c_proj.weight").tensor();
            cFc[i] = model.parameter(p + "mlp.c_fc.weight").tensor();
            mlpProj[i] = model.parameter(p + "mlp.c_proj.weight").tensor();
            if (cfg.hasValueEmbed(i)) {
                veGate[i] = model.parameter(p + "attn.ve_gate.weight").tensor();
                valueEmbed[i] = model.parameter("value_embeds." + i + ".weight").tensor();
            }
        }
    }

    /** Activations of one decode step for a cache of B rows, allocated with the cache's first decode step. */
    static final class Scratch {
        final int[] tokens;
        final float[] emb, x, x0, xMid, hn;     // (B, C)
        final float[] q, y;                     // (B, H·D)
        final float[] k, v;                     // (B, KV·D)
        final float[] u;                        // (B, 4C)
        final float[] scores;                   // (B, H, maxLen)

        Scratch(GPTConfig cfg, int batch, int maxLen) {
            int c = cfg.nEmbd(), hd = cfg.nHead() * cfg.headDim(), kvd = cfg.kvDim();
            tokens = new int[batch];
            emb = new float[batch * c];
            x = new float[batch * c];
            x0 = new float[batch * c];
            xMid = new float[batch * c];
            hn = new float[batch * c];
            q = new float[batch * hd];
            y = new float[batch * hd];
            k = new float[batch * kvd];
            v = new float[batch * kvd];
            u = new float[batch * 4 * c];
            scores = new float[batch * cfg.nHead() * maxLen];
        }
    }

    /** Soft-capped logits (B, vocab) of one token per row of {@code idx} (B,1); advances the cache by one. */
    float[] step(Tensor idx, KVCache cache) {
        int b = cache.batch(), p = cache.pos();
        if (idx.shape(0) != b) {
            throw new IllegalArgumentException("forwardCached: " + idx.shape(0) + " rows of tokens for a cache of batch " + b);
        }
        if (p >= cos.shape(0)) throw new IllegalArgumentException("forwardCached: position " + p + " is past the rotary table (" + cos.shape(0) + ")");
        if (cache.scratch == null) cache.scratch = new Scratch(cfg, b, cache.maxLen());
        Scratch s = cache.scratch;
        System.arraycopy(idx.ints(), idx.offset(), s.tokens, 0, b);

        embed(s, cache, b);
        System.arraycopy(s.x, 0, s.x0, 0, b * c);
        for (int i = 0; i < cfg.nLayer(); i++) {
            block(i, s, cache, b, p);
            if (i == cfg.backoutLayer()) System.arraycopy(s.x, 0, s.xMid, 0, b * c);
        }
        float lam = backoutLambda.floats()[backoutLambda.offset()];
        for (int j = 0; j < b * c; j++) s.x[j] -= lam * s.xMid[j];
        rmsNorm(s.x, s.hn, b, c);
        float[] logits = new float[b * vocab];
        gemv(b, Epilogue.SOFTCAP, new Gemv(lmHead, vocab, s.hn, logits));
        cache.advance(1);
        return logits;
    }

    /** x = rms_norm(wte[tok]) + λ·σ(w·e[0:24])·prev (when a previous embedding is cached); prev ← e. */
    private void embed(Scratch s, KVCache cache, int b) {
        float[] w = wte.floats();
        for (int r = 0; r < b; r++) rmsNorm(w, wte.offset() + s.tokens[r] * c, s.emb, r * c, c, 1f);
        System.arraycopy(s.emb, 0, s.x, 0, b * c);
        float[] prev = cache.prev();
        if (cache.hasPrev()) {
            float lam = smearLambda.floats()[smearLambda.offset()];
            float[] sg = smearGate.floats();
            for (int r = 0; r < b; r++) {
                float z = 0f;
                for (int j = 0; j < GPTConfig.SMEAR_CHANNELS; j++) z += s.emb[r * c + j] * sg[smearGate.offset() + j];
                float gate = lam * sigmoid(z);
                for (int j = 0; j < c; j++) s.x[r * c + j] += gate * prev[r * c + j];
            }
        }
        System.arraycopy(s.emb, 0, prev, 0, b * c);
        cache.markPrev();
    }

    /** Block i on s.x in place for the token at position p. */
    private void block(int i, Scratch s, KVCache cache, int b, int p) {
        float rl = residLambdas.floats()[residLambdas.offset() + i], xl = x0Lambdas.floats()[x0Lambdas.offset() + i];
        for (int j = 0; j < b * c; j++) s.x[j] = rl * s.x[j] + xl * s.x0[j];
        rmsNorm(s.x, s.hn, b, c);
        gemv(b, Epilogue.STORE, new Gemv(cq[i], h * d, s.hn, s.q), new Gemv(ck[i], kv * d, s.hn, s.k),
                new Gemv(cv[i], kv * d, s.hn, s.v));
        Team.run(b * kv, (t, unused) -> attend(i, s, cache, t / kv, t % kv, p));
        gemv(b, Epilogue.ADD, new Gemv(cProj[i], c, s.y, s.x));
        rmsNorm(s.x, s.hn, b, c);
        gemv(b, Epilogue.RELU2, new Gemv(cFc[i], 4 * c, s.hn, s.u));
        gemv(b, Epilogue.ADD, new Gemv(mlpProj[i], c, s.u, s.x));
    }

    // ------------------------------------------------------------------ attention of one (row, kv head)

    /**
     * Row r, kv head kh of layer i at position p: v += 3·σ(W_gate[kh]·hn[0:12])·ve[tok] (value-embedding layers);
     * k, q ← rms_norm(rope(·))·1.2; k, v into the cache; then for each query head of kh, over the keys j it sees
     * (p − window ≤ j ≤ p): y = Σ_j softmax_j(q·k_j/√D)·v_j.
     */
    private void attend(int i, Scratch s, KVCache cache, int r, int kh, int p) {
        int kvo = (r * kv + kh) * d;
        if (valueEmbed[i] != null) {
            float[] wg = veGate[i].floats(), ve = valueEmbed[i].floats();
            int go = veGate[i].offset() + kh * GPTConfig.VE_GATE_CHANNELS;
            float z = 0f;
            for (int j = 0; j < GPTConfig.VE_GATE_CHANNELS; j++) z += wg[go + j] * s.hn[r * c + j];
            float gate = 3f * sigmoid(z);
            int vo = valueEmbed[i].offset() + s.tokens[r] * kv * d + kh * d;
            for (int j = 0; j < d; j++) s.v[kvo + j] += gate * ve[vo + j];
        }
        rope(s.k, kvo, p);
        rmsNorm(s.k, kvo, s.k, kvo, d, GPT.QK_SCALE);
        Tensor keys = cache.keys(i), values = cache.values(i);
        int co = ((r * cache.maxLen() + p) * kv + kh) * d;
        System.arraycopy(s.k, kvo, keys.floats(), keys.offset() + co, d);
        System.arraycopy(s.v, kvo, values.floats(), values.offset() + co, d);

        int window = cfg.windowSize(i);
        int lo = window < 0 ? 0 : Math.max(0, p - window), n = p - lo + 1;
        float scale = (float) (1.0 / Math.sqrt(d));
        float[] kc = keys.floats(), vc = values.floats();
        int stride = kv * d, base0 = ((r * cache.maxLen() + lo) * kv + kh) * d;
        for (int hh = 0; hh < g; hh++) {
            int qo = (r * h + kh * g + hh) * d, so = (r * h + kh * g + hh) * cache.maxLen();
            rope(s.q, qo, p);
            rmsNorm(s.q, qo, s.q, qo, d, GPT.QK_SCALE);
            float[] sc = s.scores;
            float max = Float.NEGATIVE_INFINITY;
            for (int j = 0; j < n; j++) {
                float z = dot(s.q, qo, kc, keys.offset() + base0 + j * stride, d) * scale;
                sc[so + j] = z;
                max = Math.max(max, z);
            }
            float sum = expShift(sc, so, n, max);
            float inv = 1f / sum;
            java.util.Arrays.fill(s.y, qo, qo + d, 0f);
            for (int j = 0; j < n; j++) axpy(sc[so + j] * inv, vc, values.offset() + base0 + j * stride, s.y, qo, d);
        }
    }

    /** RoPE at position p on one head (halves layout, rotation by −θ): y1 = x1·cos + x2·sin, y2 = x2·cos − x1·sin. */
    private void rope(float[] x, int o, int p) {
        int half = d / 2;
        float[] cs = cos.floats(), sn = sin.floats();
        int co = cos.offset() + p * half, so = sin.offset() + p * half;
        for (int j = 0; j < half; j++) {
            float a = x[o + j], bb = x[o + half + j], cj = cs[co + j], sj = sn[so + j];
            x[o + j] = a * cj + bb * sj;
            x[o + half + j] = bb * cj - a * sj;
        }
    }

    /** sc[o..o+n) ← exp(sc − max); returns the sum. */
    private static float expShift(float[] sc, int o, int n, float max) {
        var acc = FloatVector.zero(F);
        int j = 0;
        for (; j + L <= n; j += L) {
            var e = FloatVector.fromArray(F, sc, o + j).sub(max).lanewise(VectorOperators.EXP);
            e.intoArray(sc, o + j);
            acc = acc.add(e);
        }
        float sum = acc.reduceLanes(VectorOperators.ADD);
        for (; j < n; j++) {
            float e = (float) Math.exp(sc[o + j] - max);
            sc[o + j] = e;
            sum += e;
        }
        return sum;
    }

    // ------------------------------------------------------------------ GEMV

    private enum Epilogue { STORE, ADD, RELU2, SOFTCAP }

    /** y[b, r] for the first {@code rows} rows of W (rows, k); x has stride k, y stride {@code rows}. */
    private record Gemv(Tensor w, int rows, float[] x, float[] y) {
        int k() { return w.shape(1); }

        int rowsPerChunk() { return Math.max(4, CHUNK_FLOATS / k() / 4 * 4); }

        int chunks() { return (rows + rowsPerChunk() - 1) / rowsPerChunk(); }
    }

    /** One parallel phase over the row chunks of every GEMV in {@code gs} (they share the input: q, k, v). */
    private static void gemv(int b, Epilogue e, Gemv... gs) {
        int[] start = new int[gs.length + 1];
        for (int i = 0; i < gs.length; i++) start[i + 1] = start[i] + gs[i].chunks();
        Team.run(start[gs.length], (chunk, unused) -> {
            int i = 0;
            while (chunk >= start[i + 1]) i++;
            Gemv m = gs[i];
            int r0 = (chunk - start[i]) * m.rowsPerChunk(), r1 = Math.min(m.rows, r0 + m.rowsPerChunk());
            rows(m.w.floats(), m.w.offset(), m.k(), m.x, b, m.y, m.rows, r0, r1, e == Epilogue.ADD);
            for (int r = 0; r < b; r++) {
                if (e == Epilogue.RELU2) relu2(m.y, r * m.rows + r0, r1 - r0);
                if (e == Epilogue.SOFTCAP) softcap(m.y, r * m.rows + r0, r1 - r0, GPT.SOFTCAP);
            }
        });
    }

    /**
     * y[b·ys + r] = W[r,:]·x[b·k ..] (+= when {@code add}) for r in [r0, r1) and every b in [0, nb); W (·, k) at wo.
     * Four W rows per pass (four independent FMA chains), streamed from memory for b = 0 and from L1 after.
     */
    static void rows(float[] w, int wo, int k, float[] x, int nb, float[] y, int ys, int r0, int r1, boolean add) {
        int ub = k / L * L;
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int w0 = wo + r * k, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k;
            for (int b = 0; b < nb; b++) {
                int xb = b * k;
                var a0 = FloatVector.zero(F);
                var a1 = FloatVector.zero(F);
                var a2 = FloatVector.zero(F);
                var a3 = FloatVector.zero(F);
                int j = 0;
                for (; j < ub; j += L) {
                    var xv = FloatVector.fromArray(F, x, xb + j);
                    a0 = FloatVector.fromArray(F, w, w0 + j).fma(xv, a0);
                    a1 = FloatVector.fromArray(F, w, w1 + j).fma(xv, a1);
                    a2 = FloatVector.fromArray(F, w, w2 + j).fma(xv, a2);
                    a3 = FloatVector.fromArray(F, w, w3 + j).fma(xv, a3);
                }
                float s0 = a0.reduceLanes(VectorOperators.ADD), s1 = a1.reduceLanes(VectorOperators.ADD);
                float s2 = a2.reduceLanes(VectorOperators.ADD), s3 = a3.reduceLanes(VectorOperators.ADD);
                for (; j < k; j++) {
                    float xj = x[xb + j];
                    s0 += w[w0 + j] * xj;
                    s1 += w[w1 + j] * xj;
                    s2 += w[w2 + j] * xj;
                    s3 += w[w3 + j] * xj;
                }
                int yo = b * ys + r;
                if (add) {
                    y[yo] += s0;
                    y[yo + 1] += s1;
                    y[yo + 2] += s2;
                    y[yo + 3] += s3;
                } else {
                    y[yo] = s0;
                    y[yo + 1] = s1;
                    y[yo + 2] = s2;
                    y[yo + 3] = s3;
                }
            }
        }
        for (; r < r1; r++) {
            for (int b = 0; b < nb; b++) {
                float s = dot(w, wo + r * k, x, b * k, k);
                y[b * ys + r] = add ? y[b * ys + r] + s : s;
            }
        }
    }

    private static void relu2(float[] y, int o, int n) {
        int j = 0;
        for (; j + L <= n; j += L) {
            var r = FloatVector.fromArray(F, y, o + j).max(0f);
            r.mul(r).intoArray(y, o + j);
        }
        for (; j < n; j++) {
            float r = Math.max(y[o + j], 0f);
            y[o + j] = r * r;
        }
    }

    private static void softcap(float[] y, int o, int n, float cap) {
        float inv = 1f / cap;
        int j = 0;
        for (; j + L <= n; j += L) {
            FloatVector.fromArray(F, y, o + j).mul(inv).lanewise(VectorOperators.TANH).mul(cap).intoArray(y, o + j);
        }
        for (; j < n; j++) y[o + j] = cap * (float) Math.tanh(y[o + j] * inv);
    }

    // ------------------------------------------------------------------ small vector helpers

    private static float dot(float[] a, int ao, float[] b, int bo, int n) {
        var acc = FloatVector.zero(F);
        int j = 0;
        for (; j + L <= n; j += L) acc = FloatVector.fromArray(F, a, ao + j).fma(FloatVector.fromArray(F, b, bo + j), acc);
        float s = acc.reduceLanes(VectorOperators.ADD);
        for (; j < n; j++) s += a[ao + j] * b[bo + j];
        return s;
    }

    /** y[yo..yo+n) += a·x[xo..xo+n). */
    private static void axpy(float a, float[] x, int xo, float[] y, int yo, int n) {
        int j = 0;
        for (; j + L <= n; j += L) {
            FloatVector.fromArray(F, x, xo + j).fma(FloatVector.broadcast(F, a), FloatVector.fromArray(F, y, yo + j)).intoArray(y, yo + j);
        }
        for (; j < n; j++) y[yo + j] += a * x[xo + j];
    }

    /** Row-wise rms_norm of (rows, n) x into y (nanochat's norm: no weight, eps = fp32 machine epsilon). */
    private static void rmsNorm(float[] x, float[] y, int rows, int n) {
        for (int r = 0; r < rows; r++) rmsNorm(x, r * n, y, r * n, n, 1f);
    }

    /** y = scale·x/√(mean x² + eps) over one row of n (may be in place). */
    private static void rmsNorm(float[] x, int xo, float[] y, int yo, int n, float scale) {
        float k = scale * (float) (1.0 / Math.sqrt(dot(x, xo, x, xo, n) / n + Backend.RMS_EPS));
        int j = 0;
        for (; j + L <= n; j += L) FloatVector.fromArray(F, x, xo + j).mul(k).intoArray(y, yo + j);
        for (; j < n; j++) y[yo + j] = x[xo + j] * k;
    }

    private static float sigmoid(float z) {
        return (float) (1.0 / (1.0 + Math.exp(-z)));
    }
}
