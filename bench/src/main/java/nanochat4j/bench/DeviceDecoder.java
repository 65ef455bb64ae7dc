package nanochat4j.bench;

import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Backend;

import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;

/**
 * KV-cache inference of a {@link GPT} written only against {@link Backend}: with the CPU backend it computes what
 * {@link GPT#forwardCached} computes; with the CUDA backend the weights (fp32 copies made once), the KV cache and
 * every activation stay on the GPU, and per step only the token ids go up and the chosen ids come down. The math is
 * nanochat's KV mode as the model implements it: rms_norm(wte[tok]); smear within a chunk, and for a single token
 * with the previous chunk's last pre-smear embedding; per layer the lambda mix, q/k/v, the value-embedding gate,
 * RoPE then QK-norm ×1.2, the cache write, windowed GQA attention over the cache, projection, relu² MLP; backout
 * after block n//2; final norm, lm_head over the real vocab rows, softcap 15.
 *
 * <p>This lives in bench until the model dispatches on the tensor's device itself (then {@code GPT.forwardCached}
 * can take device tensors and this class goes away).
 */
final class DeviceDecoder {
    private final Backend be;
    private final GPTConfig cfg;
    private final int c, h, kv, d, vocab;
    private int batch, maxLen;
    private final Tensor wte, lmHead, residLambdas, x0Lambdas, smearGate, smearLambda, negBackout, one, cos, sin;
    private final Tensor[] cq, ck, cv, cProj, veGate, cFc, mlpProj, valueEmbed;
    private Tensor[] keys, values;
    private Tensor prev; // (B,1,C) last pre-smear embedding of the previous call
    private int pos;

