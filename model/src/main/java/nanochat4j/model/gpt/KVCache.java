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
}
