package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fused AdamW update kernel (decoupled weight decay, bias-corrected moments), as nanochat's adamw_step_fused:
 * <pre>
 *   p ← p·decay;  m ← lerp(m, g, w1);  v ← lerp(v, g², w2)
 *   p ← p − stepSize · m / (sqrt(v/bias2) + eps)
 * </pre>
 * with decay = 1 − lr·wd, w1 = 1 − β1, w2 = 1 − β2, bias2 = 1 − β2^t, stepSize = lr/(1 − β1^t) as fp32 scalars made by
 * the caller (the optimizer's {@code AdamW.Scalars}). Every elementwise product/sum is rounded in the order PyTorch
 * rounds it; {@code lerp} is torch's two-branch form (fused as torch's vectorised kernel does), which optim.cu's
 * adamw_f32 reproduces bit for bit. One vectorised pass over p, g, m, v; large ranges split over the pool. The CPU
 * optimizer calls it on its own arrays, {@link CpuBackend#adamw} on tensors.
 */
public final class AdamWKernel {
    private AdamWKernel() {}

    private static final VectorSpecies<Float> F = Vec.F;
    /** Elements per parallel task: below this the pool's hand-off costs more than the work. */
    private static final int GRAIN = 1 << 15;

    /** Updates n elements in place: p[pOff..], reading g[gOff..], moments m[sOff..] and v[sOff..]. */
    public static void update(float[] p, int pOff, float[] g, int gOff, float[] m, float[] v, int sOff, int n,
                              float decay, float w1, float w2, float bias2, float eps, float stepSize) {
        if (pOff < 0 || gOff < 0 || sOff < 0 || n < 0 || pOff + n > p.length || gOff + n > g.length
                || sOff + n > m.length || sOff + n > v.length) {
            throw new IllegalArgumentException("AdamWKernel.update: range of " + n + " elements (p+" + pOff + ", g+" + gOff
                    + ", state+" + sOff + ") exceeds p[" + p.length + "], g[" + g.length + "], m[" + m.length
                    + "], v[" + v.length + "]");
        }
        Parallel.forRange(n, GRAIN, (start, end) -> kernel(p, pOff + start, g, gOff + start, m, v, sOff + start, end - start,
                decay, w1, w2, bias2, eps, stepSize));
    }

    private static void kernel(float[] p, int pOff, float[] g, int gOff, float[] m, float[] v, int sOff, int n,
                               float decay, float w1, float w2, float bias2, float eps, float stepSize) {
        int i = 0;
        int upper = F.loopBound(n);
        for (; i < upper; i += F.length()) {
            FloatVector pv = FloatVector.fromArray(F, p, pOff + i).mul(decay);
            FloatVector gv = FloatVector.fromArray(F, g, gOff + i);
            FloatVector mv = lerp(FloatVector.fromArray(F, m, sOff + i), gv, w1);
            FloatVector vv = lerp(FloatVector.fromArray(F, v, sOff + i), gv.mul(gv), w2);
            FloatVector denom = vv.div(bias2).sqrt().add(eps);
            pv = pv.sub(mv.div(denom).mul(stepSize));
            pv.intoArray(p, pOff + i);
            mv.intoArray(m, sOff + i);
            vv.intoArray(v, sOff + i);
        }
        for (; i < n; i++) {
            float pi = p[pOff + i] * decay;
            float gi = g[gOff + i];
            float mi = lerp(m[sOff + i], gi, w1);
            float vi = lerp(v[sOff + i], gi * gi, w2);
            float denom = (float) Math.sqrt(vi / bias2) + eps;
            p[pOff + i] = pi - (mi / denom) * stepSize;
            m[sOff + i] = mi;
            v[sOff + i] = vi;
        }
    }

    /** torch.lerp(a, b, w): a + w·(b−a) for |w| < 0.5, else b − (b−a)·(1−w); fused like torch's vector kernel. */
    public static float lerp(float a, float b, float w) {
        return Math.abs(w) < 0.5f ? Math.fma(w, b - a, a) : Math.fma(w - 1f, b - a, b);
    }

    /**
     * The same two branches, chosen by a blend rather than a conditional: C2 boxes vectors that merge at a branch
     * (a heap allocation per lane group, several GB per d6 step), but not a blend with a scalar-made mask.
     */
    public static FloatVector lerp(FloatVector a, FloatVector b, float w) {
        boolean low = Math.abs(w) < 0.5f;
        FloatVector base = a.blend(b, a.species().maskAll(!low)); // a when |w| < 0.5, else b
        return b.sub(a).fma(FloatVector.broadcast(a.species(), low ? w : w - 1f), base);
    }
}
