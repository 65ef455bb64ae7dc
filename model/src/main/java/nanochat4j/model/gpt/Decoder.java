package nanochat4j.model.gpt;

import java.util.Arrays;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Elementwise;
import nanochat4j.tensor.cpu.Gemv;
import nanochat4j.tensor.cpu.Reduce;
import nanochat4j.tensor.cpu.RmsNorm;
import nanochat4j.tensor.cpu.Rotary;
import nanochat4j.tensor.cpu.Team;
import nanochat4j.tensor.cpu.VecMath;

/**
 * The CPU's fast path for {@link GPT#forwardCached}: a short chunk — one new token in each of B sample rows (decode),
 * or a short prompt — as plain loops over buffers planned once per cache, the math of GPT's block loop without a
 * tensor or autograd node per op. Rows are the B·T (row, position) pairs:
 * <ul>
 *   <li>x = rms_norm(wte[tok]); smear: x_t += λ·σ(w·x_t[0:24])·x_{t−1} inside the chunk, and a single token mixes in
 *       the cached last pre-smear embedding of the previous call; x0 = x;</li>
 *   <li>per layer x = resid_λ·x + x0_λ·x0; hn = rms_norm(x); q,k,v = W·hn; v += 3·σ(W_gate·hn[0:12])·ve[tok];
 *       RoPE, then QK-norm ×1.2; k, v into the cache; causal windowed GQA attention over the cache;
 *       x += W_proj·y; x += W_mlp·relu²(W_fc·rms_norm(x)); backout: x −= λ·x_mid (after block n//2);</li>
 *   <li>logits = 15·tanh(W_lm·rms_norm(x)/15) over the real vocab rows only (the padding is never computed).</li>
 * </ul>
 * A decode step is bound by reading the weights, so every matmul is {@link Gemv} for all B rows at once (each weight
 * row read once, reused from L1 by every sample row); the residual add is its β = 1, relu² and softcap run on each
 * finished slice while it is still in cache. Each weight-sized phase (q/k/v together, proj, fc, mlp proj, lm_head)
 * and the attention (one task per row and kv head: ve mix, RoPE, QK-norm, cache write, then its query heads) is split
 * over {@link Team}, whose helpers spin between the many short phases of a step. Norms and lambda mixes over B·C
 * floats run on the caller. The per-row kernels are tensor.cpu's ({@link RmsNorm}, {@link Rotary},
 * {@link Elementwise}, {@link Reduce}), the same code the backend runs.
 * <p>
 * The streamed matrices (q, k, v, proj, fc, mlp proj, lm_head) are either the fp32 parameters themselves (live views:
 * training updates show) or, with {@link DecodeWeights#BF16}, a bf16 copy made once when the decoder is built (a
 * snapshot: half the bytes per token), widened to fp32 in registers with fp32 accumulation. The fp32 parameters stay
 * the model's weights either way: training, and {@link GPT#forwardCached}'s block loop for long prompt chunks, read
 * them. Embedding rows (wte, value embeddings: one row per token) and the tiny gates are always read from the fp32
 * parameters.
 */
