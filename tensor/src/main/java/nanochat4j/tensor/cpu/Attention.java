package nanochat4j.tensor.cpu;

/**
 * Causal self-attention with GQA and a left sliding window: forward, backward and the KV-cache form.
 * Query head h reads kv head h/(H/KV); key j is visible to query i iff j <= i and (window < 0 or i - j <= window).
 * Never materializes a T×T matrix: each query row keeps an online softmax (running max and sum).
 */
public final class Attention {
    private Attention() {}

    // q (B,T,H,D), k/v (B,T,KV,D), y (B,T,H,D), lse (B,H,T)
    public static void forward(float[] q, float[] k, float[] v, float[] y, float[] lse,
                               int B, int T, int H, int KV, int D, int window, float scale) {
        checkForward("forward", q, k, v, y, lse, B, T, H, KV, D);
        int group = H / KV;
        Parallel.forRange(B * H, (start, end) -> {
            float[] acc = new float[D];
            for (int bh = start; bh < end; bh++) {
                int b = bh / H, h = bh % H, g = h / group;
                for (int i = 0; i < T; i++) {
                    int qo = ((b * T + i) * H + h) * D;
                    int lo = window < 0 ? 0 : Math.max(0, i - window);
                    float m = Float.NEGATIVE_INFINITY, l = 0f;
                    java.util.Arrays.fill(acc, 0f);
                    for (int j = lo; j <= i; j++) {
                        int ko = ((b * T + j) * KV + g) * D;
                        float s = 0f;
                        for (int d = 0; d < D; d++) s += q[qo + d] * k[ko + d];
                        s *= scale;
                        float mNew = Math.max(m, s);
                        float corr = (float) Math.exp(m - mNew), p = (float) Math.exp(s - mNew);
                        l = l * corr + p;
                        for (int d = 0; d < D; d++) acc[d] = acc[d] * corr + p * v[ko + d];
                        m = mNew;
                    }
                    float inv = 1f / l;
                    for (int d = 0; d < D; d++) y[qo + d] = acc[d] * inv;
                    lse[bh * T + i] = m + (float) Math.log(l);
                }
            }
        });
    }

    // overwrites dq/dk/dv; dy (B,T,H,D)
    public static void backward(float[] q, float[] k, float[] v, float[] y, float[] lse, float[] dy,
                                float[] dq, float[] dk, float[] dv,
                                int B, int T, int H, int KV, int D, int window, float scale) {
        checkForward("backward", q, k, v, y, lse, B, T, H, KV, D);
        checkLen("backward", "dy", dy, (long) B * T * H * D, B, T, H, KV, D);
        checkLen("backward", "dq", dq, (long) B * T * H * D, B, T, H, KV, D);
        checkLen("backward", "dk", dk, (long) B * T * KV * D, B, T, H, KV, D);
        checkLen("backward", "dv", dv, (long) B * T * KV * D, B, T, H, KV, D);
        int group = H / KV;
        Parallel.forRange(B * KV, (start, end) -> {
            for (int bg = start; bg < end; bg++) {
                int b = bg / KV, g = bg % KV;
                for (int j = 0; j < T; j++) {
                    int ko = ((b * T + j) * KV + g) * D;
                    java.util.Arrays.fill(dk, ko, ko + D, 0f);
                    java.util.Arrays.fill(dv, ko, ko + D, 0f);
                }
                for (int h = g * group; h < (g + 1) * group; h++) {
                    for (int i = 0; i < T; i++) {
                        int qo = ((b * T + i) * H + h) * D;
                        java.util.Arrays.fill(dq, qo, qo + D, 0f);
                        float di = 0f;
                        for (int d = 0; d < D; d++) di += dy[qo + d] * y[qo + d];
                        float li = lse[(b * H + h) * T + i];
                        int lo = window < 0 ? 0 : Math.max(0, i - window);
                        for (int j = lo; j <= i; j++) {
                            int ko = ((b * T + j) * KV + g) * D;
                            float s = 0f, dp = 0f;
                            for (int d = 0; d < D; d++) {
                                s += q[qo + d] * k[ko + d];
                                dp += dy[qo + d] * v[ko + d];
                            }
                            float p = (float) Math.exp(s * scale - li);
                            float ds = p * (dp - di) * scale;
                            for (int d = 0; d < D; d++) {
                                dv[ko + d] += p * dy[qo + d];
                                dq[qo + d] += ds * k[ko + d];
                                dk[ko + d] += ds * q[qo + d];
                            }
                        }
                    }
                }
            }
        });
    }

