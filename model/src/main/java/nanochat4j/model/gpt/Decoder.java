package nanochat4j.model.gpt;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Attention;
import nanochat4j.tensor.cpu.Elementwise;
import nanochat4j.tensor.cpu.Gemv;
import nanochat4j.tensor.cpu.Reduce;
import nanochat4j.tensor.cpu.RmsNorm;
import nanochat4j.tensor.cpu.Rotary;
import nanochat4j.tensor.cpu.Team;
import nanochat4j.tensor.cpu.VecMath;

/**
 * The CPU's fast executor of {@link Forward} for {@link GPT#forwardCached}: a short chunk — one new token in each of B
 * sample rows (decode), or a short prompt — whose activations are rows of buffers planned once per cache
 * ({@link Scratch}), updated in place, without a tensor or autograd node per op. Rows are the B·T (row, position) pairs.
 * <p>
 * A decode step is bound by reading the weights, so every matmul is {@link Gemv} for all B·T rows at once (each weight
 * row read once, reused from L1 by every input row); the residual add is its β = 1, relu² and softcap run on each
 * finished slice while it is still in cache. Each weight-sized phase (q/k/v together, proj, fc, mlp proj, lm_head)
 * and the attention over the cache (one task per sample row and kv head) is split over {@link Team}, whose helpers
 * spin between the many short phases of a step. The row-sized steps (norms, lambda mixes, smear, value-embedding
 * gate, RoPE, QK-norm, cache write: B·T·C floats or less) run on the caller. The per-row kernels are tensor.cpu's
 * ({@link RmsNorm}, {@link Rotary}, {@link Elementwise}, {@link Reduce}), the same code the backend runs; the order
 * of the steps is {@link Forward}'s.
 * <p>
 * The streamed matrices (q, k, v, proj, fc, mlp proj, lm_head) are either the fp32 parameters themselves (live views:
 * training updates show) or, with {@link DecodeWeights#BF16}, a bf16 copy made once when the decoder is built (a
 * snapshot: half the bytes per token), widened to fp32 in registers with fp32 accumulation. The fp32 parameters stay
 * the model's weights either way: training, and {@link GPT#forwardCached}'s autograd executor for long prompt chunks,
 * read them. Embedding rows (wte, value embeddings: one row per token) and the tiny gates are always read from the
 * fp32 parameters.
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

    /** {@code width} floats per (row, position) pair, row-major: the decoder's activation handle. */
    record Rows(float[] a, int width) {}

    /** Activations of one call for up to {@code rows} (row, position) pairs, allocated with the cache's first call. */
    static final class Scratch {
        final int rows;
        final int[] tokens;
        final Rows emb, x, hn;                  // (rows, C)
        final Rows[] kept;                      // (rows, C) each: x0, x_mid
        final Forward.Qkv<Rows> qkv;            // (rows, H·D), (rows, KV·D) ×2
        final Rows y;                           // (rows, H·D)
        final Rows u;                           // (rows, 4C)
        final float[] scores;                   // (B, H, maxLen)

        Scratch(GPTConfig cfg, int batch, int rows, int maxLen) {
            int c = cfg.nEmbd(), hd = cfg.nHead() * cfg.headDim(), kvd = cfg.kvDim();
            this.rows = rows;
            tokens = new int[rows];
            emb = rows(rows, c);
            x = rows(rows, c);
            hn = rows(rows, c);
            kept = new Rows[] {rows(rows, c), rows(rows, c)};
            qkv = new Forward.Qkv<>(rows(rows, hd), rows(rows, kvd), rows(rows, kvd));
            y = rows(rows, hd);
            u = rows(rows, 4 * c);
            scores = new float[batch * cfg.nHead() * maxLen];
        }

        private static Rows rows(int rows, int width) {
            return new Rows(new float[rows * width], width);
        }
    }

    /**
     * Soft-capped logits (B·T, vocab) of the chunk {@code idx} (B,T) (T = 1, or B·T ≤ {@link #MAX_ROWS}); writes its
     * keys and values at the cache's position (the caller advances the cache).
     */
    float[] step(Tensor idx, KVCache cache) {
        int b = cache.batch(), t = idx.shape(1), rows = b * t;
        if (cache.scratch == null || cache.scratch.rows < rows) cache.scratch = new Scratch(cfg, b, rows, cache.maxLen());
        System.arraycopy(idx.ints(), idx.offset(), cache.scratch.tokens, 0, rows);
        return Forward.logits(cfg, new Step(cache, b, t)).a();
    }

    /** {@link Forward}'s steps for one chunk of t tokens in each of the cache's B rows, at positions p.. */
    private final class Step implements Forward.Exec<Rows> {
        private final Scratch s;
        private final KVCache cache;
        private final int b, t, rows, p;
        private int kept;   // how many of s.kept this call has filled

        Step(KVCache cache, int b, int t) {
            this.s = cache.scratch;
            this.cache = cache;
            this.b = b;
            this.t = t;
            this.rows = b * t;
            this.p = cache.pos();
        }

        @Override
        public Rows embed() {
            float[] w = wte.floats();
            for (int r = 0; r < rows; r++) RmsNorm.row(w, wte.offset() + s.tokens[r] * c, s.emb.a(), r * c, c, 1f, Backend.RMS_EPS);
            return s.emb;
        }

        /**
         * x_t = e_t + λ·σ(w·e_t[0:24])·e_{t−1} for t ≥ 1, and for a single token with e_{−1} the cached previous
         * embedding (when there is one); the cache keeps e of the chunk's last position.
         */
        @Override
        public Rows smear(Rows e) {
            float[] x = s.x.a();
            System.arraycopy(e.a(), 0, x, 0, rows * c);
            Tensor prevT = cache.prev();
            float[] prev = prevT.floats();
            int po = prevT.offset();
            float lam = smearLambda.floats()[smearLambda.offset()];
            for (int r = 0; r < rows; r++) {
                float[] src = r % t > 0 ? e.a() : t == 1 && cache.hasPrev() ? prev : null;
                if (src == null) continue;
                int so = r % t > 0 ? (r - 1) * c : po + r * c;
                float z = Reduce.dot(e.a(), r * c, smearGate.floats(), smearGate.offset(), GPTConfig.SMEAR_CHANNELS);
                Elementwise.axpyRange(lam * VecMath.sigmoid(z), src, so, x, r * c, c);
            }
            for (int r = 0; r < b; r++) System.arraycopy(e.a(), (r * t + t - 1) * c, prev, po + r * c, c);
            cache.markPrev();
            return s.x;
        }

        @Override
        public Rows keep(Rows x) {
            Rows copy = s.kept[kept++];
            System.arraycopy(x.a(), 0, copy.a(), 0, rows * x.width());
            return copy;
        }

        @Override
        public Rows lambdaMix(int i, Rows x, Rows x0) {
            float rl = residLambdas.floats()[residLambdas.offset() + i], xl = x0Lambdas.floats()[x0Lambdas.offset() + i];
            Elementwise.axpbyRange(rl, x.a(), 0, xl, x0.a(), 0, s.x.a(), 0, rows * c);
            return s.x;
        }

        @Override
        public Rows norm(Rows x) {
            for (int r = 0; r < rows; r++) RmsNorm.row(x.a(), r * c, s.hn.a(), r * c, c, 1f, Backend.RMS_EPS);
            return s.hn;
        }

        @Override
        public Forward.Qkv<Rows> qkv(int i, Rows hn) {
            Forward.Qkv<Rows> o = s.qkv;
            gemv(rows, Epilogue.STORE, new Product(cq[i], h * d, hn.a(), o.q().a()), new Product(ck[i], kv * d, hn.a(), o.k().a()),
                    new Product(cv[i], kv * d, hn.a(), o.v().a()));
            qkNorm(rope(o.q()));
            qkNorm(rope(o.k()));
            return o;
        }

        @Override
        public Rows valueEmbedMix(int i, Rows v, Rows hn) {
            float[] wg = veGate[i].floats(), ve = valueEmbed[i].floats();
            for (int r = 0; r < rows; r++) {
                for (int kh = 0; kh < kv; kh++) {
                    int go = veGate[i].offset() + kh * GPTConfig.VE_GATE_CHANNELS;
                    float gate = 3f * VecMath.sigmoid(Reduce.dot(wg, go, hn.a(), r * c, GPTConfig.VE_GATE_CHANNELS));
                    int vo = valueEmbed[i].offset() + (s.tokens[r] * kv + kh) * d;
                    Elementwise.axpyRange(gate, ve, vo, v.a(), (r * kv + kh) * d, d);
                }
            }
            return v;
        }

        /** RoPE at position p + τ on every head of row r = bb·t + τ (halves layout, rotation by −θ), in place. */
        private Rows rope(Rows heads) {
            int half = d / 2;
            for (int r = 0; r < rows; r++) {
                int co = cos.offset() + (p + r % t) * half, so = sin.offset() + (p + r % t) * half;
                for (int o = r * heads.width(); o < (r + 1) * heads.width(); o += d) {
                    Rotary.head(heads.a(), o, heads.a(), o, cos.floats(), co, sin.floats(), so, half, 1f);
                }
            }
            return heads;
        }

        private Rows qkNorm(Rows heads) {
            for (int o = 0; o < rows * heads.width(); o += d) RmsNorm.row(heads.a(), o, heads.a(), o, d, GPT.QK_SCALE, Backend.RMS_EPS);
            return heads;
        }

        /** Row r = bb·t + τ of k and v to cache row bb, position p + τ (the cache is (B, maxLen, KV, D): one copy each). */
        @Override
        public void cacheWrite(int i, Rows k, Rows v) {
            Tensor keys = cache.keys(i), values = cache.values(i);
            int kvd = kv * d;
            for (int r = 0; r < rows; r++) {
                int co = ((r / t) * cache.maxLen() + p + r % t) * kvd;
                System.arraycopy(k.a(), r * kvd, keys.floats(), keys.offset() + co, kvd);
                System.arraycopy(v.a(), r * kvd, values.floats(), values.offset() + co, kvd);
            }
        }

        /** One task per cache row and kv head; the keys and values come from the cache (k, v were written there). */
        @Override
        public Rows attention(int i, Rows q, Rows k, Rows v) {
            Team.run(b * kv, (task, unused) -> attend(i, q.a(), task / kv, task % kv));
            return s.y;
        }

        /**
         * Cache row bb, kv head kh of layer i: each query head of kh at each position i = p+τ (rows r = bb·t + τ of q,
         * already rotated and normed) over the cached keys j it sees (i − window ≤ j ≤ i):
         * y = Σ_j softmax_j(q·k_j/√D)·v_j.
         */
        private void attend(int i, float[] q, int bb, int kh) {
            Tensor keys = cache.keys(i), values = cache.values(i);
            float[] kc = keys.floats(), vc = values.floats(), y = s.y.a();
            int maxLen = cache.maxLen(), stride = kv * d;
            int window = cfg.windowSize(i);
            float scale = (float) (1.0 / Math.sqrt(d));
            for (int tau = 0; tau < t; tau++) {
                int r = bb * t + tau, pi = p + tau;
                int lo = window < 0 ? 0 : Math.max(0, pi - window), n = pi - lo + 1;
                int base0 = ((bb * maxLen + lo) * kv + kh) * d;
                for (int hh = 0; hh < g; hh++) {
                    int qo = (r * h + kh * g + hh) * d, so = (bb * h + kh * g + hh) * maxLen;
                    Attention.decodeRow(q, qo, kc, keys.offset() + base0, vc, values.offset() + base0, stride, n, d, scale,
                            s.scores, so, y, qo);
                }
            }
        }

        @Override
        public Rows attnResidual(int i, Rows x, Rows y) { return addProduct(cProj[i], y, x); }

        @Override
        public Rows mlp(int i, Rows x) {
            Rows hn = norm(x);
            gemv(rows, Epilogue.RELU2, new Product(cFc[i], 4 * c, hn.a(), s.u.a()));   // u = relu²(W_fc·hn)
            return addProduct(mlpProj[i], s.u, x);
        }

        /** x += W·in in place (the GEMV's β = 1), W (C, in's width). */
        private Rows addProduct(Tensor w, Rows in, Rows x) {
            gemv(rows, Epilogue.ADD, new Product(w, c, in.a(), x.a()));
            return x;
        }

        @Override
        public Rows backout(Rows x, Rows xMid) {
            float lam = backoutLambda.floats()[backoutLambda.offset()];
            Elementwise.axpbyRange(1f, x.a(), 0, -lam, xMid.a(), 0, x.a(), 0, rows * c);
            return x;
        }

        @Override
        public Rows logits(Rows x) {
            float[] logits = new float[rows * vocab];
            gemv(rows, Epilogue.SOFTCAP, new Product(lmHead, vocab, x.a(), logits));
            return new Rows(logits, vocab);
        }

        @Override
        public void trace(int layer, String name, Rows x) {}   // the decoder records nothing: traces come from GPT's executor
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
}
