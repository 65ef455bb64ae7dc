package nanochat4j.tensor;

import java.util.Arrays;

/**
 * Argument checks and shape arithmetic that every backend applies the same way, so the CPU and CUDA backends refuse
 * the same bad input with the same message.
 */
public final class OpChecks {
    private OpChecks() {}

    public static void positiveCap(String op, float cap) {
        if (!(cap > 0f) || Float.isInfinite(cap)) throw new IllegalArgumentException(op + ": cap must be a finite positive number, got " + cap);
    }

    /**
     * Flash attention's sizes, q (B,T,H,D) and k/v (B,T,KV,D), and its scale. An empty size would leave lse unwritten
     * (a row over no keys has no log-sum-exp); a scale that is not finite and positive makes the softmax NaN or flat.
     * {@code op} is "forward" or "backward".
     */
    public static void attention(String op, int B, int T, int H, int KV, int D, float scale) {
        String shapes = attentionShapes(B, T, H, KV, D);
        if (B < 1 || T < 1 || H < 1 || KV < 1 || D < 1)
            throw new IllegalArgumentException("attention " + op + ": sizes must be positive, got " + shapes);
        if (H % KV != 0)
            throw new IllegalArgumentException("attention " + op + ": H % KV != 0 (query heads must split evenly over kv heads), got " + shapes);
        attentionScale(op, scale);
    }

    /** The KV-cache form: q (B,Tq,H,D) at positions pos..pos+Tq-1 against caches (B,Tmax,KV,D). */
    public static void attentionCached(int B, int Tq, int Tmax, int pos, int H, int KV, int D, float scale) {
        String shapes = attentionCachedShapes(B, Tq, Tmax, pos, H, KV, D);
        if (B < 1 || Tq < 1 || Tmax < 1 || H < 1 || KV < 1 || D < 1 || pos < 0)
            throw new IllegalArgumentException("attention forwardCached: sizes must be positive and pos >= 0, got " + shapes);
        if (H % KV != 0) throw new IllegalArgumentException("attention forwardCached: H % KV != 0, got " + shapes);
        if ((long) pos + Tq > Tmax)
            throw new IllegalArgumentException("attention forwardCached: pos + Tq > Tmax (cache overflow), got " + shapes);
        attentionScale("forwardCached", scale);
    }

    private static void attentionScale(String op, float scale) {
        if (!(scale > 0 && Float.isFinite(scale)))
            throw new IllegalArgumentException("attention " + op + ": scale must be positive and finite, got " + scale);
    }

    /** The sizes of a (non-cached) attention call, for messages. */
    public static String attentionShapes(int B, int T, int H, int KV, int D) {
        return "B=" + B + " T=" + T + " H=" + H + " KV=" + KV + " D=" + D + " (q,y (B,T,H,D), k,v (B,T,KV,D), lse (B,H,T))";
    }

    /** The sizes of a KV-cache attention call, for messages. */
    public static String attentionCachedShapes(int B, int Tq, int Tmax, int pos, int H, int KV, int D) {
        return "B=" + B + " Tq=" + Tq + " Tmax=" + Tmax + " pos=" + pos + " H=" + H + " KV=" + KV + " D=" + D
                + " (q,y (B,Tq,H,D), kCache,vCache (B,Tmax,KV,D))";
    }

    /**
     * Shapes of the fused lm_head loss: x (N, C), W (Vpad, C), the first {@code vocab} rows of W real. C = 0 is
     * refused: with no features every logit is 0, which no model means, and GEMMs over an empty inner dimension are
     * where backends differ (an unwritten logits buffer, a refused leading dimension).
     */
    public static void linearCe(String op, Tensor x, Tensor w, int vocab) {
        if (x.rank() != 2 || w.rank() != 2 || x.shape(1) != w.shape(1)) throw bad(op, "need x (N, C) and W (Vpad, C)", x, w);
        if (x.shape(1) < 1) throw bad(op, "need C >= 1 (x (N, C) has no features)", x, w);
        if (vocab < 1 || vocab > w.shape(0)) throw bad(op, "vocab " + vocab + " must be in [1, Vpad]", x, w);
    }

    // ------------------------------------------------------------------ shapes of each op (dtypes and devices: the backend's)

    /** The dims of a (batched) matmul C = op(A)·op(B); a 2-d operand serves every batch entry (not batched). */
    public record Matmul(int batch, int m, int n, int k, boolean batchedA, boolean batchedB, int[] outShape) {
        /** Elements from one batch entry of A to the next (0: shared). */
        public long strideA() {
            return batchedA ? (long) m * k : 0;
        }

