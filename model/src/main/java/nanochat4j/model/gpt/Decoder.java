package nanochat4j.model.gpt;

import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Team;
import nanochat4j.tensor.cpu.Vec;
import nanochat4j.tensor.cpu.VecMath;

/**
 * The KV-cache forward of a short chunk — one new token in each of B sample rows (decode), or a short prompt — as
 * plain loops over buffers planned once per cache: the math of {@link GPT#forwardCached} (whose tensor path runs long
 * prefill chunks) without a tensor or autograd node per op. Rows are the B·T (row, position) pairs:
 * <ul>
 *   <li>x = rms_norm(wte[tok]); smear: x_t += λ·σ(w·x_t[0:24])·x_{t−1} inside the chunk, and a single token mixes in
 *       the cached last pre-smear embedding of the previous call; x0 = x;</li>
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
 * <p>
 * The streamed matrices (q, k, v, proj, fc, mlp proj, lm_head) are either the fp32 parameters themselves (live views:
 * training updates show) or, with {@link DecodeWeights#BF16}, a bf16 copy made once when the decoder is built (a
 * snapshot: half the bytes per token); each dtype has its GEMV kernel ({@link #rows}, {@link #rowsBf16}), which widens
 * bf16 to fp32 in registers and accumulates in fp32. The fp32 parameters stay the model's weights either way:
 * training, and {@link GPT#forwardCached}'s tensor path for long prompt chunks, read them. Embedding rows (wte, value
 * embeddings: one row per token) and the tiny gates are always read from the fp32 parameters.
 */
final class Decoder {
    private static final VectorSpecies<Float> F = Vec.F;
    private static final int L = Vec.LANES;
    /** Most (row, position) pairs a chunk may have here: the GEMVs keep that many input rows in L1/L2. */
    static final int MAX_ROWS = 32;
    /** Weight elements per GEMV chunk (128 KB fp32, 64 KB bf16): large enough that claiming it costs nothing, small enough to balance. */
    private static final int CHUNK_FLOATS = 1 << 15;

    private final GPTConfig cfg;
    private final DecodeWeights weights;
    private final int c, h, kv, d, g, vocab;
    private final Tensor wte, lmHead, residLambdas, x0Lambdas, smearGate, smearLambda, backoutLambda, cos, sin;
    private final Tensor[] cq, ck, cv, cProj, veGate, cFc, mlpProj, valueEmbed;

