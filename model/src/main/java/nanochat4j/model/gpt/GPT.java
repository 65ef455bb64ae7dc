package nanochat4j.model.gpt;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.function.Consumer;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Ops;
import nanochat4j.autograd.Parameter;
import nanochat4j.autograd.Var;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;

/**
 * nanochat's GPT (gpt.py, master 92d63d4), read top to bottom:
 * <ul>
 *   <li>token embedding + rms_norm (no learnable weights anywhere in the norms), then the smear gate: each position
 *       mixes in the previous position's pre-smear embedding with gate λ·σ(w·x_t[0:24]);</li>
 *   <li>per layer x = resid_λ[i]·x + x0_λ[i]·x0, then a pre-norm block: attention (q,k,v projections; value
 *       embeddings on alternating layers gated by 3·σ(ve_gate(x̂[..., :12])); RoPE, then QK-norm ×1.2; GQA; causal
 *       sliding window per layer, last layer full) and a ReLU² MLP;</li>
 *   <li>backout: the output of block n//2 scaled by backout_λ is subtracted before the final norm;</li>
 *   <li>untied lm_head over the vocab padded to 64, cropped back, softcap 15, cross-entropy with ignore −1.</li>
 * </ul>
 * Training goes through autograd {@link Var}s; the loss uses the backend's chunked lm_head+softcap+CE, so the
 * (B·T)×vocab logits never exist whole. The dataflow is written once, in {@link Forward}: this class runs it on
 * autograd ops and the model's backend (training, logits, KV-cache inference on either device), and on the CPU decode
 * steps and short chunks run the same steps through the {@link Decoder}'s fused in-place executor.
 */
public final class GPT {
    public static final float SOFTCAP = 15f;
    public static final float QK_SCALE = 1.2f;
    public static final double ROPE_BASE = 100000;


    private final GPTConfig config;
    /** The backend of the device every parameter, gradient and activation of this model lives on. */
    private final Backend be;
    private final Map<String, Parameter> params = new LinkedHashMap<>();
    private final Parameter wte, lmHead, residLambdas, x0Lambdas, smearGate, smearLambda, backoutLambda;
    private final Layer[] layers;
    private final Tensor cos, sin;
    private Decoder decoder;   // made by the first decode step (fp32), or by decodeWeights(BF16)
    private volatile boolean shelveActivations = true;
    private volatile boolean recordDecodeSteps = true;

    /** One block's parameters; {@code veGate} and {@code valueEmbed} are null on layers without a value embedding. */
    private record Layer(Parameter cQ, Parameter cK, Parameter cV, Parameter cProj, Parameter veGate, Parameter cFc,
                         Parameter mlpProj, Parameter valueEmbed) {}

    /** A model with every parameter zero, on the CPU; call {@link #initWeights} or load a checkpoint. */
    public GPT(GPTConfig config) {
        this(config, Device.CPU);
    }

    /**
     * A model with every parameter zero on {@code device} (parameters, their gradients and the rotary tables are
     * allocated there; throws the CUDA backend's one-line reason where that device is unavailable).
     */
    public GPT(GPTConfig config, Device device) {
        this.config = config;
        this.be = Backend.forDevice(device);
        config.parameterShapes().forEach((name, shape) -> params.put(name, new Parameter(name, be.zeros(shape))));
        wte = params.get("transformer.wte.weight");
        lmHead = params.get("lm_head.weight");
        residLambdas = params.get("resid_lambdas");
        x0Lambdas = params.get("x0_lambdas");
        smearGate = params.get("smear_gate.weight");
        smearLambda = params.get("smear_lambda");
        backoutLambda = params.get("backout_lambda");
        layers = new Layer[config.nLayer()];
        for (int i = 0; i < layers.length; i++) {
            String p = "transformer.h." + i + ".";
            layers[i] = new Layer(params.get(p + "attn.c_q.weight"), params.get(p + "attn.c_k.weight"),
                    params.get(p + "attn.c_v.weight"), params.get(p + "attn.c_proj.weight"), params.get(p + "attn.ve_gate.weight"),
                    params.get(p + "mlp.c_fc.weight"), params.get(p + "mlp.c_proj.weight"), params.get("value_embeds." + i + ".weight"));
        }
        Backend.RotaryTables rt = be.rotaryTables(10 * config.sequenceLen(), config.headDim(), ROPE_BASE);
        cos = rt.cos();
        sin = rt.sin();
    }