    // q (B,Tq,H,D) at positions pos..pos+Tq-1; kCache/vCache (B,Tmax,KV,D) hold keys 0..pos+Tq-1; y (B,Tq,H,D)
    public static void forwardCached(float[] q, float[] kCache, float[] vCache, float[] y,
                                     int B, int Tq, int Tmax, int pos, int H, int KV, int D, int window, float scale) {
        String shapes = "B=" + B + " Tq=" + Tq + " Tmax=" + Tmax + " pos=" + pos + " H=" + H + " KV=" + KV + " D=" + D;
        if (B < 1 || Tq < 1 || Tmax < 1 || H < 1 || KV < 1 || D < 1 || pos < 0)
            throw new IllegalArgumentException("attention forwardCached: sizes must be positive (pos >= 0), got " + shapes);
        if (H % KV != 0) throw new IllegalArgumentException("attention forwardCached: H % KV != 0, got " + shapes);
        if ((long) pos + Tq > Tmax)
            throw new IllegalArgumentException("attention forwardCached: pos + Tq > Tmax (cache overflow), got " + shapes);
        long qn = (long) B * Tq * H * D, cn = (long) B * Tmax * KV * D;
        if (q.length != qn) throw new IllegalArgumentException("attention forwardCached: q has " + q.length + " floats, expected " + qn + " (B,Tq,H,D) for " + shapes);
        if (y.length != qn) throw new IllegalArgumentException("attention forwardCached: y has " + y.length + " floats, expected " + qn + " (B,Tq,H,D) for " + shapes);
        if (kCache.length != cn) throw new IllegalArgumentException("attention forwardCached: kCache has " + kCache.length + " floats, expected " + cn + " (B,Tmax,KV,D) for " + shapes);
        if (vCache.length != cn) throw new IllegalArgumentException("attention forwardCached: vCache has " + vCache.length + " floats, expected " + cn + " (B,Tmax,KV,D) for " + shapes);
        int group = H / KV;
        Parallel.forRange(B * H, (start, end) -> {
            float[] acc = new float[D];
            for (int bh = start; bh < end; bh++) {
                int b = bh / H, h = bh % H, g = h / group;
                for (int t = 0; t < Tq; t++) {
                    int i = pos + t;
                    int qo = ((b * Tq + t) * H + h) * D;
                    int lo = window < 0 ? 0 : Math.max(0, i - window);
                    float m = Float.NEGATIVE_INFINITY, l = 0f;
                    java.util.Arrays.fill(acc, 0f);
                    for (int j = lo; j <= i; j++) {
                        int ko = ((b * Tmax + j) * KV + g) * D;
                        float s = 0f;
                        for (int d = 0; d < D; d++) s += q[qo + d] * kCache[ko + d];
                        s *= scale;
                        float mNew = Math.max(m, s);
                        float corr = (float) Math.exp(m - mNew), p = (float) Math.exp(s - mNew);
                        l = l * corr + p;
                        for (int d = 0; d < D; d++) acc[d] = acc[d] * corr + p * vCache[ko + d];
                        m = mNew;
                    }
                    float inv = 1f / l;
                    for (int d = 0; d < D; d++) y[qo + d] = acc[d] * inv;
                }
            }
        });
    }

    private static void checkForward(String op, float[] q, float[] k, float[] v, float[] y, float[] lse,
                                     int B, int T, int H, int KV, int D) {
        if (B < 1 || T < 1 || H < 1 || KV < 1 || D < 1)
            throw new IllegalArgumentException("attention " + op + ": sizes must be positive, got " + shapes(B, T, H, KV, D));
        if (H % KV != 0)
            throw new IllegalArgumentException("attention " + op + ": H % KV != 0 (query heads must split evenly over kv heads), got " + shapes(B, T, H, KV, D));
        checkLen(op, "q", q, (long) B * T * H * D, B, T, H, KV, D);
        checkLen(op, "k", k, (long) B * T * KV * D, B, T, H, KV, D);
        checkLen(op, "v", v, (long) B * T * KV * D, B, T, H, KV, D);
        checkLen(op, "y", y, (long) B * T * H * D, B, T, H, KV, D);
        checkLen(op, "lse", lse, (long) B * H * T, B, T, H, KV, D);
    }

    private static void checkLen(String op, String name, float[] a, long expected, int B, int T, int H, int KV, int D) {
        if (a == null) throw new IllegalArgumentException("attention " + op + ": " + name + " is null for " + shapes(B, T, H, KV, D));
        if (a.length != expected)
            throw new IllegalArgumentException("attention " + op + ": " + name + " has " + a.length + " floats, expected "
                    + expected + " for " + shapes(B, T, H, KV, D));
    }

    private static String shapes(int B, int T, int H, int KV, int D) {
        return "B=" + B + " T=" + T + " H=" + H + " KV=" + KV + " D=" + D
                + " (q,y (B,T,H,D), k,v (B,T,KV,D), lse (B,H,T))";
    }
}
