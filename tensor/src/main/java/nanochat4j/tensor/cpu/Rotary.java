package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Rotary position embedding, nanochat's convention: halves layout (x1 = x[:D/2], x2 = x[D/2:]), rotation by −θ.
 * x (B, T, H, D); cos/sin (Tmax, D/2), row t = angle t·inv_freq; position of x[:, t] is offset + t.
 * <pre>
 *   forward  (−θ):  y1 =  x1·cos + x2·sin      y2 = −x1·sin + x2·cos
 *   backward (+θ):  dx1 = dy1·cos − dy2·sin    dx2 =  dy1·sin + dy2·cos   (the transpose of the rotation)
 * </pre>
 * Both are one kernel with the sign of sin as a parameter. Tables follow nanochat in fp32:
 * inv_freq[i] = 1/base^(2i/D), angle = t·inv_freq[i] (fp32 product), cos/sin of that fp32 angle. {@link #head} is one
 * head at one position on the calling thread, for kernels that schedule their own threads.
 */
public final class Rotary {
    private Rotary() {}

    private static final VectorSpecies<Float> S = Vec.F;

    static void tables(int maxT, int d, double base, float[] cos, float[] sin) {
        int half = d / 2;
        float[] inv = new float[half];
        for (int i = 0; i < half; i++) {
            float expo = (float) (2 * i) / d;
            inv[i] = (float) (1.0 / (float) Math.pow(base, expo));
        }
        for (int t = 0; t < maxT; t++) {
            for (int i = 0; i < half; i++) {
                float angle = (float) t * inv[i];
                cos[t * half + i] = (float) Math.cos(angle);
                sin[t * half + i] = (float) Math.sin(angle);
            }
        }
    }

    /** sign = +1 forward (rotation by −θ), −1 backward (rotation by +θ). */
    static void apply(float[] x, int xo, float[] y, int yo, float[] cos, int co, float[] sin, int so,
                      int b, int t, int h, int d, int offset, float sign) {
        int half = d / 2;
        Parallel.forRange(b * t, Math.max(1, 4096 / Math.max(h * d, 1)), (s, e) -> {
            for (int bt = s; bt < e; bt++) {
                int pos = offset + bt % t;
                int cb = co + pos * half, sb = so + pos * half;
                for (int hh = 0; hh < h; hh++) {
                    int base = (bt * h + hh) * d;
                    head(x, xo + base, y, yo + base, cos, cb, sin, sb, half, sign);
                }
            }
        });
    }

    /**
     * One head of 2·half at x1 into y1 (may be in place) with the angles of one position (cos at cb, sin at sb);
     * sign as in {@link #apply}.
     */
    public static void head(float[] x, int x1, float[] y, int y1, float[] cos, int cb, float[] sin, int sb, int half, float sign) {
        int x2 = x1 + half, y2 = y1 + half;
        int i = 0, ub = S.loopBound(half);
        for (; i < ub; i += S.length()) {
            var c = FloatVector.fromArray(S, cos, cb + i);
            var sn = FloatVector.fromArray(S, sin, sb + i).mul(sign);
            var a = FloatVector.fromArray(S, x, x1 + i);
            var bb = FloatVector.fromArray(S, x, x2 + i);
            a.mul(c).add(bb.mul(sn)).intoArray(y, y1 + i);
            bb.mul(c).sub(a.mul(sn)).intoArray(y, y2 + i);
        }
        for (; i < half; i++) {
            float c = cos[cb + i], sn = sign * sin[sb + i], a = x[x1 + i], bb = x[x2 + i];
            y[y1 + i] = a * c + bb * sn;
            y[y2 + i] = bb * c - a * sn;
        }
    }
}
