package nanochat4j.model.gpt;

/**
 * GPT's forward dataflow, written once (nanochat's gpt.py, master 92d63d4), over an {@link Exec} that does each step
 * on some representation X of the activations:
 * <ul>
 *   <li>x = smear(rms_norm(wte[idx])), x0 = x;</li>
 *   <li>per layer x = resid_λ·x + x0_λ·x0, then the block: hn = rms_norm(x); q, k, v = W·hn; value-embedding gate
 *       v += 3·σ(W_gate·hn[0:12])·ve[idx] (alternate layers); q, k ← rms_norm(rope(·))·1.2; k, v into the KV cache
 *       (with one); causal windowed GQA attention; x += W_proj·y; x += W_mlp·relu²(W_fc·rms_norm(x));</li>
 *   <li>backout: x −= λ·x_mid (x after block n//2); final rms_norm; the head: 15·tanh(W_lm·x/15) over the vocab.</li>
 * </ul>
 * Two executors run it: {@link GPT}'s, on autograd {@link nanochat4j.autograd.Var}s and the model's backend (training,
 * logits, long prefill, any device), and the {@link Decoder}'s, in place over preallocated CPU buffers (decode steps and
 * short chunks), which is why the flow follows one rule: an op may return its first argument updated in place, so a
 * value needed after it is passed on is taken with {@link Exec#keep} first.
 */
final class Forward {
    private Forward() {}

    /** One block's query, key and value projections. */
    record Qkv<X>(X q, X k, X v) {}

    /** The steps of the forward on activations X; one instance serves one call (its tokens, cache and positions). */
    interface Exec<X> {
        /** rms_norm(wte[idx]) of the call's tokens. */
        X embed();

        /** The smear gate over the embedding (and, with a cache, the previous call's last embedding). */
        X smear(X e);

        /** A copy of x that later in-place ops leave alone (x0, the backout's x_mid); an immutable X returns x itself. */
        X keep(X x);

        X lambdaMix(int layer, X x, X x0);

        /** rms_norm without a weight (eps: fp32 machine epsilon). */
        X norm(X x);

        /**
         * The projections of hn into heads: q and k with RoPE at the call's positions, then rms_norm per head times
         * {@link GPT#QK_SCALE}; v as projected.
         */
        Qkv<X> qkv(int layer, X hn);

        /** v + 3·σ(W_gate·hn[0:12])·ve[idx] per kv head. */
        X valueEmbedMix(int layer, X v, X hn);

        /** Writes k, v at the call's positions of the layer's KV cache (nothing without a cache). */
        void cacheWrite(int layer, X k, X v);

        /** Causal windowed attention of q over k, v (without a cache) or over everything cached (with one). */
        X attention(int layer, X q, X k, X v);

        /** x + W_proj·y; the trace sees W_proj·y as "attn_out". */
        X attnResidual(int layer, X x, X y);

        /** x + W_mlp·relu²(W_fc·rms_norm(x)); the trace sees the product with W_mlp as "mlp_out". */
        X mlp(int layer, X x);

        /** x − backout_λ·xMid. */
        X backout(X x, X xMid);

        /** Soft-capped logits of the final-normed x over the real vocab. */
        X logits(X x);

        /** Records an activation by name ("blockI.name" for layer ≥ 0) when tracing; executors without a trace ignore it. */
        void trace(int layer, String name, X x);
    }

    /** The final-normed hidden state of the call's tokens. */
    static <X> X hidden(GPTConfig config, Exec<X> ex) {
        X x = ex.embed();
        ex.trace(-1, "embed_norm", x);
        x = ex.smear(x);
        X x0 = ex.keep(x);
        ex.trace(-1, "x0", x0);
        X xMid = null;
        for (int i = 0; i < config.nLayer(); i++) {
            x = ex.lambdaMix(i, x, x0);
            ex.trace(i, "in", x);
            x = block(config, ex, i, x);
            if (i == config.backoutLayer()) xMid = ex.keep(x);
        }
        x = ex.norm(ex.backout(x, xMid));
        ex.trace(-1, "final_norm", x);
        return x;
    }

    /** The soft-capped logits of the call's tokens. */
    static <X> X logits(GPTConfig config, Exec<X> ex) {
        return ex.logits(hidden(config, ex));
    }

    /** Block i on x (after the lambda mix). */
    private static <X> X block(GPTConfig config, Exec<X> ex, int i, X x) {
        X hn = ex.norm(x);
        Qkv<X> a = ex.qkv(i, hn);
        X v = config.hasValueEmbed(i) ? ex.valueEmbedMix(i, a.v(), hn) : a.v();
        X q = a.q(), k = a.k();
        ex.cacheWrite(i, k, v);
        X y = ex.attention(i, q, k, v);
        ex.trace(i, "attn_y", y);
        x = ex.attnResidual(i, x, y);
        x = ex.mlp(i, x);
        ex.trace(i, "out", x);
        return x;
    }
}
