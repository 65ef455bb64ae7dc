package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.Recycler;

/**
 * Logit softcap + cross-entropy, forward and backward fused in one pass pair per row, and the chunked
 * lm_head + softcap + CE that never holds the (N, vocab) logits.
 * Per row with logits z (V), target t (−1 = ignored), cap c, row weight w (1/count for MEAN, 1 for SUM/NONE):
 * <pre>
 *   s_j   = c·tanh(z_j/c)                    (s = z when c ≤ 0)
 *   lse   = m + log Σ_j exp(s_j − m)         m = c when 0 < c ≤ 40 (|s| ≤ c: no overflow, no underflow), else max s
 *   loss  = lse − s_t
 *   dz_j  = w·(softmax(s)_j − [j = t])·(1 − (s_j/c)²)
 * </pre>
 * Pass 1 keeps s (at the usual cap, q below) in a per-thread scratch row (L2-resident) and exp(s − m) in the
 * gradient buffer; pass 2 turns them into dz: two exponentials and a division per element, two passes over the row
 * (three at the usual cap, whose pass 1 is two loops: {@link #cappedRow}).
 * A NaN/inf logit is caught by a z·0 accumulator riding along pass 1 (softcap alone would hide +inf).
 * Chunked form, x (N, C), W (Vpad, C), R rows at a time: logits (R, vocab) = x_c·W[:vocab]ᵀ → the row kernel
 * writes dlogits over them → dx_c = dlogits·W[:vocab], dW[:vocab] += dlogitsᵀ·x_c (rows ≥ vocab of dW stay 0).
 */
final class CrossEntropy {
    private CrossEntropy() {}

    private static final VectorSpecies<Float> S = Vec.F;
    /**
     * Floats of logits held at once by the chunked form (128 MiB: 1024 rows at vocab 32768). Against 256 rows, W is
     * packed and dW re-read 4× less often and dW's product gets k = 1024, a clearly faster train step
     * (docs/BENCHMARKS.md); the chunk is one humongous array that G1 frees young.
     */
    static final int CHUNK_FLOATS = 32 << 20;

