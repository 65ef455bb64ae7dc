package nanochat4j.model.gpt;

import nanochat4j.tensor.Tensor;

/**
 * Per-layer key/value buffers (B, maxLen, KV, D) for inference, the shared position (tokens already cached),
 * the last pre-smear token embedding (B,1,C) the smear gate of the next single-token step mixes in, and the
 * decode step's activation buffers ({@link Decoder.Scratch}, made by the first decode step).
 */
public final class KVCache {
    private final Tensor[] keys, values;
    private final int batch, maxLen;
    private int pos;
    private final float[] prev;
    private boolean hasPrev;
    Decoder.Scratch scratch;

    public KVCache(GPTConfig config, int batch, int maxLen) {
        if (batch < 1 || maxLen < 1) throw new IllegalArgumentException("KVCache: batch " + batch + " and maxLen " + maxLen + " must be >= 1");
        this.batch = batch;
        this.maxLen = maxLen;
        prev = new float[batch * config.nEmbd()];
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

    /** The last pre-smear embedding (B,1,C) (a view of the cache's buffer), or null before the first token. */
    public Tensor prevEmbedding() { return hasPrev ? Tensor.of(prev, batch, 1, prev.length / batch) : null; }

    /** Stores a copy of {@code e} (B,1,C) as the previous embedding. */
    public void setPrevEmbedding(Tensor e) {
        if (e.numel() != prev.length) {
            throw new IllegalArgumentException("KVCache.setPrevEmbedding: " + e + " does not hold " + batch + " rows of " + prev.length / batch);
        }
        System.arraycopy(e.floats(), e.offset(), prev, 0, prev.length);
        hasPrev = true;
    }

    /** The previous-embedding buffer (B·C), written in place by the decode step, which then calls {@link #markPrev}. */
    float[] prev() { return prev; }

    boolean hasPrev() { return hasPrev; }

    void markPrev() { hasPrev = true; }

    public void advance(int t) {
        if (pos + t > maxLen) throw new IllegalArgumentException("KVCache: advancing " + t + " from " + pos + " past maxLen " + maxLen);
        pos += t;
    }

    /**
     * Takes over {@code src}'s cached positions, position and previous embedding (nanochat's Engine prefills a
     * batch-1 cache once, then decodes N rows): {@code src} has batch 1 (replicated to every row) or this batch,
     * the same layers/heads, and must fit.
     */
    public void copyFrom(KVCache src) {
        if (src.keys.length != keys.length || src.batch != 1 && src.batch != batch) {
            throw new IllegalArgumentException("KVCache.copyFrom: source batch " + src.batch + " / " + src.keys.length
                    + " layers into batch " + batch + " / " + keys.length + " layers");
        }
        if (src.pos > maxLen) throw new IllegalArgumentException("KVCache.copyFrom: " + src.pos + " cached positions exceed maxLen " + maxLen);
        int row = keys[0].shape(2) * keys[0].shape(3);
        if (src.keys[0].shape(2) * src.keys[0].shape(3) != row) throw new IllegalArgumentException("KVCache.copyFrom: head layouts differ");
        for (int l = 0; l < keys.length; l++) {
            for (int b = 0; b < batch; b++) {
                int sb = src.batch == 1 ? 0 : b;
                System.arraycopy(src.keys[l].floats(), src.keys[l].offset() + sb * src.maxLen * row,
                        keys[l].floats(), keys[l].offset() + b * maxLen * row, src.pos * row);
                System.arraycopy(src.values[l].floats(), src.values[l].offset() + sb * src.maxLen * row,
                        values[l].floats(), values[l].offset() + b * maxLen * row, src.pos * row);
            }
        }
        pos = src.pos;
        hasPrev = src.hasPrev;
        int c = prev.length / batch;
        for (int b = 0; b < batch; b++) System.arraycopy(src.prev, (src.batch == 1 ? 0 : b) * c, prev, b * c, c);
    }

    /** Empties the cache (buffers are overwritten by the next prefill). */
    public void reset() {
        pos = 0;
        hasPrev = false;
    }

}