    /** A model initialised like nanochat's {@code init_weights()} from {@code seed}. */
    public static GPT create(GPTConfig config, long seed) {
        return create(config, seed, Device.CPU);
    }

    /** {@link #create(GPTConfig, long)} on {@code device}: the same values on either device (drawn on the host). */
    public static GPT create(GPTConfig config, long seed, Device device) {
        GPT g = new GPT(config, device);
        g.initWeights(seed);
        return g;
    }

    public GPTConfig config() { return config; }

    /** The device the parameters live on. */
    public Device device() { return be.device(); }

    /** The backend this model computes with ({@link #device()}'s). */
    public Backend backend() { return be; }

    /** A copy of this model's parameters on {@code device} (checkpoints and models move between devices this way). */
    public GPT to(Device device) {
        GPT g = new GPT(config, device);
        g.loadStateDict(stateDict());
        return g;
    }

    /** Every parameter in nanochat's state-dict order. */
    public List<Parameter> parameters() { return List.copyOf(params.values()); }

    public Parameter parameter(String name) {
        Parameter p = params.get(name);
        if (p == null) throw new IllegalArgumentException("GPT has no parameter named " + name);
        return p;
    }

    public void zeroGrad() {
        for (Parameter p : params.values()) p.zeroGrad();
    }

    // ------------------------------------------------------------------ init

    /**
     * nanochat's init_weights (the code, not its docstring): wte ~ N(0, 0.8), lm_head ~ N(0, 0.001); with
     * s = √3/√C: c_q, c_k, c_v ~ U(−s, s), c_fc ~ U(−0.4s, 0.4s), both c_proj = 0; resid_λ[i] = 1.15 − 0.10·i/(n−1),
     * x0_λ[i] = 0.20 − 0.15·i/(n−1); smear_λ = 0, backout_λ = 0.2; smear_gate ~ U(0, 0.02); value_embeds ~ U(−s, s);
     * ve_gate ~ U(0, 0.02). Draws in nanochat's order from one seeded generator (not torch's stream).
     */
    public void initWeights(long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        int n = config.nLayer();
        float s = (float) (Math.sqrt(3) * Math.pow(config.nEmbd(), -0.5));
        normal(wte, rnd, 0.8);
        normal(lmHead, rnd, 0.001);
        for (Layer l : layers) {
            uniform(l.cQ, rnd, -s, s);
            uniform(l.cK, rnd, -s, s);
            uniform(l.cV, rnd, -s, s);
            be.zero(l.cProj.tensor());
            uniform(l.cFc, rnd, -s * 0.4f, s * 0.4f);
            be.zero(l.mlpProj.tensor());
        }
        float[] resid = new float[n], x0 = new float[n];
        for (int i = 0; i < n; i++) {
            resid[i] = (float) (1.15 - 0.10 * i / Math.max(n - 1, 1));
            x0[i] = (float) (0.20 - 0.15 * i / Math.max(n - 1, 1));
        }
        residLambdas.tensor().copyFrom(Tensor.of(resid, n));
        x0Lambdas.tensor().copyFrom(Tensor.of(x0, n));
        be.zero(smearLambda.tensor());
        backoutLambda.tensor().copyFrom(Tensor.full(0.2f, backoutLambda.shape()));
        uniform(smearGate, rnd, 0f, 0.02f);
        for (Layer l : layers) if (l.valueEmbed != null) uniform(l.valueEmbed, rnd, -s, s);
        for (Layer l : layers) if (l.veGate != null) uniform(l.veGate, rnd, 0f, 0.02f);
    }

    private static void normal(Parameter p, SplittableRandom rnd, double std) {
        Tensor host = hostView(p);
        float[] a = host.floats();
        int o = host.offset();
        for (int i = 0; i < p.numel(); i++) a[o + i] = (float) (rnd.nextGaussian() * std);
        if (host != p.tensor()) p.tensor().copyFrom(host);
    }

    private static void uniform(Parameter p, SplittableRandom rnd, float lo, float hi) {
        Tensor host = hostView(p);
        float[] a = host.floats();
        int o = host.offset();
        for (int i = 0; i < p.numel(); i++) a[o + i] = lo + (hi - lo) * (float) rnd.nextDouble();
        if (host != p.tensor()) p.tensor().copyFrom(host);
    }