    /**
     * Loss of one row; with g != null also writes dz (g may alias z). scratch (≥ v floats, per thread) holds the
     * softcapped row between the passes. Returns NaN if the row holds a non-finite logit (the caller reports it).
     * Ignored rows are handled by the caller.
     */
    static float row(float[] z, int zo, int v, int t, float cap, float w, float[] g, int go, float[] scratch) {
        if (cap > 0f && cap <= 40f) return cappedRow(z, zo, v, t, cap, w, g, go, scratch);
        boolean capped = cap > 0f;
        float inv = capped ? 1f / cap : 0f;
        int ub = S.loopBound(v);
        // max pass (no softcap, or a cap so large exp could overflow); tanh is monotonic so max s = c·tanh(max z/c)
        float mz = Reduce.max(z, zo, v);
        float m = capped ? cap * VecMath.tanh(mz * inv) : mz;
        float st = capped ? cap * VecMath.tanh(z[zo + t] * inv) : z[zo + t];
        // pass 1: s = c·tanh(z/c) → scratch, e = exp(s − m) → g, Σ e; z·0 accumulates NaN for any NaN/inf logit
        var mv = FloatVector.broadcast(S, m);
        var acc = FloatVector.zero(S);
        var bad = FloatVector.zero(S);
        int i = 0;
        for (; i < ub; i += S.length()) {
            var zv = FloatVector.fromArray(S, z, zo + i);
            bad = bad.add(zv.mul(0f));
            var sv = zv;
            if (capped) {
                sv = VecMath.tanh(zv.mul(inv)).mul(cap);
                if (g != null) sv.intoArray(scratch, i);
            }
            var ev = VecMath.exp(sv.sub(mv));
            if (g != null) ev.intoArray(g, go + i);
            acc = acc.add(ev);
        }
        float sum = VecMath.sum(acc);
        float badTail = 0f;
        for (; i < v; i++) {
            float zz = z[zo + i];
            badTail += zz * 0f;
            float sc = capped ? cap * VecMath.tanh(zz * inv) : zz;
            float e = VecMath.exp(sc - m);
            if (g != null) {
                scratch[i] = sc;
                g[go + i] = e;
            }
            sum += e;
        }
        if (Float.isNaN(VecMath.sum(bad) + badTail)) return Float.NaN;
        float loss = m + (float) Math.log(sum) - st;
        if (g == null) return loss;
        // pass 2: dz = w·(e/Σe − [j = t])·(1 − (s/c)²)
        float k = w / sum;
        i = 0;
        if (capped) {
            for (; i < ub; i += S.length()) {
                var th = FloatVector.fromArray(S, scratch, i).mul(inv);
                FloatVector.fromArray(S, g, go + i).mul(k).mul(th.mul(th).neg().add(1f)).intoArray(g, go + i);
            }
            for (; i < v; i++) {
                float th = scratch[i] * inv;
                g[go + i] = g[go + i] * k * (1f - th * th);
            }
        } else {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, g, go + i).mul(k).intoArray(g, go + i);
            for (; i < v; i++) g[go + i] *= k;
        }
        float dt = capped ? 1f - (st * inv) * (st * inv) : 1f;
        g[go + t] -= w * dt;
        return loss;
    }

    /**
     * {@link #row} for the usual cap (0 < c ≤ 40, so m = c needs no max pass), with one exponential less per element.
     * With q = 2/(e^{2z/c} + 1): c·tanh(z/c) = c·(1 − q), so s − m = −c·q and the softcap's derivative
     * 1 − (s/c)² = q·(2 − q). Pass 1 computes E = e^{2z/c}, q and e = e^{−c·q} (no tanh, whose small-|x| branch
     * and blends cost as much as an exp) and keeps q in scratch; pass 2 forms dz = w·(e/Σe)·q·(2 − q). s itself is
     * only needed at the target, for the loss, and is computed there with tanh.
     */
    private static float cappedRow(float[] z, int zo, int v, int t, float cap, float w, float[] g, int go, float[] scratch) {
        float twoInv = 2f / cap, negCap = -cap;
        float st = cap * VecMath.tanh(z[zo + t] * (1f / cap));       // before pass 1: g may alias z
        int ub = S.loopBound(v);
        // pass 1 in two loops, each its own compilation (JitInlining keeps them out of line): in one compilation the
        // two vector exponentials reached C2's inlining node limit, and the helpers left as calls ran on boxed vectors
        // (the softcap + CE then took 3–4× as long at AVX2 and 128 bits)
        boolean finite = cappedQ(z, zo, ub, twoInv, scratch);
        float sum = cappedE(scratch, ub, negCap, g, go);
        float badTail = 0f;
        for (int i = ub; i < v; i++) {
            float zz = z[zo + i];
            badTail += zz * 0f;
            float q = 2f / (VecMath.exp(zz * twoInv) + 1f);
            float e = VecMath.expNonPositive(q * negCap);
            if (g != null) {
                scratch[i] = q;
                g[go + i] = e;
            }
            sum += e;
        }
        if (!finite || Float.isNaN(badTail)) return Float.NaN;
        float loss = cap + (float) Math.log(sum) - st;
        if (g == null) return loss;
        float k = w / sum;
        cappedGrads(g, go, ub, scratch, k);
        for (int i = ub; i < v; i++) {
            float q = scratch[i];
            g[go + i] = g[go + i] * k * (q * (2f - q));
        }
        float qt = scratch[t];
        g[go + t] -= w * (qt * (2f - qt));
        return loss;
    }

    /** q = 2/(e^{2z/c} + 1) → scratch over [0, ub); false if one of these logits is NaN or infinite (z·0 is NaN). */
    private static boolean cappedQ(float[] z, int zo, int ub, float twoInv, float[] scratch) {
        float[] bad = new float[S.length()];                    // lane sums in memory: see cappedE
        var vTwoInv = FloatVector.broadcast(S, twoInv);
        var two = FloatVector.broadcast(S, 2f);
        var one = FloatVector.broadcast(S, 1f);
        for (int i = 0; i < ub; i += S.length()) {
            var zv = FloatVector.fromArray(S, z, zo + i);
            FloatVector.fromArray(S, bad, 0).add(zv.mul(0f)).intoArray(bad, 0);
            two.div(VecMath.exp(zv.mul(vTwoInv)).add(one)).intoArray(scratch, i);
        }
        return !Float.isNaN(VecMath.sum(bad));
    }

    /**
     * e = e^{−c·q} over q in scratch [0, ub) → g (when g != null); returns Σe. The lane sums live in a small array,
     * not in a vector carried around the loop: C2 boxed such an accumulator (and each e) on every iteration when the
     * reduction after the loop went through a call it only devirtualized late (1.8 GB of boxes per 4096-row fused
     * lm_head + CE at AVX2). Same lane sums, same reduction tree, same bits.
     */
    private static float cappedE(float[] scratch, int ub, float negCap, float[] g, int go) {
        float[] acc = new float[S.length()];
        var vNegCap = FloatVector.broadcast(S, negCap);
        for (int i = 0; i < ub; i += S.length()) {
            var ev = VecMath.expNonPositive(FloatVector.fromArray(S, scratch, i).mul(vNegCap)); // q ∈ [0, 2], c ≤ 40
            if (g != null) ev.intoArray(g, go + i);
            FloatVector.fromArray(S, acc, 0).add(ev).intoArray(acc, 0);
        }
        return VecMath.sum(acc);
    }

    /** Pass 2 of {@link #cappedRow} over its whole vectors: g = g·k·q·(2 − q), q from scratch (its own compilation too). */
    private static void cappedGrads(float[] g, int go, int ub, float[] scratch, float k) {
        var vk = FloatVector.broadcast(S, k);
        var two = FloatVector.broadcast(S, 2f);
        for (int i = 0; i < ub; i += S.length()) {
            var q = FloatVector.fromArray(S, scratch, i);
            FloatVector.fromArray(S, g, go + i).mul(vk).mul(q.mul(two.sub(q))).intoArray(g, go + i);
        }
    }

    /**
     * Rows of logits (n, v) at zo (row stride v); losses[r] per row (0 for ignored); g (n, v) gets the gradient
     * when non-null (may alias z). weights: null → every row weight wAll, else weights[r]. Throws on a bad
     * target or a non-finite logit.
     */
    static void rows(float[] z, int zo, int n, int v, int[] targets, int to, float cap, float wAll, float[] weights, int wo,
                     float[] losses, int lo, float[] g, int go, int rowBase, String op) {
        rows(z, zo, n, v, v, targets, to, cap, wAll, weights, wo, losses, lo, g, go, rowBase, op);
    }

    /** {@link #rows} with logit and gradient rows {@code ld} floats apart (ld ≥ v). */
    private static void rows(float[] z, int zo, int n, int v, int ld, int[] targets, int to, float cap, float wAll,
                             float[] weights, int wo, float[] losses, int lo, float[] g, int go, int rowBase, String op) {
        Parallel.forRange(n, (s, e) -> {
            float[] scratch = new float[v];
            for (int r = s; r < e; r++) {
                int t = targets[to + r];
                if (t == -1) {
                    losses[lo + r] = 0f;
                    if (g != null) java.util.Arrays.fill(g, go + r * ld, go + r * ld + v, 0f);
                    continue;
                }
                if (t < 0 || t >= v) {
                    throw new IllegalArgumentException(op + ": target " + t + " at row " + (rowBase + r)
                            + " is outside [0, " + v + ") (use -1 to ignore a position)");
                }
                float w = weights == null ? wAll : weights[wo + r];
                float loss = row(z, zo + r * ld, v, t, cap, w, g, g == null ? 0 : go + r * ld, scratch);
                if (Float.isNaN(loss)) {
                    throw new IllegalArgumentException(op + ": non-finite logit in row " + (rowBase + r) + " (vocab " + v + ")");
                }
                losses[lo + r] = loss;
            }
        });
    }

    /**
     * lm_head + softcap + CE over row chunks. x (n, c) at xo, W (vpad, c) at wo, targets (n). losses (n) get the
     * per-row losses. With dx/dW non-null, dx (n, c) and dW (vpad, c) (overwritten) get the gradient of
     * Σ_r weight_r·loss_r. chunkRows ≤ 0 picks the rows that fill {@link #CHUNK_FLOATS}.
     */
    static void linear(float[] x, int xo, float[] w, int wo, int n, int c, int vpad, int vocab, int[] targets, int to,
                       float cap, float wAll, float[] weights, float[] losses, float[] dx, float[] dW, int chunkRows, String op) {
        boolean grad = dx != null;
        int chunk = Math.max(1, Math.min(n, chunkRows > 0 ? chunkRows : CHUNK_FLOATS / Math.max(vocab, 1)));
        // Chunk rows one cache line longer than the vocab when it is a multiple of 1,024 (4 KiB rows), so the weight
        // gradient reads the chunk's transposed logits gradient in place instead of packing it (Gemm): 13% faster.
        int ld = Gemm.readsTransposedADirectly(vocab) ? vocab : vocab + 16;
        float[] buf = Recycler.take(chunk * ld);   // 134 MB at 4096 rows × 32768: from the step's pool, not cleared
        // the padding rows; the first chunk overwrites the rest (beta 0)
        if (grad) java.util.Arrays.fill(dW, n == 0 ? 0 : vocab * c, vpad * c, 0f);
        for (int r0 = 0; r0 < n; r0 += chunk) {
            int rr = Math.min(chunk, n - r0);
            Gemm.sgemm(false, true, rr, vocab, c, 1f, x, xo + r0 * c, c, w, wo, c, 0f, buf, 0, ld);
            rows(buf, 0, rr, vocab, ld, targets, to + r0, cap, wAll, weights, r0, losses, r0, grad ? buf : null, 0, r0, op);
            if (!grad) continue;
            Gemm.sgemm(false, false, rr, c, vocab, 1f, buf, 0, ld, w, wo, c, 0f, dx, r0 * c, c);
            Gemm.sgemm(true, false, vocab, c, rr, 1f, buf, 0, ld, x, xo + r0 * c, c, r0 == 0 ? 0f : 1f, dW, 0, c);
        }
        Recycler.give(buf);
    }
}
