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