final class Decoder {
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
        Elementwise.axpbyRange(1f, s.x, 0, -lam, s.xMid, 0, s.x, 0, rows * c);
        rmsNorm(s.x, s.hn, rows, c);
        float[] logits = new float[rows * vocab];
        gemv(rows, Epilogue.SOFTCAP, new Product(lmHead, vocab, s.hn, logits));
        cache.advance(t);
        return logits;
    }

    /**
     * e = rms_norm(wte[tok]); x_t = e_t + λ·σ(w·e_t[0:24])·e_{t−1} for t ≥ 1, and for a single token with e_{−1} the
     * cached previous embedding (when there is one); the cache keeps e of the chunk's last position.
     */
    private void embed(Scratch s, KVCache cache, int b, int t) {
        float[] w = wte.floats();
        for (int r = 0; r < b * t; r++) RmsNorm.row(w, wte.offset() + s.tokens[r] * c, s.emb, r * c, c, 1f, Backend.RMS_EPS);
        System.arraycopy(s.emb, 0, s.x, 0, b * t * c);
        Tensor prevT = cache.prev();
        float[] prev = prevT.floats();
        int po = prevT.offset();
        float lam = smearLambda.floats()[smearLambda.offset()];
        for (int r = 0; r < b * t; r++) {
            float[] src = r % t > 0 ? s.emb : t == 1 && cache.hasPrev() ? prev : null;
            if (src == null) continue;
            int so = r % t > 0 ? (r - 1) * c : po + r * c;
            float z = Reduce.dot(s.emb, r * c, smearGate.floats(), smearGate.offset(), GPTConfig.SMEAR_CHANNELS);
            float gate = lam * VecMath.sigmoid(z);
            Elementwise.axpyRange(gate, src, so, s.x, r * c, c);
        }
        for (int r = 0; r < b; r++) System.arraycopy(s.emb, (r * t + t - 1) * c, prev, po + r * c, c);
        cache.markPrev();
    }

    /** Block i on s.x in place for chunks of t tokens at positions p.. (rows = B·t). */
    private void block(int i, Scratch s, KVCache cache, int rows, int t, int p) {
        float rl = residLambdas.floats()[residLambdas.offset() + i], xl = x0Lambdas.floats()[x0Lambdas.offset() + i];
        Elementwise.axpbyRange(rl, s.x, 0, xl, s.x0, 0, s.x, 0, rows * c);
        rmsNorm(s.x, s.hn, rows, c);
        gemv(rows, Epilogue.STORE, new Product(cq[i], h * d, s.hn, s.q), new Product(ck[i], kv * d, s.hn, s.k),
                new Product(cv[i], kv * d, s.hn, s.v));
        Team.run(rows / t * kv, (task, unused) -> attend(i, s, cache, task / kv, task % kv, t, p));
        gemv(rows, Epilogue.ADD, new Product(cProj[i], c, s.y, s.x));
        rmsNorm(s.x, s.hn, rows, c);
        gemv(rows, Epilogue.RELU2, new Product(cFc[i], 4 * c, s.hn, s.u));
        gemv(rows, Epilogue.ADD, new Product(mlpProj[i], c, s.u, s.x));
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
                float gate = 3f * VecMath.sigmoid(Reduce.dot(wg, go, s.hn, r * c, GPTConfig.VE_GATE_CHANNELS));
                int vo = valueEmbed[i].offset() + s.tokens[r] * kv * d + kh * d;
                Elementwise.axpyRange(gate, ve, vo, s.v, kvo, d);
            }
            rope(s.k, kvo, p + tau);
            RmsNorm.row(s.k, kvo, s.k, kvo, d, GPT.QK_SCALE, Backend.RMS_EPS);
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
                RmsNorm.row(s.q, qo, s.q, qo, d, GPT.QK_SCALE, Backend.RMS_EPS);
                float[] sc = s.scores;
                for (int j = 0; j < n; j++) sc[so + j] = Reduce.dot(s.q, qo, kc, keys.offset() + base0 + j * stride, d) * scale;
                Reduce.softmaxRow(sc, so, sc, so, n);
                Arrays.fill(s.y, qo, qo + d, 0f);
                for (int j = 0; j < n; j++) Elementwise.axpyRange(sc[so + j], vc, values.offset() + base0 + j * stride, s.y, qo, d);
            }
        }
    }

    /** RoPE at position p on one head (halves layout, rotation by −θ), in place. */
    private void rope(float[] x, int o, int p) {
        int half = d / 2;
        Rotary.head(x, o, x, o, cos.floats(), cos.offset() + p * half, sin.floats(), sin.offset() + p * half, half, 1f);
    }

    // ------------------------------------------------------------------ GEMV

    private enum Epilogue { STORE, ADD, RELU2, SOFTCAP }

    /** y[b, r] for the first {@code rows} rows of W (rows, k), fp32 or bf16; x has stride k, y stride {@code rows}. */
    private record Product(Tensor w, int rows, float[] x, float[] y) {
        int k() { return w.shape(1); }

        int rowsPerChunk() { return Math.max(4, CHUNK_FLOATS / k() / 4 * 4); }

        int chunks() { return (rows + rowsPerChunk() - 1) / rowsPerChunk(); }
    }

    /** One parallel phase over the row chunks of every GEMV in {@code gs} (they share the input: q, k, v). */
    private static void gemv(int b, Epilogue e, Product... gs) {
        int[] start = new int[gs.length + 1];
        for (int i = 0; i < gs.length; i++) start[i + 1] = start[i] + gs[i].chunks();
        Team.run(start[gs.length], (chunk, unused) -> {
            int i = 0;
            while (chunk >= start[i + 1]) i++;
            Product m = gs[i];
            int r0 = (chunk - start[i]) * m.rowsPerChunk(), r1 = Math.min(m.rows, r0 + m.rowsPerChunk());
            boolean bf16 = m.w.dtype() == DType.BF16;
            Gemv.rows(bf16 ? null : m.w.floats(), bf16 ? m.w.shorts() : null, m.w.offset(), m.k(), m.k(), m.x, 0, m.k(), b, m.y, 0, m.rows,
                    r0, r1, 1f, e == Epilogue.ADD ? 1f : 0f);
            for (int r = 0; r < b; r++) {
                int o = r * m.rows + r0;
                if (e == Epilogue.RELU2) Elementwise.relu2Range(m.y, o, m.y, o, r1 - r0);
                if (e == Epilogue.SOFTCAP) Elementwise.softcapRange(m.y, o, m.y, o, r1 - r0, GPT.SOFTCAP);
            }
        });
    }

    /** Row-wise rms_norm of (rows, n) x into y (nanochat's norm: no weight, eps = fp32 machine epsilon). */
    private static void rmsNorm(float[] x, float[] y, int rows, int n) {
        for (int r = 0; r < rows; r++) RmsNorm.row(x, r * n, y, r * n, n, 1f, Backend.RMS_EPS);
    }
}