    DeviceDecoder(GPT model, Backend be, int batch, int maxLen) {
        this.be = be;
        this.cfg = model.config();
        c = cfg.nEmbd();
        h = cfg.nHead();
        kv = cfg.nKvHead();
        d = cfg.headDim();
        vocab = cfg.vocabSize();
        wte = w(model, "transformer.wte.weight");
        lmHead = up(model.parameter("lm_head.weight").tensor().slice(0, vocab));
        residLambdas = w(model, "resid_lambdas");
        x0Lambdas = w(model, "x0_lambdas");
        smearGate = w(model, "smear_gate.weight");
        smearLambda = w(model, "smear_lambda");
        negBackout = be.scale(w(model, "backout_lambda"), -1f);
        one = up(Tensor.of(new float[] {1f}));
        Backend.RotaryTables rt = be.rotaryTables(10 * cfg.sequenceLen(), d, GPT.ROPE_BASE);
        cos = rt.cos();
        sin = rt.sin();
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
            cq[i] = w(model, p + "attn.c_q.weight");
            ck[i] = w(model, p + "attn.c_k.weight");
            cv[i] = w(model, p + "attn.c_v.weight");
            cProj[i] = w(model, p + "attn.c_proj.weight");
            cFc[i] = w(model, p + "mlp.c_fc.weight");
            mlpProj[i] = w(model, p + "mlp.c_proj.weight");
            if (cfg.hasValueEmbed(i)) {
                veGate[i] = w(model, p + "attn.ve_gate.weight");
                valueEmbed[i] = w(model, "value_embeds." + i + ".weight");
            }
        }
        reset(batch, maxLen);
    }

    /** A fresh, empty KV cache for {@code batch} rows of up to {@code maxLen} positions (the weights stay). */
    void reset(int batch, int maxLen) {
        this.batch = batch;
        this.maxLen = maxLen;
        int n = cfg.nLayer();
        keys = new Tensor[n];
        values = new Tensor[n];
        for (int i = 0; i < n; i++) {
            keys[i] = be.zeros(batch, maxLen, kv, d);
            values[i] = be.zeros(batch, maxLen, kv, d);
        }
        prev = null;
        pos = 0;
    }

    private Tensor w(GPT model, String name) {
        return up(model.parameter(name).tensor());
    }

    /** A copy on this decoder's device (the tensor itself on the CPU: the parameters are live there). */
    private Tensor up(Tensor host) {
        return be.device() == Device.CPU ? host : ((CudaBackend) be).upload(host);
    }

    int pos() {
        return pos;
    }

    /** Logits (B, T, vocab) on this decoder's device for tokens (B·T, row-major) at the next T positions. */
    Tensor step(int[] tokens, int t) {
        if (tokens.length != batch * t) throw new IllegalArgumentException("step: " + tokens.length + " tokens for batch " + batch + " x " + t);
        if (pos + t > maxLen) throw new IllegalArgumentException("step: " + t + " tokens at position " + pos + " overflow the cache of " + maxLen);
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] < 0 || tokens[i] >= vocab) throw new IllegalArgumentException("step: token " + tokens[i] + " at " + i + " is outside [0, " + vocab + ")");
        }
        Tensor idx = up(Tensor.ofInts(tokens.clone(), batch, t));
        Tensor e = be.rmsNorm(embed(wte, idx), 1f); // (B,T,C)
        Tensor x = smear(e, t);
        prev = be.narrow(e, 1, t - 1, 1);
        Tensor x0 = x, xMid = null;
        float scale = (float) (1.0 / Math.sqrt(d));
        for (int i = 0; i < cfg.nLayer(); i++) {
            x = be.lambdaMix(residLambdas.slice(i, i + 1), x, x0Lambdas.slice(i, i + 1), x0); // views: no copy kernels
            Tensor hn = be.rmsNorm(x, 1f);
            Tensor q = be.linear(hn, cq[i]).reshape(batch, t, h, d);
            Tensor k = be.linear(hn, ck[i]).reshape(batch, t, kv, d);
            Tensor v = be.linear(hn, cv[i]).reshape(batch, t, kv, d);
            if (valueEmbed[i] != null) {
                Tensor gate = be.scale(be.sigmoid(be.linear(be.narrow(hn, 2, 0, GPTConfig.VE_GATE_CHANNELS), veGate[i])), 3f);
                Tensor ve = embed(valueEmbed[i], idx).reshape(batch, t, kv, d);
                v = be.add(v, be.mul(gate.reshape(batch, t, kv, 1), ve));
            }
            q = be.rmsNorm(be.rotary(q, cos, sin, pos), GPT.QK_SCALE);
            k = be.rmsNorm(be.rotary(k, cos, sin, pos), GPT.QK_SCALE);
            be.narrowAssign(keys[i], 1, pos, k);
            be.narrowAssign(values[i], 1, pos, v);
            Tensor y = be.attentionCached(q, keys[i], values[i], pos, cfg.windowSize(i), scale);
            x = be.add(x, be.linear(y.reshape(batch, t, c), cProj[i]));
            x = be.add(x, be.linear(be.relu2(be.linear(be.rmsNorm(x, 1f), cFc[i])), mlpProj[i]));
            if (i == cfg.backoutLayer()) xMid = x;
        }
        x = be.lambdaMix(one, x, negBackout, xMid);
        pos += t;
        return be.softcap(be.linear(be.rmsNorm(x, 1f), lmHead), GPT.SOFTCAP);
    }

    /** Ids were checked on the host in step(): on the GPU, skip the check's device → host wait. */
    private Tensor embed(Tensor table, Tensor idx) {
        return be instanceof CudaBackend cuda ? cuda.embedding(table, idx, false) : be.embedding(table, idx);
    }

    /** x_t = e_t + λ·σ(w·e_t[0:24])·e_{t−1}; position 0 of a chunk uses the previous call's last embedding if any. */
    private Tensor smear(Tensor e, int t) {
        Tensor gate = be.mul(smearLambda, be.sigmoid(be.linear(be.narrow(e, 2, 0, GPTConfig.SMEAR_CHANNELS), smearGate))); // (B,T,1)
        if (t == 1) return prev == null ? e : be.add(e, be.mul(gate, prev));
        Tensor cur = be.narrow(e, 1, 1, t - 1), before = be.narrow(e, 1, 0, t - 1);
        Tensor mixed = be.add(cur, be.mul(be.narrow(gate, 1, 1, t - 1), before));
        return be.concat(1, be.narrow(e, 1, 0, 1), mixed);
    }

    /** Greedy next tokens (B) from the last position of logits (B, T, vocab): argmax on the device, B ints down. */
    int[] greedy(Tensor logits) {
        int t = logits.shape(1);
        Tensor last = t == 1 ? logits : be.narrow(logits, 1, t - 1, 1);
        return be.argmax(last.reshape(batch, vocab)).toIntArray();
    }

}
