package nanochat4j.model.gpt;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;

/**
 * Per-layer key/value buffers (B, maxLen, KV, D) for inference, the shared position (tokens already cached), the last
 * pre-smear token embedding (B,1,C) the smear gate of the next single-token step mixes in, and on the CPU the fused
 * decode step's activation buffers ({@link Decoder.Scratch}, made by its first call), on a GPU its recorded decode step
 * ({@link RecordedDecode}). Everything but the scratch lives on the model's device: a step on the GPU moves only the
 * token ids up and the logits down.
 */
public final class KVCache implements AutoCloseable {
    /** Bytes of one cached key or value element: fp32 on both devices (nanochat keeps its cache in bf16 on a GPU). */
    public static final int ELEMENT_BYTES = Float.BYTES;

    private final Backend be;
    private final Tensor[] keys, values;
    private final Tensor prev;
    private final int batch, maxLen;
    private int pos;
    private boolean hasPrev;
    Decoder.Scratch scratch;
    /** On a GPU: the recorded decode step, whether the step that makes it a safe recording ran, and recording given up. */
    RecordedDecode recorded;
    boolean warm, recordOff;
    private boolean closed;

    /** An empty cache for {@code model} (its shapes, on its device) of {@code batch} rows and up to {@code maxLen} positions. */
    public KVCache(GPT model, int batch, int maxLen) {
        if (batch < 1 || maxLen < 1) throw new IllegalArgumentException("KVCache: batch " + batch + " and maxLen " + maxLen + " must be >= 1");
        GPTConfig config = model.config();
        this.be = model.backend();
        this.batch = batch;
        this.maxLen = maxLen;
        prev = be.zeros(batch, 1, config.nEmbd());
        keys = new Tensor[config.nLayer()];
        values = new Tensor[config.nLayer()];
        for (int i = 0; i < keys.length; i++) {
            keys[i] = be.zeros(batch, maxLen, config.nKvHead(), config.headDim());
            values[i] = be.zeros(batch, maxLen, config.nKvHead(), config.headDim());
        }
    }

    /**
     * Gives the cache's device memory back now (its keys, values and recorded step: ~0.4 GB a row at d20 and 2,048
     * positions) rather than when it is collected, so a server's next request reuses it; on the CPU the heap does.
     * The cache cannot be used afterwards. Idempotent.
     */
    @Override
    public void close() {
        if (closed) return;
        closed = true;
        if (recorded != null) recorded.close();
        recorded = null;
        scratch = null;
        release(prev);
        for (Tensor t : keys) release(t);
        for (Tensor t : values) release(t);
    }

    /** Back to the device's pool, for work queued after it (one stream: every reader queued before runs first). */
    static void release(Tensor t) {
        if (t.isOnDevice()) t.deviceStorage().recycle();
    }

    /** Throws when {@link #close} ran: the buffers may hold another owner's data by now. */
    void checkOpen(String op) {
        if (closed) throw new IllegalStateException(op + ": the KV cache was closed");
    }

    public int batch() { return batch; }

    public int maxLen() { return maxLen; }

    /** Number of positions already cached (the absolute position of the next token). */
    public int pos() { return pos; }

    Backend backend() { return be; }

    Tensor keys(int layer) { return keys[layer]; }

    Tensor values(int layer) { return values[layer]; }

    /** The previous-embedding buffer (B,1,C): the decode step writes it in place, then calls {@link #markPrev}. */
    Tensor prev() { return prev; }

    boolean hasPrev() { return hasPrev; }

    void markPrev() { hasPrev = true; }

    /** Stores {@code e} (B,1,C, on the cache's device) as the previous embedding. */
    void setPrev(Tensor e) {
        be.narrowAssign(prev, 1, 0, e);
        hasPrev = true;
    }

    void advance(int t) {
        if (pos + t > maxLen) throw new IllegalArgumentException("KVCache: advancing " + t + " from " + pos + " past maxLen " + maxLen);
        pos += t;
    }

    /**
     * Takes over {@code src}'s cached positions, position and previous embedding (nanochat's Engine prefills a
     * batch-1 cache once, then decodes N rows): {@code src} has batch 1 (replicated to every row) or this batch,
     * the same layers/heads and device, and must fit. Copies stay on the device.
     */
    public void copyFrom(KVCache src) {
        checkOpen("KVCache.copyFrom");
        src.checkOpen("KVCache.copyFrom (its source)");
        if (src.keys.length != keys.length || src.batch != 1 && src.batch != batch) {
            throw new IllegalArgumentException("KVCache.copyFrom: source batch " + src.batch + " / " + src.keys.length
                    + " layers into batch " + batch + " / " + keys.length + " layers");
        }
        if (src.pos > maxLen) throw new IllegalArgumentException("KVCache.copyFrom: " + src.pos + " cached positions exceed maxLen " + maxLen);
        if (!src.prev.sameShape(prev.slice(0, src.batch)) || src.keys[0].shape(2) != keys[0].shape(2) || src.keys[0].shape(3) != keys[0].shape(3)) {
            throw new IllegalArgumentException("KVCache.copyFrom: head or embedding layouts differ");
        }
        if (src.be.device() != be.device()) {
            throw new IllegalArgumentException("KVCache.copyFrom: a cache on " + src.be.device() + " into one on " + be.device());
        }
        for (int b = 0; b < batch; b++) {
            int sb = src.batch == 1 ? 0 : b;
            if (src.pos > 0) {
                for (int l = 0; l < keys.length; l++) {
                    keys[l].select(b).slice(0, src.pos).copyFrom(src.keys[l].select(sb).slice(0, src.pos));
                    values[l].select(b).slice(0, src.pos).copyFrom(src.values[l].select(sb).slice(0, src.pos));
                }
            }
            prev.select(b).copyFrom(src.prev.select(sb));
        }
        pos = src.pos;
        hasPrev = src.hasPrev;
    }
}
