package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * rms_norm over the last dim without a weight (nanochat's {@code norm}), with an output scale (QK-norm uses 1.2).
 * x (rows, D):
 * <pre>
 *   r  = 1/sqrt(mean_j x_j² + eps)             eps = 1.1920929e-7 (fp32 machine epsilon, PyTorch's default)
 *   y  = s·r·x
 *   dx = s·r·(dy − x·r²·(Σ_j dy_j·x_j)/D)       (backward recomputes r from x: one extra dot per row)
 * </pre>
 * One pass to reduce, one to write; rows split over the pool ({@link #row} is one row on the calling thread, for
 * kernels that schedule their own threads).
 */
public final class RmsNorm {
    private RmsNorm() {}

    private static final VectorSpecies<Float> S = Vec.F;

    static void forward(float[] x, int xo, float[] y, int yo, int rows, int d, float scale, float eps) {
        Parallel.forRange(rows, grain(d), (s, e) -> {
            for (int r = s; r < e; r++) row(x, xo + r * d, y, yo + r * d, d, scale, eps);
        });
    }

    /** y[yo..yo+d) = scale·x/√(mean x² + eps) over one row of d (in place when y, yo are x, xo). */
    public static void row(float[] x, int xb, float[] y, int yb, int d, float scale, float eps) {
        float k = scale * rstd(x, xb, d, eps);
        int i = 0, ub = S.loopBound(d);
        for (; i < ub; i += S.length()) FloatVector.fromArray(S, x, xb + i).mul(k).intoArray(y, yb + i);
        for (; i < d; i++) y[yb + i] = x[xb + i] * k;
    }

    static void backward(float[] x, int xo, float[] dy, int dyo, float[] dx, int dxo, int rows, int d, float scale, float eps) {
        Parallel.forRange(rows, grain(d), (s, e) -> {
            for (int r = s; r < e; r++) {
                int xb = xo + r * d, gb = dyo + r * d, ob = dxo + r * d;
                float rs = rstd(x, xb, d, eps);
                float dot = Vec.dot(dy, gb, x, xb, d);
                float a = scale * rs;                       // coefficient of dy
                float b = -scale * rs * rs * rs * dot / d;  // coefficient of x
                int i = 0, ub = S.loopBound(d);
                for (; i < ub; i += S.length()) {
                    FloatVector.fromArray(S, x, xb + i).mul(b).add(FloatVector.fromArray(S, dy, gb + i).mul(a)).intoArray(dx, ob + i);
                }
                for (; i < d; i++) dx[ob + i] = a * dy[gb + i] + b * x[xb + i];
            }
        });
    }

    private static float rstd(float[] x, int xb, int d, float eps) {
        return (float) (1.0 / Math.sqrt(Vec.dot(x, xb, x, xb, d) / d + eps));
    }


    private static int grain(int d) {
        return Math.max(1, 8192 / Math.max(d, 1));
    }
}