    /** The parameter's own storage on the CPU (drawn in place), else a host buffer that is copied up after drawing. */
    private static Tensor hostView(Parameter p) {
        return p.tensor().isOnDevice() ? Tensor.zeros(p.shape()) : p.tensor();
    }

    // ------------------------------------------------------------------ state dict

    /** Copies of every parameter's values (row-major) by state-dict name. */
    public Map<String, float[]> stateDict() {
        Map<String, float[]> m = new LinkedHashMap<>();
        params.forEach((k, p) -> m.put(k, p.tensor().toFloatArray()));
        return m;
    }

    /** Loads values by name; every parameter must be present with its element count, and nothing else. */
    public void loadStateDict(Map<String, float[]> state) {
        for (String k : state.keySet()) {
            if (!params.containsKey(k)) throw new IllegalArgumentException("loadStateDict: unexpected tensor " + k + " for " + config);
        }
        params.forEach((k, p) -> {
            float[] v = state.get(k);
            if (v == null) throw new IllegalArgumentException("loadStateDict: missing tensor " + k);
            if (v.length != p.numel()) {
                throw new IllegalArgumentException("loadStateDict: tensor " + k + " has " + v.length + " values, shape "
                        + Arrays.toString(p.shape()) + " needs " + p.numel());
            }
            p.tensor().copyFrom(Tensor.of(v, p.shape()));
        });
    }

    // ------------------------------------------------------------------ optimizer groups

    /** One optimizer group as nanochat's {@code setup_optimizer} forms it; {@code lr} is the initial lr. */
    public record ParamGroup(String name, Kind kind, List<Parameter> params, double lr, double beta1, double beta2,
                             double eps, double weightDecay, double momentum, int nsSteps) {
        public enum Kind { ADAMW, MUON }
    }

    /**
     * nanochat's groups: AdamW for lm_head (unembedding_lr·s, β (0.8,0.96), wd 0.01), wte (embedding_lr·s,
     * (0.8,0.995), wd 0.001), value_embeds (embedding_lr·s·0.5, (0.8,0.995), wd 0.01), resid_lambdas (scalar_lr·0.01,
     * (0.8,0.95), wd 0.05), x0_lambdas (scalar_lr, (0.96,0.95), wd 0), smear gate/λ + backout λ (0.2, (0.8,0.95),
     * wd 0), all eps 1e-10, s = (C/768)^−0.5; then one Muon group per distinct block-matrix shape, shapes sorted
     * (lr matrix_lr, momentum 0.95, β2 0.9, 5 Newton–Schulz steps, wd weight_decay).
     */
    public List<ParamGroup> paramGroups(double unembeddingLr, double embeddingLr, double matrixLr, double weightDecay,
                                        double scalarLr) {
        double scale = Math.pow(config.nEmbd() / 768.0, -0.5);
        List<ParamGroup> g = new ArrayList<>();
        g.add(adamw("lm_head", List.of(lmHead), unembeddingLr * scale, 0.8, 0.96, 0.01));
        g.add(adamw("wte", List.of(wte), embeddingLr * scale, 0.8, 0.995, 0.001));
        List<Parameter> ve = new ArrayList<>();
        for (Layer l : layers) if (l.valueEmbed != null) ve.add(l.valueEmbed);
        g.add(adamw("value_embeds", ve, embeddingLr * scale * 0.5, 0.8, 0.995, 0.01));
        g.add(adamw("resid_lambdas", List.of(residLambdas), scalarLr * 0.01, 0.8, 0.95, 0.05));
        g.add(adamw("x0_lambdas", List.of(x0Lambdas), scalarLr, 0.96, 0.95, 0.0));
        g.add(adamw("scalars", List.of(smearGate, smearLambda, backoutLambda), 0.2, 0.8, 0.95, 0.0));
        TreeMap<List<Integer>, List<Parameter>> byShape = new TreeMap<>((a, b) -> {
            for (int i = 0; i < Math.min(a.size(), b.size()); i++) {
                int c = Integer.compare(a.get(i), b.get(i));
                if (c != 0) return c;
            }
            return Integer.compare(a.size(), b.size());
        });
        for (Parameter p : params.values()) {
            if (!p.name().startsWith("transformer.h.")) continue;
            List<Integer> key = Arrays.stream(p.shape()).boxed().toList();
            byShape.computeIfAbsent(key, k -> new ArrayList<>()).add(p);
        }
        byShape.forEach((shape, ps) -> g.add(new ParamGroup("muon_" + shape.get(0) + "x" + shape.get(1), ParamGroup.Kind.MUON,
                List.copyOf(ps), matrixLr, Double.NaN, 0.9, Double.NaN, weightDecay, 0.95, 5)));
        return g;
    }