        /** Elements from one batch entry of B to the next (0: shared). */
        public long strideB() {
            return batchedB ? (long) k * n : 0;
        }
    }

    /** Both at least 2-d, inner dims equal, batch dims equal where both have them. */
    public static Matmul matmul(String op, Tensor a, boolean transA, Tensor b, boolean transB) {
        if (a.rank() < 2 || b.rank() < 2) throw bad(op, "operands must be at least 2-d", a, b);
        int ar = a.rank(), br = b.rank();
        int m = transA ? a.shape(-1) : a.shape(-2), ka = transA ? a.shape(-2) : a.shape(-1);
        int kb = transB ? b.shape(-1) : b.shape(-2), n = transB ? b.shape(-2) : b.shape(-1);
        if (ka != kb) throw bad(op, "inner dims differ (" + ka + " vs " + kb + ", transA=" + transA + ", transB=" + transB + ")", a, b);
        int[] aLead = Arrays.copyOf(a.shape(), ar - 2), bLead = Arrays.copyOf(b.shape(), br - 2);
        int[] lead;
        if (br == 2) lead = aLead;
        else if (ar == 2) lead = bLead;
        else if (Arrays.equals(aLead, bLead)) lead = aLead;
        else throw bad(op, "batch dims differ", a, b);
        int[] out = Arrays.copyOf(lead, lead.length + 2);
        out[lead.length] = m;
        out[lead.length + 1] = n;
        return new Matmul(Tensor.numel(lead), m, n, ka, ar > 2, br > 2, out);
    }

    /** linear: x (..., in) and W (out, in); y's shape (..., out). */
    public static int[] linear(Tensor x, Tensor w) {
        if (w.rank() != 2 || x.rank() < 1 || x.shape(-1) != w.shape(1)) throw bad("linear", "need x (..., in) and W (out, in)", x, w);
        return withLast(x, w.shape(0));
    }

    /** linearBackwardInput: dy (..., out) and W (out, in); dx's shape (..., in). */
    public static int[] linearBackwardInput(Tensor dy, Tensor w) {
        if (w.rank() != 2 || dy.rank() < 1 || dy.shape(-1) != w.shape(0)) throw bad("linearBackwardInput", "need dy (..., out) and W (out, in)", dy, w);
        return withLast(dy, w.shape(1));
    }

    /** linearBackwardWeight: dy (..., out) and x (..., in) with the same rows, dW (out, in). */
    public static void linearBackwardWeight(Tensor dy, Tensor x, Tensor dW) {
        if (dW.rank() != 2 || dy.rank() < 1 || x.rank() < 1 || dy.shape(-1) != dW.shape(0) || x.shape(-1) != dW.shape(1)
                || dy.rows() != x.rows()) {
            throw bad("linearBackwardWeight", "need dy (..., out), x (..., in) with the same rows, dW (out, in)", dy, x, dW);
        }
    }

    private static int[] withLast(Tensor x, int last) {
        int[] s = x.shape();
        s[s.length - 1] = last;
        return s;
    }

    /** x (B, T, H, D) with even D; cos/sin (Tmax, D/2) holding positions offset..offset+T−1. */
    public static void rotary(String op, Tensor x, Tensor cos, Tensor sin, int offset) {
        if (x.rank() != 4 || x.shape(3) % 2 != 0) throw bad(op, "x must be (B, T, H, D) with even D", x);
        int t = x.shape(1), d = x.shape(3);
        if (cos.rank() != 2 || !cos.sameShape(sin) || cos.shape(1) != d / 2) throw bad(op, "cos/sin must both be (Tmax, D/2)", x, cos, sin);
        if (offset < 0 || offset + t > cos.shape(0)) {
            throw bad(op, "positions " + offset + ".." + (offset + t - 1) + " exceed the tables' " + cos.shape(0) + " rows", x, cos);
        }
    }

    /** NumPy's broadcast of two shapes, or null when they do not broadcast. */
    public static int[] broadcastShape(int[] a, int[] b) {
        int r = Math.max(a.length, b.length);
        int[] out = new int[r];
        for (int i = 0; i < r; i++) {
            int da = i < r - a.length ? 1 : a[i - (r - a.length)];
            int db = i < r - b.length ? 1 : b[i - (r - b.length)];
            if (da != db && da != 1 && db != 1) return null;
            out[i] = da == 1 ? db : da;
        }
        return out;
    }

