package nanochat4j.model.gpt;

import nanochat4j.tensor.Tensor;

/**
 * Per-layer key/value buffers (B, maxLen, KV, D) for inference, the shared position (tokens already cached) and
 * the last pre-smear token embedding (B,1,C) the smear gate of the next single-token step mixes in.
 */
public final class KVCache {
    private final Tensor[] keys, values;
    private final int batch, maxLen;
    private int pos;
    private Tensor prevEmbedding;

    public KVCache(GPTConfig config, int batch, int maxLen) {
        if (batch < 1 || maxLen < 1) throw new IllegalArgumentException("KVCache: batch " + batch + " and maxLen " + maxLen + " must be >= 1");
        this.batch = batch;
        this.maxLen = maxLen;
        keys = new Tensor[config.nLayer()];
        values = new Tensor[config.nLayer()];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = Tensor.zeros(batch, maxLen, config.nKvHead(), config.headDim());
            values[i] = Tensor.zeros(batch, maxLen, config.nKvHead(), config.headDim());
        }
    }

    public int batch() { return batch; }

    public int maxLen() { return maxLen; }

    /** Number of positions already cached (the absolute position of the next token). */
    public int pos() { return pos; }

    public Tensor keys(int layer) { return keys[layer]; }

    public Tensor values(int layer) { return values[layer]; }

    public Tensor prevEmbedding() { return prevEmbedding; }

    public void setPrevEmbedding(Tensor e) { prevEmbedding = e; }

    public void advance(int t) {
        if (pos + t > maxLen) throw new IllegalArgumentException("KVCache: advancing " + t + " from " + pos + " past maxLen " + maxLen);
        pos += t;
    }

    /** Empties the cache (buffers are overwritten by the next prefill). */
    public void reset() {
        pos = 0;
        prevEmbedding = null;
    }

    /**
     * Fills this cache from a batch-1 cache (nanochat's {@code KVCache.prefill}): every row gets a copy of its first
     * {@code pos} keys/values and its last embedding, so N sample rows can decode from one prefilled prompt.
     */
    public void prefillFrom(KVCache single) {
        if (single.batch != 1) throw new IllegalArgumentException("KVCache.prefillFrom: source has batch " + single.batch + ", needs 1");
        if (single.pos > maxLen || single.keys.length != keys.length) {
            throw new IllegalArgumentException("KVCache.prefillFrom: " + single.pos + " cached positions of " + single.keys.length
                    + " layers do not fit " + keys.length + " layers of length " + maxLen);
        }
        for (int l = 0; l < keys.length; l++) {
            copyRows(single.keys[l], keys[l], single.pos);
            copyRows(single.values[l], values[l], single.pos);
        }
        pos = single.pos;
        prevEmbedding = null;
        if (single.prevEmbedding != null) {
            Tensor src = single.prevEmbedding;
            int[] shape = src.shape().clone();
            shape[0] = batch;
            float[] out = new float[src.numel() * batch];
            float[] in = src.toFloatArray();
            for (int b = 0; b < batch; b++) System.arraycopy(in, 0, out, b * in.length, in.length);
            prevEmbedding = Tensor.of(out, shape);
        }
    }

    /** Copies positions [0, n) of a (1, L, KV, D) buffer into every row of a (B, maxLen, KV, D) buffer. */
    private static void copyRows(Tensor src, Tensor dst, int n) {
        int per = src.shape(2) * src.shape(3);
        int rowLen = dst.shape(1) * per;
        float[] s = src.floats();
        float[] d = dst.floats();
        for (int b = 0; b < dst.shape(0); b++) System.arraycopy(s, src.offset(), d, dst.offset() + b * rowLen, n * per);
    }
}