    /** nanochat's setup_optimizer defaults (unembedding 0.004, embedding 0.2, matrix 0.02, wd 0, scalar 0.5). */
    public List<ParamGroup> paramGroups() {
        return paramGroups(0.004, 0.2, 0.02, 0.0, 0.5);
    }

    private static ParamGroup adamw(String name, List<Parameter> ps, double lr, double b1, double b2, double wd) {
        return new ParamGroup(name, ParamGroup.Kind.ADAMW, ps, lr, b1, b2, 1e-10, wd, Double.NaN, 0);
    }

    // ------------------------------------------------------------------ forward

    /**
     * Mean (or sum / per-position) cross-entropy of the soft-capped logits against {@code targets} (B,T), −1 =
     * ignored. Returns a 0-d var for MEAN/SUM, a (B,T) var for NONE (0 at ignored positions). With grad mode on,
     * {@code loss.backward()} fills every parameter's gradient.
     */
    public Var loss(Tensor idx, Tensor targets, Reduction reduction) {
        return loss(idx, targets, reduction, null);
    }

    /** {@link #loss} that also records named activations into {@code trace} (fixture parity, debugging). */
    public Var loss(Tensor idx, Tensor targets, Reduction reduction, Map<String, Tensor> trace) {
        checkBatch(idx, targets);
        int b = idx.shape(0), t = idx.shape(1);
        idx = be.upload(idx);   // the token batch goes up (a no-op on the CPU)
        targets = be.upload(targets);
        Var x = hidden(idx, trace);
        Var loss = Ops.linearSoftcapCrossEntropy(Ops.reshape(x, b * t, config.nEmbd()), lmHead.var(),
                targets.reshape(b * t), config.vocabSize(), SOFTCAP, reduction);
        return reduction == Reduction.NONE ? Ops.reshape(loss, b, t) : loss;
    }

    /** Soft-capped logits (B,T,vocab) without recording a tape (evaluation, sampling); in host memory on any device. */
    public Tensor logits(Tensor idx) {
        checkBatch(idx, null);
        return logitsAt(idx, 0, idx.shape(1));
    }

    /**
     * Soft-capped logits (B, to−from, vocab) of positions [from, to) only, without a tape. Scoring a short
     * continuation (CORE) needs a few positions, and at vocab 32768 the lm_head is most of a small model's forward.
     */
    public Tensor logits(Tensor idx, int from, int to) {
        checkBatch(idx, null);
        if (from < 0 || to > idx.shape(1) || from >= to) {
            throw new IllegalArgumentException("GPT.logits: positions [" + from + ", " + to + ") outside a sequence of " + idx.shape(1));
        }
        return logitsAt(idx, from, to);
    }

    private Tensor logitsAt(Tensor idx, int from, int to) {
        try (var g = Autograd.noGrad()) {
            Var x = hidden(be.upload(idx), null);
            // evaluation reads the logits on the host: they come down here, once
            return head(from == 0 && to == idx.shape(1) ? x : Ops.narrow(x, 1, from, to - from)).value().toCpu();
        }
    }

    /**
     * Inference forward with a KV cache (prefill when T > 1, decode when T == 1): soft-capped logits (B,T,vocab) of
     * the new positions, in host memory; advances the cache. Smear as nanochat's KV mode: a chunk smears within itself
     * and stores its last pre-smear embedding; a single token mixes in the stored one. On the CPU, decode steps and
     * short chunks (B·T ≤ {@link Decoder#MAX_ROWS}) run {@link Forward} through the {@link Decoder} (fused loops over
     * the cache's buffers, with the {@link #decodeWeights()} chosen); everything else runs it on autograd ops on the
     * model's device (no tape), the cache staying there; on a GPU a cache's decode steps are replayed from one
     * recording of them ({@link #recordDecodeSteps}).
     */
    public Tensor forwardCached(Tensor idx, KVCache cache) {
        return cached(idx, cache, false);
    }