    /** The shape of an elementwise op of a and b (their broadcast). */
    public static int[] broadcast(String op, Tensor a, Tensor b) {
        int[] out = broadcastShape(a.shape(), b.shape());
        if (out == null) throw bad(op, "shapes do not broadcast", a, b);
        return out;
    }

    /** sumToShape: {@code shape} broadcasts to x's shape. */
    public static void sumToShape(Tensor x, int[] shape) {
        int[] bs = broadcastShape(x.shape(), shape);
        if (bs == null || !Arrays.equals(bs, x.shape())) {
            throw new IllegalArgumentException("sumToShape: " + Arrays.toString(shape) + " does not broadcast to x " + x);
        }
    }

    /** A tensor that holds one number (lambdaMix's weights). */
    public static void oneElement(String op, String name, Tensor s) {
        if (s.numel() != 1) throw bad(op, name + " must have exactly one element", s);
    }

    public static void clamp(Tensor x, float lo, float hi) {
        if (!(lo <= hi)) throw new IllegalArgumentException("clamp: lo " + lo + " > hi " + hi + " for " + x);
    }

    public static void rowNorms(Tensor x) {
        if (x.rank() < 1) throw bad("rowNorms", "needs at least 1 dim", x);
    }

    public static void argmax(Tensor x) {
        if (x.rank() < 1 || x.cols() == 0) throw bad("argmax", "needs a non-empty last dim", x);
    }

    /** narrow: [start, start + length) within dim; returns the dim counted from 0. */
    public static int narrow(Tensor x, int dim, int start, int length) {
        int d = dim("narrow", x, dim), size = x.shape(d);
        if (start < 0 || length < 0 || start + length > size) {
            throw bad("narrow", "range [" + start + ", " + (start + length) + ") outside dim " + d + " of size " + size, x);
        }
        return d;
    }

    /** narrowBackward: dy's extent along dim from start fits in fullSize; returns the dim counted from 0. */
    public static int narrowBackward(Tensor dy, int dim, int start, int fullSize) {
        int d = dim("narrowBackward", dy, dim), len = dy.shape(d);
        if (start < 0 || start + len > fullSize) {
            throw bad("narrowBackward", "range [" + start + ", " + (start + len) + ") outside full size " + fullSize, dy);
        }
        return d;
    }

    /** concat: at least one part, all of one rank and equal outside dim; returns the output's shape. */
    public static int[] concat(int dim, Tensor... parts) {
        if (parts.length == 0) throw new IllegalArgumentException("concat: no tensors");
        Tensor first = parts[0];
        int d = dim("concat", first, dim);
        int total = 0;
        for (Tensor p : parts) {
            if (p.rank() != first.rank()) throw bad("concat", "ranks differ", parts);
            for (int i = 0; i < p.rank(); i++) {
                if (i != d && p.shape(i) != first.shape(i)) throw bad("concat", "shapes differ outside dim " + d, parts);
            }
            total += p.shape(d);
        }
        int[] s = first.shape();
        s[d] = total;
        return s;
    }

    /** narrowAssign: src like dst outside dim, and [start, start + src's extent) within dst's dim; returns the dim. */
    public static int narrowAssign(String op, Tensor dst, int dim, int start, Tensor src) {
        int d = dim(op, dst, dim);
        if (src.rank() != dst.rank()) throw bad(op, "ranks differ", dst, src);
        for (int i = 0; i < dst.rank(); i++) {
            if (i != d && src.shape(i) != dst.shape(i)) throw bad(op, "shapes differ outside dim " + d, dst, src);
        }
        int len = src.shape(d), size = dst.shape(d);
        if (start < 0 || start + len > size) {
            throw bad(op, "range [" + start + ", " + (start + len) + ") outside dim " + d + " of size " + size, dst, src);
        }
        return d;
    }

    /** embedding: the table is (V, E); returns the output's shape (ids..., E). */
    public static int[] embedding(Tensor table, Tensor ids) {
        if (table.rank() != 2) throw bad("embedding", "table must be (V, E)", table, ids);
        int[] s = Arrays.copyOf(ids.shape(), ids.rank() + 1);
        s[ids.rank()] = table.shape(1);
        return s;
    }

    /** embeddingBackward: dy (ids..., E) and dTable (V, E). */
    public static void embeddingBackward(Tensor dy, Tensor ids, Tensor dTable) {
        if (dTable.rank() != 2 || dy.rank() != ids.rank() + 1 || dy.cols() != dTable.shape(1)
                || !Arrays.equals(Arrays.copyOf(dy.shape(), ids.rank()), ids.shape())) {
            throw bad("embeddingBackward", "need dy (ids..., E), dTable (V, E)", dy, ids, dTable);
        }
    }

