package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Elementwise kernels over flat fp32 ranges (array + offset + count), forward and backward side by side:
 * relu², sigmoid, softcap, scale/axpy/axpby, lerp, sqrt/rsqrt, clamp. All use {@link Vec#F} with a scalar tail and
 * split long ranges over {@link Parallel}; the public {@code …Range} forms run one range on the calling thread, for
 * kernels that schedule their own threads. exp/tanh/sigmoid are {@link VecMath}'s (the same bits in every JIT tier).
 */
public final class Elementwise {
    private Elementwise() {}

    private static final VectorSpecies<Float> S = Vec.F;
    /** Elements per parallel task: small ranges stay on the calling thread. */
    static final int GRAIN = 1 << 15;

    // relu²:  y = max(x,0)²          dx = 2·max(x,0)·dy
    static void relu2(float[] x, int xo, float[] y, int yo, int n) {
        Parallel.forRange(n, GRAIN, (s, e) -> relu2Range(x, xo + s, y, yo + s, e - s));
    }

    public static void relu2Range(float[] x, int xo, float[] y, int yo, int n) {
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            var r = FloatVector.fromArray(S, x, xo + i).max(0f);
            r.mul(r).intoArray(y, yo + i);
        }
        for (; i < n; i++) { float r = Math.max(x[xo + i], 0f); y[yo + i] = r * r; }
    }

    static void relu2Backward(float[] x, int xo, float[] dy, int dyo, float[] dx, int dxo, int n) {
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                var r = FloatVector.fromArray(S, x, xo + i).max(0f);
                r.mul(2f).mul(FloatVector.fromArray(S, dy, dyo + i)).intoArray(dx, dxo + i);
            }
            for (; i < e; i++) dx[dxo + i] = 2f * Math.max(x[xo + i], 0f) * dy[dyo + i];
        });
    }

    // sigmoid: y = 1/(1+exp(−x))     dx = dy·y·(1−y)
    static void sigmoid(float[] x, int xo, float[] y, int yo, int n) {
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                VecMath.sigmoid(FloatVector.fromArray(S, x, xo + i)).intoArray(y, yo + i);
            }
            for (; i < e; i++) y[yo + i] = sigmoid(x[xo + i]);
        });
    }

    static float sigmoid(float x) {
        return VecMath.sigmoid(x);
    }

    static void sigmoidBackward(float[] y, int yo, float[] dy, int dyo, float[] dx, int dxo, int n) {
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                var yv = FloatVector.fromArray(S, y, yo + i);
                yv.mul(yv.neg().add(1f)).mul(FloatVector.fromArray(S, dy, dyo + i)).intoArray(dx, dxo + i);
            }
            for (; i < e; i++) dx[dxo + i] = dy[dyo + i] * y[yo + i] * (1f - y[yo + i]);
        });
    }

    // tanh: y = tanh(x)               dx = dy·(1−y²)

    // softcap: y = cap·tanh(x/cap)   dx = dy·(1 − tanh²(x/cap))
    static void softcap(float[] x, int xo, float[] y, int yo, int n, float cap) {
        Parallel.forRange(n, GRAIN, (s, e) -> softcapRange(x, xo + s, y, yo + s, e - s, cap));
    }

    public static void softcapRange(float[] x, int xo, float[] y, int yo, int n, float cap) {
        float inv = 1f / cap;
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            VecMath.tanh(FloatVector.fromArray(S, x, xo + i).mul(inv)).mul(cap).intoArray(y, yo + i);
        }
        for (; i < n; i++) y[yo + i] = cap * VecMath.tanh(x[xo + i] * inv);
    }

    static void softcapBackward(float[] x, int xo, float[] dy, int dyo, float[] dx, int dxo, int n, float cap) {
        float inv = 1f / cap;
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                var t = VecMath.tanh(FloatVector.fromArray(S, x, xo + i).mul(inv));
                t.mul(t).neg().add(1f).mul(FloatVector.fromArray(S, dy, dyo + i)).intoArray(dx, dxo + i);
            }
            for (; i < e; i++) {
                float t = VecMath.tanh(x[xo + i] * inv);
                dx[dxo + i] = dy[dyo + i] * (1f - t * t);
            }
        });
    }

    // y = a·x + b·z (b = 0 never reads z; z may alias y)
    static void axpby(float a, float[] x, int xo, float b, float[] z, int zo, float[] y, int yo, int n) {
        Parallel.forRange(n, GRAIN, (s, e) -> axpbyRange(a, x, xo + s, b, z, zo + s, y, yo + s, e - s));
    }

    /** y[yo..yo+n) += a·x[xo..xo+n) with one fused multiply-add per element, on the calling thread. */
    public static void axpyRange(float a, float[] x, int xo, float[] y, int yo, int n) {
        var av = FloatVector.broadcast(S, a);
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) FloatVector.fromArray(S, x, xo + i).fma(av, FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
        for (; i < n; i++) y[yo + i] = Math.fma(x[xo + i], a, y[yo + i]);
    }

    public static void axpbyRange(float a, float[] x, int xo, float b, float[] z, int zo, float[] y, int yo, int n) {
        int i = 0, ub = S.loopBound(n);
        if (b == 0f) {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, x, xo + i).mul(a).intoArray(y, yo + i);
            for (; i < n; i++) y[yo + i] = a * x[xo + i];
        } else {
            for (; i < ub; i += S.length()) {
                FloatVector.fromArray(S, z, zo + i).mul(b).add(FloatVector.fromArray(S, x, xo + i).mul(a)).intoArray(y, yo + i);
            }
            for (; i < n; i++) y[yo + i] = a * x[xo + i] + b * z[zo + i];
        }
    }

    // torch.lerp: out = a + w·(b−a) if |w| < 0.5 else b − (b−a)·(1−w)
    static void lerp(float[] a, int ao, float[] b, int bo, float[] out, int oo, int n, float w) {
        boolean low = Math.abs(w) < 0.5f;
        float w1 = 1f - w;
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                var av = FloatVector.fromArray(S, a, ao + i);
                var bv = FloatVector.fromArray(S, b, bo + i);
                var d = bv.sub(av);
                (low ? av.add(d.mul(w)) : bv.sub(d.mul(w1))).intoArray(out, oo + i);
            }
            for (; i < e; i++) {
                float d = b[bo + i] - a[ao + i];
                out[oo + i] = low ? a[ao + i] + w * d : b[bo + i] - d * w1;
            }
        });
    }

    // y = sqrt(x), or 1/sqrt(x) when reciprocal
    static void sqrt(float[] x, int xo, float[] y, int yo, int n, boolean reciprocal) {
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            var one = FloatVector.broadcast(S, 1f);
            for (; i < ub; i += S.length()) {
                var r = FloatVector.fromArray(S, x, xo + i).sqrt();
                (reciprocal ? one.div(r) : r).intoArray(y, yo + i);
            }
            for (; i < e; i++) {
                float r = (float) Math.sqrt(x[xo + i]);
                y[yo + i] = reciprocal ? 1f / r : r;
            }
        });
    }

    static void clamp(float[] x, int xo, float[] y, int yo, int n, float lo, float hi) {
        Parallel.forRange(n, GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, x, xo + i).max(lo).min(hi).intoArray(y, yo + i);
            for (; i < e; i++) y[yo + i] = Math.min(Math.max(x[xo + i], lo), hi);
        });
    }
}