    /**
     * {@link #forwardCached} returning only each row's last position's logits (B, vocab): all a prefill samples from.
     * The lm_head then runs on one position instead of the prompt's T (at T = 2048 and vocab 65536 the whole (T, vocab)
     * block is 512 MB, computed and, from a GPU, copied down for one row).
     */
    public Tensor forwardCachedLast(Tensor idx, KVCache cache) {
        return cached(idx, cache, true);
    }

    private Tensor cached(Tensor idx, KVCache cache, boolean lastOnly) {
        cache.checkOpen("forwardCached");
        checkBatch(idx, null);
        int b = idx.shape(0), t = idx.shape(1);
        if (b != cache.batch()) throw new IllegalArgumentException("forwardCached: " + b + " rows of tokens for a cache of batch " + cache.batch());
        if (cache.pos() + t > cache.maxLen()) {
            throw new IllegalArgumentException("forwardCached: " + t + " tokens at position " + cache.pos() + " overflow the cache of " + cache.maxLen());
        }
        if (cache.pos() + t > cos.shape(0)) {
            throw new IllegalArgumentException("forwardCached: position " + (cache.pos() + t - 1) + " is past the rotary table (" + cos.shape(0) + ")");
        }
        if (cache.backend().device() != be.device()) {
            throw new IllegalArgumentException("forwardCached: a KV cache on " + cache.backend().device() + " for a model on " + be.device());
        }
        int vocab = config.vocabSize();
        Tensor logits;
        if (be.device() == Device.CPU && (t == 1 || idx.numel() <= Decoder.MAX_ROWS)) {
            float[] all = decoder().step(idx, cache); // a short chunk: its few extra rows cost next to nothing
            if (!lastOnly) {
                logits = Tensor.of(all, b, t, vocab);
            } else {
                float[] last = new float[b * vocab];
                for (int r = 0; r < b; r++) System.arraycopy(all, (r * t + t - 1) * vocab, last, r * vocab, vocab);
                logits = Tensor.of(last, b, vocab);
            }
        } else if (t == 1 && (logits = recordedStep(idx, cache)) != null) {
            if (lastOnly) logits = logits.reshape(b, vocab);
        } else {
            try (var g = Autograd.noGrad()) {
                Var x = Forward.hidden(config, new Graph(be.upload(idx), cache, null));
                if (lastOnly) x = Ops.narrow(x, 1, t - 1, 1);
                logits = head(x).value().toCpu();
                if (lastOnly) logits = logits.reshape(b, vocab);
            }
        }
        cache.advance(t);
        return logits;
    }

    /**
     * A decode step on a GPU through the cache's {@link RecordedDecode} (its kernels queued by one call), or null to
     * run it as issued: on the CPU, with recording off, before the cache holds a previous embedding (the step's smear
     * differs), for the first step of a cache (it compiles kernels, makes the weights' bf16 copies and settles GEMM
     * choices, none of which a recording may do), and the step after a recording went stale (a weight was written)
     * or could not be made (the reason printed once).
     */
    private Tensor recordedStep(Tensor idx, KVCache cache) {
        if (!recordDecodeSteps || cache.recordOff || !cache.hasPrev() || cache.backend().device() == Device.CPU) return null;
        if (cache.recorded == null) {
            if (!cache.warm) {
                cache.warm = true;
                return null;
            }
            try {
                cache.recorded = recordDecode(idx, cache);
            } catch (RuntimeException e) {
                cache.recordOff = true;
                System.err.println("nanochat4j: decode steps run kernel by kernel (recording one failed: " + e.getMessage() + ")");
                return null;
            }
            if (cache.recorded == null) {
                cache.recordOff = true;   // this backend records nothing
                return null;
            }
        }
        Tensor logits = cache.recorded.step(idx, cache.pos());
        if (logits == null) {         // stale: this step as issued, the next one recorded anew
            cache.recorded.close();
            cache.recorded = null;
        }
        return logits;
    }