    /** Attention's q (B,T,H,D) and k, v (B,T,KV,D), H a multiple of KV ({@link #attention} then checks the sizes). */
    public static void qkv(String op, Tensor q, Tensor k, Tensor v) {
        if (q.rank() != 4 || k.rank() != 4 || !k.sameShape(v)) throw bad(op, "need q (B,T,H,D), k and v (B,T,KV,D)", q, k, v);
        if (q.shape(0) != k.shape(0) || q.shape(1) != k.shape(1) || q.shape(3) != k.shape(3)
                || k.shape(2) == 0 || q.shape(2) % k.shape(2) != 0) {
            throw bad(op, "B, T, D must match and H must be a multiple of KV", q, k, v);
        }
    }

    /** The attention backward's forward output y and its gradient dy, both like q, and lse (B,H,T). */
    public static void attentionBackward(String op, Tensor q, Tensor y, Tensor lse, Tensor dy) {
        if (!y.sameShape(q) || !dy.sameShape(q) || !lse.hasShape(q.shape(0), q.shape(2), q.shape(1))) {
            throw bad(op, "need y, dy like q and lse (B,H,T)", q, y, dy, lse);
        }
    }

    /**
     * The KV-cache form's q (B,Tq,H,D) and caches (B,Tmax,KV,D) of q's B and D; with {@link #attentionCached} for the
     * sizes, the GQA split, the positions and the scale.
     */
    public static void caches(String op, Tensor q, Tensor kCache, Tensor vCache) {
        if (q.rank() != 4 || kCache.rank() != 4 || !kCache.sameShape(vCache)) throw bad(op, "need q (B,Tq,H,D), caches (B,Tmax,KV,D)", q, kCache, vCache);
        if (kCache.shape(0) != q.shape(0) || kCache.shape(3) != q.shape(3)) throw bad(op, "B and D of q and the caches must match", q, kCache, vCache);
    }

    /** crossEntropy: logits (N, V) with V > 0. */
    public static void logits(String op, Tensor logits, Tensor targets) {
        if (logits.rank() != 2 || logits.shape(1) == 0) throw bad(op, "logits must be (N, V) with V > 0", logits, targets);
    }

    /** A loss's targets: (n), one a row of {@code other} (the logits, or x of the fused lm_head loss). */
    public static void targets(String op, Tensor targets, int n, Tensor other) {
        if (targets.rank() != 1 || targets.shape(0) != n) throw bad(op, "targets must be (" + n + ")", other, targets);
    }

    /** The fused loss backward's per-row weights: one per row of x. */
    public static void rowGrad(String op, Tensor x, Tensor rowGrad) {
        if (rowGrad.numel() != x.shape(0)) throw bad(op, "rowGrad must have N elements", x, rowGrad);
    }

    public static int[] dropLast(Tensor x) {
        return Arrays.copyOf(x.shape(), Math.max(0, x.rank() - 1));
    }

    public static int dim(String op, Tensor x, int dim) {
        int d = dim < 0 ? dim + x.rank() : dim;
        if (d < 0 || d >= x.rank()) throw bad(op, "dim " + dim + " out of range", x);
        return d;
    }

    public static int outer(int[] s, int d) {
        int n = 1;
        for (int i = 0; i < d; i++) n *= s[i];
        return n;
    }

    public static int inner(int[] s, int d) {
        int n = 1;
        for (int i = d + 1; i < s.length; i++) n *= s[i];
        return n;
    }

    public static void same(String op, Tensor a, Tensor b) {
        if (!a.sameShape(b)) throw bad(op, "shapes must be equal", a, b);
    }

    /** Every tensor holds as many elements as the first (in-place updates over flat state). */
    public static void sameCount(String op, Tensor... ts) {
        for (Tensor t : ts) if (t.numel() != ts[0].numel()) throw bad(op, "element counts must be equal", ts);
    }

    public static IllegalArgumentException bad(String op, String why, Tensor... ts) {
        StringBuilder sb = new StringBuilder(op).append(": ").append(why).append(" (got");
        for (Tensor t : ts) sb.append(' ').append(t == null ? "null" : Arrays.toString(t.shape()));
        return new IllegalArgumentException(sb.append(')').toString());
    }
}