    Decoder(GPT model, Tensor cos, Tensor sin, DecodeWeights weights) {
        cfg = model.config();
        this.weights = weights;
        c = cfg.nEmbd();
        h = cfg.nHead();
        kv = cfg.nKvHead();
        d = cfg.headDim();
        g = h / kv;
        vocab = cfg.vocabSize();
        this.cos = cos;
        this.sin = sin;
        wte = model.parameter("transformer.wte.weight").tensor();
        lmHead = matrix(model.parameter("lm_head.weight").tensor().slice(0, vocab));   // the padding rows are never read
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
            cq[i] = matrix(model.parameter(p + "attn.c_q.weight").tensor());
            ck[i] = matrix(model.parameter(p + "attn.c_k.weight").tensor());
            cv[i] = matrix(model.parameter(p + "attn.c_v.weight").tensor());
            cProj[i] = matrix(model.parameter(p + "attn.c_proj.weight").tensor());
            cFc[i] = matrix(model.parameter(p + "mlp.c_fc.weight").tensor());
            mlpProj[i] = matrix(model.parameter(p + "mlp.c_proj.weight").tensor());
            if (cfg.hasValueEmbed(i)) {
                veGate[i] = model.parameter(p + "attn.ve_gate.weight").tensor();
                valueEmbed[i] = model.parameter("value_embeds." + i + ".weight").tensor();
            }
        }
    }

    /** A streamed matrix as this decoder reads it: the fp32 parameter (a view), or its bf16 copy (nearest even). */
    private Tensor matrix(Tensor w) {
        return weights == DecodeWeights.BF16 ? Backend.cpu().toBf16(w) : w;
    }

    DecodeWeights weights() { return weights; }

    /**
     * Weight bytes one decode step reads for each sample row's token: every streamed matrix at its dtype, plus the
     * fp32 embedding row, value-embedding rows and gates (the KV cache comes on top).
     */
    long bytesPerStep() {
        long n = bytes(lmHead) + (long) c * Float.BYTES + (long) GPTConfig.SMEAR_CHANNELS * Float.BYTES;
        for (int i = 0; i < cfg.nLayer(); i++) {
            n += bytes(cq[i]) + bytes(ck[i]) + bytes(cv[i]) + bytes(cProj[i]) + bytes(cFc[i]) + bytes(mlpProj[i]);
            if (valueEmbed[i] != null) n += bytes(veGate[i]) + (long) kv * d * Float.BYTES;
        }
        return n;
    }

    private static long bytes(Tensor t) {
        return (long) t.numel() * t.dtype().bytes();
    }

    /** Activations of one call for up to {@code rows} (row, position) pairs, allocated with the cache's first call. */
    static final class Scratch {
        final int rows;
        final int[] tokens;
        final float[] emb, x, x0, xMid, hn;     // (rows, C)
        final float[] q, y;                     // (rows, H·D)
        final float[] k, v;                     // (rows, KV·D)
        final float[] u;                        // (rows, 4C)
        final float[] scores;                   // (B, H, maxLen)

        Scratch(GPTConfig cfg, int batch, int rows, int maxLen) {
            int c = cfg.nEmbd(), hd = cfg.nHead() * cfg.headDim(), kvd = cfg.kvDim();
            this.rows = rows;
            tokens = new int[rows];
            emb = new float[rows * c];
            x = new float[rows * c];
            x0 = new float[rows * c];
            xMid = new float[rows * c];
            hn = new float[rows * c];
            q = new float[rows * hd];
            y = new float[rows * hd];
            k = new float[rows * kvd];
            v = new float[rows * kvd];
            u = new float[rows * 4 * c];
            scores = new float[batch * cfg.nHead() * maxLen];
        }
    }

    /** Soft-capped logits (B·T, vocab) of the chunk {@code idx} (B,T) (T = 1, or B·T ≤ {@link #MAX_ROWS}); advances the cache by T. */
    float[] step(Tensor idx, KVCache cache) {
        int b = cache.batch(), t = idx.shape(1), rows = b * t, p = cache.pos();
        if (idx.shape(0) != b) {
            throw new IllegalArgumentException("forwardCached: " + idx.shape(0) + " rows of tokens for a cache of batch " + b);
        }
        if (p + t > cos.shape(0)) throw new IllegalArgumentException("forwardCached: position " + (p + t - 1) + " is past the rotary table (" + cos.shape(0) + ")");
        if (cache.scratch == null || cache.scratch.rows < rows) cache.scratch = new Scratch(cfg, b, rows, cache.maxLen());
        Scratch s = cache.scratch;
        System.arraycopy(idx.ints(), idx.offset(), s.tokens, 0, rows);

        embed(s, cache, b, t);
        System.arraycopy(s.x, 0, s.x0, 0, rows * c);
        for (int i = 0; i < cfg.nLayer(); i++) {
            block(i, s, cache, rows, t, p);
            if (i == cfg.backoutLayer()) System.arraycopy(s.x, 0, s.xMid, 0, rows * c);
        }
        float lam = backoutLambda.floats()[backoutLambda.offset()];
        for (int j = 0; j < rows * c; j++) s.x[j] -= lam * s.xMid[j];
        rmsNorm(s.x, s.hn, rows, c);
        float[] logits = new float[rows * vocab];
        gemv(rows, Epilogue.SOFTCAP, new Gemv(lmHead, vocab, s.hn, logits));
        cache.advance(t);
        return logits;
    }

    /**
     * e = rms_norm(wte[tok]); x_t = e_t + λ·σ(w·e_t[0:24])·e_{t−1} for t ≥ 1, and for a single token with e_{−1} the
     * cached previous embedding (when there is one); the cache keeps e of the chunk's last position.
     */
    private void embed(Scratch s, KVCache cache, int b, int t) {
        float[] w = wte.floats();
        for (int r = 0; r < b * t; r++) rmsNorm(w, wte.offset() + s.tokens[r] * c, s.emb, r * c, c, 1f);
        System.arraycopy(s.emb, 0, s.x, 0, b * t * c);
        float[] prev = cache.prev();
        float lam = smearLambda.floats()[smearLambda.offset()];
        float[] sg = smearGate.floats();
        for (int r = 0; r < b * t; r++) {
            float[] src = r % t > 0 ? s.emb : t == 1 && cache.hasPrev() ? prev : null;
            if (src == null) continue;
            int so = r % t > 0 ? (r - 1) * c : r * c;
            float z = 0f;
            for (int j = 0; j < GPTConfig.SMEAR_CHANNELS; j++) z += s.emb[r * c + j] * sg[smearGate.offset() + j];
            float gate = lam * sigmoid(z);
            for (int j = 0; j < c; j++) s.x[r * c + j] += gate * src[so + j];
        }
        for (int r = 0; r < b; r++) System.arraycopy(s.emb, (r * t + t - 1) * c, prev, r * c, c);
        cache.markPrev();
    }

    /** Block i on s.x in place for chunks of t tokens at positions p.. (rows = B·t). */
    private void block(int i, Scratch s, KVCache cache, int rows, int t, int p) {
        float rl = residLambdas.floats()[residLambdas.offset() + i], xl = x0Lambdas.floats()[x0Lambdas.offset() + i];
        for (int j = 0; j < rows * c; j++) s.x[j] = rl * s.x[j] + xl * s.x0[j];
        rmsNorm(s.x, s.hn, rows, c);
        gemv(rows, Epilogue.STORE, new Gemv(cq[i], h * d, s.hn, s.q), new Gemv(ck[i], kv * d, s.hn, s.k),
                new Gemv(cv[i], kv * d, s.hn, s.v));
        Team.run(rows / t * kv, (task, unused) -> attend(i, s, cache, task / kv, task % kv, t, p));
        gemv(rows, Epilogue.ADD, new Gemv(cProj[i], c, s.y, s.x));
        rmsNorm(s.x, s.hn, rows, c);
        gemv(rows, Epilogue.RELU2, new Gemv(cFc[i], 4 * c, s.hn, s.u));
        gemv(rows, Epilogue.ADD, new Gemv(mlpProj[i], c, s.u, s.x));
    }

    // ------------------------------------------------------------------ attention of one (row, kv head)

    /**
     * Cache row bb, kv head kh of layer i, positions p..p+t−1 (rows r = bb·t + τ): first every new key and value —
     * v += 3·σ(W_gate[kh]·hn[0:12])·ve[tok] (value-embedding layers); k ← rms_norm(rope(k))·1.2; k, v into the
     * cache — then each query head of kh at each position i = p+τ, q ← rms_norm(rope(q))·1.2, over the keys j it sees
     * (i − window ≤ j ≤ i): y = Σ_j softmax_j(q·k_j/√D)·v_j.
     */
    private void attend(int i, Scratch s, KVCache cache, int bb, int kh, int t, int p) {
        Tensor keys = cache.keys(i), values = cache.values(i);
        float[] kc = keys.floats(), vc = values.floats();
        int maxLen = cache.maxLen(), stride = kv * d;
        for (int tau = 0; tau < t; tau++) {
            int r = bb * t + tau, kvo = (r * kv + kh) * d;
            if (valueEmbed[i] != null) {
                float[] wg = veGate[i].floats(), ve = valueEmbed[i].floats();
                int go = veGate[i].offset() + kh * GPTConfig.VE_GATE_CHANNELS;
                float z = 0f;
                for (int j = 0; j < GPTConfig.VE_GATE_CHANNELS; j++) z += wg[go + j] * s.hn[r * c + j];
                float gate = 3f * sigmoid(z);
                int vo = valueEmbed[i].offset() + s.tokens[r] * kv * d + kh * d;
                for (int j = 0; j < d; j++) s.v[kvo + j] += gate * ve[vo + j];
            }
            rope(s.k, kvo, p + tau);
            rmsNorm(s.k, kvo, s.k, kvo, d, GPT.QK_SCALE);
            int co = ((bb * maxLen + p + tau) * kv + kh) * d;
            System.arraycopy(s.k, kvo, kc, keys.offset() + co, d);
            System.arraycopy(s.v, kvo, vc, values.offset() + co, d);
        }
        int window = cfg.windowSize(i);
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int tau = 0; tau < t; tau++) {
            int r = bb * t + tau, pi = p + tau;
            int lo = window < 0 ? 0 : Math.max(0, pi - window), n = pi - lo + 1;
            int base0 = ((bb * maxLen + lo) * kv + kh) * d;
            for (int hh = 0; hh < g; hh++) {
                int qo = (r * h + kh * g + hh) * d, so = (bb * h + kh * g + hh) * maxLen;
                rope(s.q, qo, pi);
                rmsNorm(s.q, qo, s.q, qo, d, GPT.QK_SCALE);
                float[] sc = s.scores;
                float max = Float.NEGATIVE_INFINITY;
                for (int j = 0; j < n; j++) {
                    float z = dot(s.q, qo, kc, keys.offset() + base0 + j * stride, d) * scale;
                    sc[so + j] = z;
                    max = Math.max(max, z);
                }
                float inv = 1f / expShift(sc, so, n, max);
                Arrays.fill(s.y, qo, qo + d, 0f);
                for (int j = 0; j < n; j++) axpy(sc[so + j] * inv, vc, values.offset() + base0 + j * stride, s.y, qo, d);
            }
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
            var e = VecMath.exp(FloatVector.fromArray(F, sc, o + j).sub(max));
            e.intoArray(sc, o + j);
            acc = acc.add(e);
        }
        float sum = VecMath.sum(acc);
        for (; j < n; j++) {
            float e = VecMath.exp(sc[o + j] - max);
            sc[o + j] = e;
            sum += e;
        }
        return sum;
    }

    // ------------------------------------------------------------------ GEMV

    private enum Epilogue { STORE, ADD, RELU2, SOFTCAP }

    /** y[b, r] for the first {@code rows} rows of W (rows, k), fp32 or bf16; x has stride k, y stride {@code rows}. */
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
            if (m.w.dtype() == DType.BF16) rowsBf16(m.w.shorts(), m.w.offset(), m.k(), m.x, b, m.y, m.rows, r0, r1, e == Epilogue.ADD);
            else rows(m.w.floats(), m.w.offset(), m.k(), m.x, b, m.y, m.rows, r0, r1, e == Epilogue.ADD);
            for (int r = 0; r < b; r++) {
                if (e == Epilogue.RELU2) relu2(m.y, r * m.rows + r0, r1 - r0);
                if (e == Epilogue.SOFTCAP) softcap(m.y, r * m.rows + r0, r1 - r0, GPT.SOFTCAP);
            }
        });
    }

    /**
     * y[b·ys + r] = W[r,:]·x[b·k ..] (+= when {@code add}) for r in [r0, r1) and every b in [0, nb); W (·, k) at wo.
     * Four W rows × two input rows per pass (eight independent FMA chains); the four W rows come from memory for the
     * first pair and from L1 after.
     */
    static void rows(float[] w, int wo, int k, float[] x, int nb, float[] y, int ys, int r0, int r1, boolean add) {
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int b = 0;
            for (; b + 2 <= nb; b += 2) quad(w, wo + r * k, k, x, b * k, k, y, b * ys + r, ys, add);
            if (b < nb) quad(w, wo + r * k, k, x, b * k, 0, y, b * ys + r, 0, add);
        }
        for (; r < r1; r++) {
            for (int b = 0; b < nb; b++) {
                float s = dot(w, wo + r * k, x, b * k, k);
                y[b * ys + r] = add ? y[b * ys + r] + s : s;
            }
        }
    }

    /**
     * Four outputs for each of the input rows at xa and xa + dx (dx = 0: one input row, computed twice, stored once):
     * y[ya + q] and y[ya + dy + q] for W rows q = 0..3 at wa.
     */
    private static void quad(float[] w, int wa, int k, float[] x, int xa, int dx, float[] y, int ya, int dy, boolean add) {
        int w0 = wa, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k, xb = xa + dx;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        var b0 = FloatVector.zero(F);
        var b1 = FloatVector.zero(F);
        var b2 = FloatVector.zero(F);
        var b3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            var xw = FloatVector.fromArray(F, x, xb + j);
            var v0 = FloatVector.fromArray(F, w, w0 + j);
            var v1 = FloatVector.fromArray(F, w, w1 + j);
            var v2 = FloatVector.fromArray(F, w, w2 + j);
            var v3 = FloatVector.fromArray(F, w, w3 + j);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            b0 = v0.fma(xw, b0);
            b1 = v1.fma(xw, b1);
            b2 = v2.fma(xw, b2);
            b3 = v3.fma(xw, b3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        float t0 = VecMath.sum(b0), t1 = VecMath.sum(b1);
        float t2 = VecMath.sum(b2), t3 = VecMath.sum(b3);
        for (; j < k; j++) {
            float xj = x[xa + j], xk = x[xb + j];
            s0 += w[w0 + j] * xj;
            s1 += w[w1 + j] * xj;
            s2 += w[w2 + j] * xj;
            s3 += w[w3 + j] * xj;
            t0 += w[w0 + j] * xk;
            t1 += w[w1 + j] * xk;
            t2 += w[w2 + j] * xk;
            t3 += w[w3 + j] * xk;
        }
        put(y, ya, s0, s1, s2, s3, add);
        if (dy != 0) put(y, ya + dy, t0, t1, t2, t3, add);
    }

    private static void put(float[] y, int o, float s0, float s1, float s2, float s3, boolean add) {
        if (add) {
            y[o] += s0;
            y[o + 1] += s1;
            y[o + 2] += s2;
            y[o + 3] += s3;
        } else {
            y[o] = s0;
            y[o + 1] = s1;
            y[o + 2] = s2;
            y[o + 3] = s3;
        }
    }

    /**
     * {@link #rows} over bf16 weights: the same passes (four W rows × two input rows), each W vector loaded as L
     * shorts and widened to fp32 in registers; accumulation in fp32.
     */
    static void rowsBf16(short[] w, int wo, int k, float[] x, int nb, float[] y, int ys, int r0, int r1, boolean add) {
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int b = 0;
            for (; b + 2 <= nb; b += 2) quadBf16(w, wo + r * k, k, x, b * k, k, y, b * ys + r, ys, add);
            if (b < nb) quadBf16(w, wo + r * k, k, x, b * k, 0, y, b * ys + r, 0, add);
        }
        for (; r < r1; r++) {
            for (int b = 0; b < nb; b++) {
                float s = dotBf16(w, wo + r * k, x, b * k, k);
                y[b * ys + r] = add ? y[b * ys + r] + s : s;
            }
        }
    }

    /** {@link #quad} over bf16 weights. */
    private static void quadBf16(short[] w, int wa, int k, float[] x, int xa, int dx, float[] y, int ya, int dy, boolean add) {
        int w0 = wa, w1 = w0 + k, w2 = w1 + k, w3 = w2 + k, xb = xa + dx;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        var b0 = FloatVector.zero(F);
        var b1 = FloatVector.zero(F);
        var b2 = FloatVector.zero(F);
        var b3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            var xw = FloatVector.fromArray(F, x, xb + j);
            var v0 = Vec.fromBf16(w, w0 + j);
            var v1 = Vec.fromBf16(w, w1 + j);
            var v2 = Vec.fromBf16(w, w2 + j);
            var v3 = Vec.fromBf16(w, w3 + j);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            b0 = v0.fma(xw, b0);
            b1 = v1.fma(xw, b1);
            b2 = v2.fma(xw, b2);
            b3 = v3.fma(xw, b3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        float t0 = VecMath.sum(b0), t1 = VecMath.sum(b1);
        float t2 = VecMath.sum(b2), t3 = VecMath.sum(b3);
        for (; j < k; j++) {
            float xj = x[xa + j], xk = x[xb + j];
            float u0 = DType.fromBf16(w[w0 + j]), u1 = DType.fromBf16(w[w1 + j]);
            float u2 = DType.fromBf16(w[w2 + j]), u3 = DType.fromBf16(w[w3 + j]);
            s0 += u0 * xj;
            s1 += u1 * xj;
            s2 += u2 * xj;
            s3 += u3 * xj;
            t0 += u0 * xk;
            t1 += u1 * xk;
            t2 += u2 * xk;
            t3 += u3 * xk;
        }
        put(y, ya, s0, s1, s2, s3, add);
        if (dy != 0) put(y, ya + dy, t0, t1, t2, t3, add);
    }

    private static float dotBf16(short[] w, int wo, float[] x, int xo, int n) {
        var acc = FloatVector.zero(F);
        int j = 0;
        for (; j + L <= n; j += L) acc = Vec.fromBf16(w, wo + j).fma(FloatVector.fromArray(F, x, xo + j), acc);
        float s = VecMath.sum(acc);
        for (; j < n; j++) s += DType.fromBf16(w[wo + j]) * x[xo + j];
        return s;
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
            VecMath.tanh(FloatVector.fromArray(F, y, o + j).mul(inv)).mul(cap).intoArray(y, o + j);
        }
        for (; j < n; j++) y[o + j] = cap * VecMath.tanh(y[o + j] * inv);
    }

    // ------------------------------------------------------------------ small vector helpers

    private static float dot(float[] a, int ao, float[] b, int bo, int n) {
        var acc = FloatVector.zero(F);
        int j = 0;
        for (; j + L <= n; j += L) acc = FloatVector.fromArray(F, a, ao + j).fma(FloatVector.fromArray(F, b, bo + j), acc);
        float s = VecMath.sum(acc);
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
        return VecMath.sigmoid(z);
    }
}