    /**
     * Records one decode step of {@code cache} (B rows, one token each) with its inputs in device memory: the ids,
     * copied up before each replay, and the position, which the step itself moves on. Null where the backend records
     * nothing.
     */
    private RecordedDecode recordDecode(Tensor idx, KVCache cache) {
        Tensor ids = be.upload(idx);   // the ids' range is noted on the way up: the embeddings need no device check
        Tensor pos = be.upload(Tensor.ofInts(new int[] {cache.pos()}, 1));
        Tensor[] logits = new Tensor[1];
        Backend.Recording r = be.record(() -> {
            try (var g = Autograd.noGrad()) {
                Var x = Forward.hidden(config, new Graph(ids, cache, null, pos));
                logits[0] = head(x).value();
                be.addToInt(pos, 1);
            }
        });
        return r == null ? null : new RecordedDecode(ids, pos, logits[0], r, cache.pos());
    }

    /**
     * Whether decode steps on a GPU are recorded once per KV cache and replayed (a CUDA graph: the step's kernels
     * queued by one call instead of a launch each); on by default, off to measure the difference or to rule it out.
     */
    public void recordDecodeSteps(boolean on) {
        recordDecodeSteps = on;
    }

    /** The final-normed hidden state (B,T,C) of {@link Forward}'s dataflow on autograd ops, attending within the call. */
    private Var hidden(Tensor idx, Map<String, Tensor> trace) {
        Graph g = new Graph(idx, null, trace);
        Var x = Forward.hidden(config, g);
        // the blocks' tail (x0, the backout's x_mid and output) is read by no forward step but the head's, which reads x
        if (shelveActivations && trace == null) Autograd.shelve(g.tapeStart, x);
        return x;
    }

    /** lm_head on the final-normed x (B,T,C) → cropped, soft-capped logits (B,T,vocab). */
    private Var head(Var x) {
        Var logits = Ops.linear(x, lmHead.var());
        if (config.paddedVocab() != config.vocabSize()) logits = Ops.narrow(logits, 2, 0, config.vocabSize());
        return Ops.softcap(logits, SOFTCAP);
    }

    /**
     * {@link Forward}'s steps as autograd ops on this model's backend (recorded on the tape when grad mode is on): one
     * call's tokens (B,T) on the device and, for cached inference, the cache whose position {@code pos} they start at.
     */
    private final class Graph implements Forward.Exec<Var> {
        private final Tensor idx;
        private final KVCache cache;   // null: attention over the call's own tokens (training, logits)
        private final Map<String, Tensor> trace;
        private final int b, t, pos;
        /** A recorded decode step's position: an int32 on the device that RoPE + QK-norm, the cache write and attention read when they run (else null). */
        private final Tensor posAt;
        /** The tape's size when this forward began: what it records from there on is its own to shelve. */
        private final int tapeStart = Autograd.recorded();
        /** What the forward reads after the block it was made in: x0 and the backout's x_mid (see {@link #keep}). */
        private final List<Var> kept = new ArrayList<>();

        Graph(Tensor idx, KVCache cache, Map<String, Tensor> trace) {
            this(idx, cache, trace, null);
        }

        Graph(Tensor idx, KVCache cache, Map<String, Tensor> trace, Tensor posAt) {
            this.idx = idx;
            this.cache = cache;
            this.trace = trace;
            this.posAt = posAt;
            b = idx.shape(0);
            t = idx.shape(1);
            pos = cache == null ? 0 : cache.pos();
        }

        @Override
        public Var embed() { return Ops.rmsNorm(Ops.embedding(wte.var(), idx), 1f); }

        /**
         * Over a chunk (T ≥ 2) position t mixes in position t−1; a single token mixes in the cache's previous
         * embedding when there is one (and nothing without a cache: it has no predecessor). A cache keeps the chunk's
         * last pre-smear embedding for the next single token.
         */
        @Override
        public Var smear(Var e) {
            Var x = e;
            if (t > 1) {
                x = Ops.smear(e, smearGate.var(), smearLambda.var(), GPTConfig.SMEAR_CHANNELS);
            } else if (cache != null && cache.hasPrev()) {
                Tensor ev = e.value();
                Tensor gate = be.mul(smearLambda.tensor(), be.sigmoid(be.linear(be.narrow(ev, 2, 0, GPTConfig.SMEAR_CHANNELS), smearGate.tensor())));
                x = Var.constant(be.add(ev, be.mul(gate, cache.prev())));   // (B,1,C) + (B,1,1)·(B,1,C)
            }
            if (cache != null) cache.setPrev(t == 1 ? e.value() : be.narrow(e.value(), 1, t - 1, 1));
            return x;
        }

