package nanochat4j.model.gpt;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * nanochat's {@code GPTConfig} plus everything derived from it (gpt.py, and base_train.py's depth dial):
 * <ul>
 *   <li>{@link #fromDepth}: base_train's one dial — width = ceil(depth·aspect/head_dim)·head_dim, heads = width/head_dim,
 *       KV heads = heads;</li>
 *   <li>vocab padded to a multiple of 64 (wte, value embeds, lm_head); logits are cropped back to {@code vocabSize};</li>
 *   <li>per-layer windows: long = sequence_len, short = ceil(ceil(seq/4)/128)·128, last layer always long;</li>
 *   <li>value embeddings on layers with i%2 == (n−1)%2; backout after block n//2;</li>
 *   <li>parameter names/shapes in nanochat state-dict order, parameter counts and FLOP / KV-byte estimators.</li>
 * </ul>
 */
public record GPTConfig(int sequenceLen, int vocabSize, int nLayer, int nHead, int nKvHead, int nEmbd,
                        String windowPattern) {

    /** Channels of the normalized embedding the smear gate reads. */
    public static final int SMEAR_CHANNELS = 24;
    /** Channels of the normalized block input the value-embedding gate reads. */
    public static final int VE_GATE_CHANNELS = 12;
    public static final int VOCAB_PAD_MULTIPLE = 64;

    public GPTConfig {
        if (sequenceLen < 1 || vocabSize < 1 || nLayer < 1 || nHead < 1 || nKvHead < 1 || nEmbd < 1) {
            throw new IllegalArgumentException("GPTConfig: every size must be >= 1, got " + describe(
                    sequenceLen, vocabSize, nLayer, nHead, nKvHead, nEmbd, windowPattern));
        }
        if (nEmbd % nHead != 0) throw new IllegalArgumentException("GPTConfig: n_embd " + nEmbd + " is not a multiple of n_head " + nHead);
        if (nHead % nKvHead != 0) throw new IllegalArgumentException("GPTConfig: n_head " + nHead + " is not a multiple of n_kv_head " + nKvHead);
        if ((nEmbd / nHead) % 2 != 0) throw new IllegalArgumentException("GPTConfig: head_dim " + nEmbd / nHead + " must be even (rotary halves)");
        if (nEmbd < SMEAR_CHANNELS) throw new IllegalArgumentException("GPTConfig: n_embd " + nEmbd + " < " + SMEAR_CHANNELS + " (smear gate channels)");
        if (windowPattern == null || windowPattern.isEmpty()) throw new IllegalArgumentException("GPTConfig: empty window_pattern");
        windowPattern = windowPattern.toUpperCase(java.util.Locale.ROOT);
        for (char c : windowPattern.toCharArray()) {
            if (c != 'S' && c != 'L') throw new IllegalArgumentException("GPTConfig: window_pattern '" + windowPattern + "' may only contain S and L");
        }
    }

    /** nanochat's dataclass defaults (d12). */
    public static GPTConfig defaults() {
        return new GPTConfig(2048, 32768, 12, 6, 6, 768, "SSSL");
    }

    /**
     * base_train's sizing: C = ceil(depth·aspectRatio/headDim)·headDim, n_head = C/headDim, n_kv_head = n_head,
     * n_layer = depth. nanochat's CLI defaults are aspect 64, head dim 128, seq 2048, "SSSL", vocab 32768.
     */
    public static GPTConfig fromDepth(int depth, int aspectRatio, int headDim, int maxSeqLen, String windowPattern,
                                      int vocabSize) {
        if (depth < 1 || aspectRatio < 1 || headDim < 1) {
            throw new IllegalArgumentException("fromDepth: depth " + depth + ", aspect " + aspectRatio + ", head dim " + headDim + " must be >= 1");
        }
        long base = (long) depth * aspectRatio;
        int dim = (int) (((base + headDim - 1) / headDim) * headDim);
        int heads = dim / headDim;
        return new GPTConfig(maxSeqLen, vocabSize, depth, heads, heads, dim, windowPattern);
    }

    /** From nanochat's {@code model_config} JSON (meta files, fixtures); a missing window_pattern means "L" (old checkpoints). */
    public static GPTConfig fromJson(JsonNode n) {
        for (String k : new String[] {"sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd"}) {
            if (!n.hasNonNull(k) || !n.get(k).canConvertToInt()) {
                throw new IllegalArgumentException("model config: missing or non-integer \"" + k + "\" in " + n);
            }
        }
        return new GPTConfig(n.get("sequence_len").asInt(), n.get("vocab_size").asInt(), n.get("n_layer").asInt(),
                n.get("n_head").asInt(), n.get("n_kv_head").asInt(), n.get("n_embd").asInt(),
                n.path("window_pattern").asText("L"));
    }

    /** nanochat's {@code model_config} dict (field names as in gpt.py). */
    public Map<String, Object> toJsonMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("sequence_len", sequenceLen);
        m.put("vocab_size", vocabSize);
        m.put("n_layer", nLayer);
        m.put("n_head", nHead);
        m.put("n_kv_head", nKvHead);
        m.put("n_embd", nEmbd);
        m.put("window_pattern", windowPattern);
        return m;
    }

    public int headDim() { return nEmbd / nHead; }

    public int kvDim() { return nKvHead * headDim(); }

    /** Vocab rounded up to a multiple of 64 (rows of wte, value embeds and lm_head). */
    public int paddedVocab() {
        return (vocabSize + VOCAB_PAD_MULTIPLE - 1) / VOCAB_PAD_MULTIPLE * VOCAB_PAD_MULTIPLE;
    }

    /** Left window of layer i in keys back (a query sees keys j with p−j ≤ window); right window is always 0. */
    public int windowSize(int layer) {
        int longW = sequenceLen;
        int shortW = ((sequenceLen + 3) / 4 + 127) / 128 * 128;
        if (layer == nLayer - 1) return longW;
        return windowPattern.charAt(layer % windowPattern.length()) == 'L' ? longW : shortW;
    }

    public int[] windowSizes() {
        int[] w = new int[nLayer];
        for (int i = 0; i < nLayer; i++) w[i] = windowSize(i);
        return w;
    }

    public boolean hasValueEmbed(int layer) { return layer % 2 == (nLayer - 1) % 2; }

    public int backoutLayer() { return nLayer / 2; }

    /** Every parameter name (nanochat state-dict key) with its shape, in nanochat's parameter order. */
    public Map<String, int[]> parameterShapes() {
        int c = nEmbd, v = paddedVocab();
        Map<String, int[]> m = new LinkedHashMap<>();
        m.put("resid_lambdas", new int[] {nLayer});
        m.put("x0_lambdas", new int[] {nLayer});
        m.put("smear_lambda", new int[] {1});
        m.put("backout_lambda", new int[] {1});
        m.put("transformer.wte.weight", new int[] {v, c});
        for (int i = 0; i < nLayer; i++) {
            String p = "transformer.h." + i + ".";
            m.put(p + "attn.c_q.weight", new int[] {nHead * headDim(), c});
            m.put(p + "attn.c_k.weight", new int[] {kvDim(), c});
            m.put(p + "attn.c_v.weight", new int[] {kvDim(), c});
            m.put(p + "attn.c_proj.weight", new int[] {c, c});
            if (hasValueEmbed(i)) m.put(p + "attn.ve_gate.weight", new int[] {nKvHead, VE_GATE_CHANNELS});
            m.put(p + "mlp.c_fc.weight", new int[] {4 * c, c});
            m.put(p + "mlp.c_proj.weight", new int[] {c, 4 * c});
        }
        m.put("lm_head.weight", new int[] {v, c});
        m.put("smear_gate.weight", new int[] {1, SMEAR_CHANNELS});
        for (int i = 0; i < nLayer; i++) {
            if (hasValueEmbed(i)) m.put("value_embeds." + i + ".weight", new int[] {v, kvDim()});
        }
        return m;
    }

    /** nanochat's {@code num_scaling_params()} breakdown. */
    public record ParamCounts(long wte, long valueEmbeds, long lmHead, long transformerMatrices, long scalars, long total) {
        /** What the training horizon scales with: transformer matrices + lm_head. */
        public long scaling() { return transformerMatrices + lmHead; }
    }

    public ParamCounts numScalingParams() {
        long wte = 0, ve = 0, lm = 0, tm = 0, scalars = 0;
        for (Map.Entry<String, int[]> e : parameterShapes().entrySet()) {
            long n = numel(e.getValue());
            String name = e.getKey();
            if (name.equals("transformer.wte.weight")) wte += n;
            else if (name.startsWith("value_embeds.")) ve += n;
            else if (name.equals("lm_head.weight")) lm += n;
            else if (name.startsWith("transformer.h.")) tm += n;
            else scalars += n;
        }
        return new ParamCounts(wte, ve, lm, tm, scalars, wte + ve + lm + tm + scalars);
    }

    /** Weights of all Linear layers: block matrices (incl. ve_gate) + lm_head (padded) + smear_gate. */
    public long numMatmulParams() {
        ParamCounts p = numScalingParams();
        return p.transformerMatrices() + p.lmHead() + SMEAR_CHANNELS;
    }

    private static long effectiveWindow(int window, long t) {
        return window < 0 ? t : Math.min(window, t);
    }

    /** Training FLOPs per token (nanochat's estimate_flops): 6·N_mm + Σ_l 12·H·D·min(window_l, seq). */
    public long estimateFlops() {
        long attn = 0;
        for (int i = 0; i < nLayer; i++) attn += 12L * nHead * headDim() * effectiveWindow(windowSize(i), sequenceLen);
        return 6 * numMatmulParams() + attn;
    }

    /** KV-cache bytes read by one decode step at context c: Σ_l 2·KV·D·bytes·min(c, window_l). */
    public long kvBytesReadPerDecodeStep(long context, int bytesPerElement) {
        long total = 0;
        for (int i = 0; i < nLayer; i++) total += 2L * kvDim() * bytesPerElement * effectiveWindow(windowSize(i), context);
        return total;
    }

    /**
     * KV-cache bytes one token stores over all layers (nanochat's kv_bytes_per_token), at {@code bytesPerElement} per
     * key or value element.
     */
    public long kvBytesPerToken(int bytesPerElement) {
        return (long) nLayer * 2 * kvDim() * bytesPerElement;
    }

    /**
     * Forward FLOPs to decode one token at context {@code c} (nanochat's estimate_decode_flops): 2 per matmul parameter,
     * plus 4·H·D per key each layer attends to, min(c, window).
     */
    public long decodeFlops(long context) {
        long attn = 0;
        for (int i = 0; i < nLayer; i++) attn += 4L * nHead * headDim() * effectiveWindow(windowSize(i), context);
        return 2 * numMatmulParams() + attn;
    }

    /**
     * Forward FLOPs to prefill {@code t} tokens (nanochat's estimate_prefill_flops): causal, so token i attends to
     * min(i + 1, window) keys — a ramp up to the window, then flat.
     */
    public long prefillFlops(long t) {
        long attn = 0;
        for (int i = 0; i < nLayer; i++) {
            long w = effectiveWindow(windowSize(i), t);
            attn += 4L * nHead * headDim() * (w * (w + 1) / 2 + (t - w) * w);
        }
        return 2 * numMatmulParams() * t + attn;
    }

    /**
     * Weight bytes one decode step reads for each row's token (the KV cache comes on top): the block matrices and the
     * lm_head's vocabulary rows (its padding rows are never read) at {@code matmulBytes} each, and in fp32 the ve gates,
     * the smear gate, the token's embedding row and its value-embedding rows. nanochat's MBU counts every parameter as
     * stored, embedding tables included, of which a step reads one row: at small depths those tables are most of the
     * model, and its MBU would pass 100%.
     */
    public long decodeWeightBytes(int matmulBytes) {
        long streamed = 0, fp32 = (long) nEmbd + SMEAR_CHANNELS;
        for (Map.Entry<String, int[]> e : parameterShapes().entrySet()) {
            String name = e.getKey();
            if (name.equals("lm_head.weight")) streamed += (long) vocabSize * nEmbd;
            else if (name.endsWith(".ve_gate.weight")) fp32 += numel(e.getValue());
            else if (name.startsWith("transformer.h.")) streamed += numel(e.getValue());
            else if (name.startsWith("value_embeds.")) fp32 += kvDim();
        }
        return streamed * matmulBytes + fp32 * Float.BYTES;
    }

    static long numel(int[] shape) {
        long n = 1;
        for (int d : shape) n *= d;
        return n;
    }

    private static String describe(int s, int v, int l, int h, int kv, int c, String w) {
        return "sequence_len=" + s + " vocab_size=" + v + " n_layer=" + l + " n_head=" + h + " n_kv_head=" + kv
                + " n_embd=" + c + " window_pattern=" + w;
    }

    @Override
    public String toString() {
        return "GPTConfig(" + describe(sequenceLen, vocabSize, nLayer, nHead, nKvHead, nEmbd, windowPattern) + ")";
    }
}