        @Override
        public Var keep(Var x) {   // Vars are never updated in place; a kept one is read after its block
            kept.add(x);
            return x;
        }

        @Override
        public Var lambdaMix(int i, Var x, Var x0) { return Ops.lambdaMix(residLambdas.var(), i, x, x0Lambdas.var(), i, x0); }

        @Override
        public Var norm(Var x) { return Ops.rmsNormOut(x, 1f); }   // keeps its output, not the residual stream x

        @Override
        public Forward.Qkv<Var> qkv(int i, Var hn) {
            Layer l = layers[i];
            int h = config.nHead(), kv = config.nKvHead(), d = config.headDim();
            if (posAt != null) {   // inference only: linearRotaryNorm's forward with the position on the device
                Tensor x = hn.value();
                return new Forward.Qkv<>(Var.constant(be.rotaryRmsNormAt(be.linear(x, l.cQ.tensor()).reshape(b, t, h, d), cos, sin, posAt, QK_SCALE)),
                        Var.constant(be.rotaryRmsNormAt(be.linear(x, l.cK.tensor()).reshape(b, t, kv, d), cos, sin, posAt, QK_SCALE)),
                        Var.constant(be.linear(x, l.cV.tensor()).reshape(b, t, kv, d)));
            }
            return new Forward.Qkv<>(Ops.linearRotaryNorm(hn, l.cQ.var(), h, cos, sin, pos, QK_SCALE),
                    Ops.linearRotaryNorm(hn, l.cK.var(), kv, cos, sin, pos, QK_SCALE), Ops.reshape(Ops.linear(hn, l.cV.var()), b, t, kv, d));
        }

        @Override
        public Var valueEmbedMix(int i, Var v, Var hn) {
            return Ops.valueEmbedMix(v, hn, layers[i].veGate.var(), layers[i].valueEmbed.var(), idx, GPTConfig.VE_GATE_CHANNELS);
        }

        @Override
        public void cacheWrite(int i, Var k, Var v) {
            if (cache == null) return;
            if (Autograd.isRecording()) throw new IllegalStateException("a forward with a KV cache is inference-only: wrap it in Autograd.noGrad()");
            if (posAt != null) {
                be.narrowAssignAt(cache.keys(i), 1, posAt, k.value());
                be.narrowAssignAt(cache.values(i), 1, posAt, v.value());
                return;
            }
            be.narrowAssign(cache.keys(i), 1, pos, k.value());
            be.narrowAssign(cache.values(i), 1, pos, v.value());
        }

        @Override
        public Var attention(int i, Var q, Var k, Var v) {
            float scale = (float) (1.0 / Math.sqrt(config.headDim()));
            if (cache == null) return Ops.attention(q, k, v, config.windowSize(i), scale);
            if (posAt != null) return Var.constant(be.attentionCachedAt(q.value(), cache.keys(i), cache.values(i), posAt, config.windowSize(i), scale));
            return Var.constant(be.attentionCached(q.value(), cache.keys(i), cache.values(i), pos, config.windowSize(i), scale));
        }

        @Override
        public Var attnResidual(int i, Var x, Var y) {
            return Ops.linearResidual(x, Ops.reshape(y, b, t, config.nEmbd()), layers[i].cProj.var(), tracer(i, "attn_out"));
        }

        @Override
        public Var mlp(int i, Var x) {
            Layer l = layers[i];
            Var out = Ops.mlpResidual(x, l.cFc.var(), l.mlpProj.var(), tracer(i, "mlp_out"));
            // the block's last step: the forward reads nothing it made again but its output (and what keep kept), so the
            // rest is shelved as its backward reads it (bf16 on a GPU under bf16 matmuls: half the activations' memory)
            if (shelveActivations && trace == null && cache == null) {
                Var[] stillRead = kept.toArray(new Var[kept.size() + 1]);
                stillRead[kept.size()] = out;
                Autograd.shelve(tapeStart, stillRead);
            }
            return out;
        }

        /** Where a fused op hands an intermediate for the trace, or null (then the op gives it back at once). */
        private Consumer<Tensor> tracer(int layer, String name) {
            return trace == null ? null : p -> trace(layer, name, Var.constant(p));
        }

        @Override
        public Var backout(Var x, Var xMid) { return Ops.backout(x, backoutLambda.var(), xMid); }

        @Override
        public Var logits(Var x) { return head(x); }

        @Override
        public void trace(int layer, String name, Var x) {
            if (trace != null) trace.put(layer < 0 ? name : "block" + layer + "." + name, x.value());
        }
    }

    /**
     * Whether a training forward shelves each block's activations once the block has run ({@link Autograd#shelve}: on a
     * GPU under bf16 matmuls its backward then reads bf16 copies, nanochat's precision, and the step holds ~40% less
     * activation memory, for a conversion per activation each way; on any backend the values no backward reads go back
     * at once, which changes no number). On by default.
     */
    public void shelveActivations(boolean on) {
        shelveActivations = on;
    }

    /**
     * Which weights the decode steps of {@link #forwardCached} stream: {@link DecodeWeights#FP32} (the default) reads
     * the parameters; {@link DecodeWeights#BF16} makes a bf16 copy of every streamed matrix now (+50% of their memory;
     * a snapshot — call again after the weights change) and decodes with it. The fp32 parameters stay: training and
     * the autograd executor of long prompt chunks use them. BF16 is a CPU option (the fused decoder's).
     */
    public void decodeWeights(DecodeWeights w) {
        if (w != DecodeWeights.FP32 && be.device() != Device.CPU) {
            throw new IllegalArgumentException("decode weights " + w + " are the CPU decoder's; on " + be.device() + " the model decodes with its fp32 parameters");
        }
        decoder = w == DecodeWeights.FP32 ? null : new Decoder(this, cos, sin, w);
    }

    public DecodeWeights decodeWeights() {
        return decoder == null ? DecodeWeights.FP32 : decoder.weights();
    }

    /** Weight bytes one decode step reads per sample row's token at the current {@link #decodeWeights()} (KV cache not counted). */
    public long decodeWeightBytes() {
        return config.decodeWeightBytes(decodeWeights() == DecodeWeights.BF16 ? 2 : Float.BYTES);
    }

    private Decoder decoder() {
        if (decoder == null) decoder = new Decoder(this, cos, sin, DecodeWeights.FP32);
        return decoder;
    }

    /** Ids must be I32 (B,T) in [0, vocab); targets (B,T) in [−1, vocab); T within the rotary table. Checked before any kernel. */
    private void checkBatch(Tensor idx, Tensor targets) {
        if (idx.dtype() != DType.I32 || idx.rank() != 2) throw new IllegalArgumentException("GPT: idx must be an I32 (B,T) tensor, got " + idx);
        idx = idx.toCpu();   // checked on the host (a batch already on a device is read back: callers pass host batches)
        if (targets != null) targets = targets.toCpu();
        if (idx.shape(1) > cos.shape(0)) {
            throw new IllegalArgumentException("GPT: sequence of " + idx.shape(1) + " tokens exceeds the rotary table (" + cos.shape(0) + ")");
        }
        int[] a = idx.ints();
        int o = idx.offset(), n = idx.numel(), v = config.vocabSize(), t = idx.shape(1);
        for (int i = 0; i < n; i++) {
            int id = a[o + i];
            if (id < 0 || id >= v) {
                throw new IllegalArgumentException("GPT: token id " + id + " at (" + i / t + ", " + i % t + ") is outside [0, " + v + ")");
            }
        }
        if (targets == null) return;
        if (targets.dtype() != DType.I32 || !targets.sameShape(idx)) {
            throw new IllegalArgumentException("GPT: targets must be I32 with the shape of idx " + Arrays.toString(idx.shape()) + ", got " + targets);
        }
        int[] tg = targets.ints();
        int to = targets.offset();
        for (int i = 0; i < n; i++) {
            int id = tg[to + i];
            if (id < -1 || id >= v) {
                throw new IllegalArgumentException("GPT: target " + id + " at (" + i / t + ", " + i % t + ") is outside [-1, " + v + ")");
            }
        }
    }
}
