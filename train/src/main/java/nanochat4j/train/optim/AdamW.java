package nanochat4j.train.optim;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * The fused AdamW update kernel (decoupled weight decay, bias-corrected moments), as nanochat's adamw_step_fused:
 * <pre>
 *   p ← p·(1 − lr·wd);  m ← lerp(m, g, 1−β1);  v ← lerp(v, g², 1−β2)
 *   p ← p − (lr/(1−β1^t)) · m / (sqrt(v/(1−β2^t)) + eps)
 * </pre>
 * Notable: the hyperparameters become fp32 scalars first (nanochat keeps them in 0-D fp32 tensors), and every
 * elementwise product/sum is rounded in the order PyTorch rounds it; {@code lerp} is torch's two-branch form
 * (fused as torch's vectorised kernel does). One vectorised pass over p, g, m, v; large tensors split over the pool.
 */
final class AdamW {
    private AdamW() {}

    private static final VectorSpecies<Float> F = Vec.F;
    /** Elements per parallel task: below this the pool's hand-off costs more than the work. */
    private static final int GRAIN = 1 << 15;

    /** The fp32 scalars of one step (derived from the group's hyperparameters and the step count t ≥ 1). */
    record Scalars(float decay, float w1, float w2, float bias2, float eps, float stepSize) {
        static Scalars of(double lr, double beta1, double beta2, double eps, double weightDecay, long step) {
            if (step < 1) throw new IllegalArgumentException("AdamW step count must be >= 1, got " + step);
            float lrF = (float) lr, b1 = (float) beta1, b2 = (float) beta2, wd = (float) weightDecay;
            float t = (float) step;
            float bias1 = 1f - (float) Math.pow(b1, t);
            float bias2 = 1f - (float) Math.pow(b2, t);
            return new Scalars(1f - lrF * wd, 1f - b1, 1f - b2, bias2, (float) eps, lrF / bias1);
        }
    }

    /**
     * Updates n elements in place: p[pOff..], reading g[gOff..], moments m[sOff..] and v[sOff..].
     */
    static void update(float[] p, int pOff, float[] g, int gOff, float[] m, float[] v, int sOff, int n, Scalars s) {
        if (pOff < 0 || gOff < 0 || sOff < 0 || n < 0 || pOff + n > p.length || gOff + n > g.length
                || sOff + n > m.length || sOff + n > v.length) {
            throw new IllegalArgumentException("AdamW.update: range of " + n + " elements (p+" + pOff + ", g+" + gOff
                    + ", state+" + sOff + ") exceeds p[" + p.length + "], g[" + g.length + "], m[" + m.length
                    + "], v[" + v.length + "]");
        }
        Parallel.forRange(n, GRAIN, (start, end) -> kernel(p, pOff + start, g, gOff + start, m, v, sOff + start, end - start, s));
    }

    private static void kernel(float[] p, int pOff, float[] g, int gOff, float[] m, float[] v, int sOff, int n, Scalars s) {
        float decay = s.decay, w1 = s.w1, w2 = s.w2, bias2 = s.bias2, eps = s.eps, stepSize = s.stepSize;
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
    static float lerp(float a, float b, float w) {
        return Math.abs(w) < 0.5f ? Math.fma(w, b - a, a) : Math.fma(w - 1f, b - a, b);
    }

    /**
     * The same two branches, chosen by a blend rather than a conditional: C2 boxes vectors that merge at a branch
     * (a heap allocation per lane group, several GB per d6 step), but not a blend with a scalar-made mask.
     */
    static FloatVector lerp(FloatVector a, FloatVector b, float w) {
        boolean low = Math.abs(w) < 0.5f;
        FloatVector base = a.blend(b, a.species().maskAll(!low)); // a when |w| < 0.5, else b
        return b.sub(a).fma(FloatVector.broadcast(a.species(), low ? w : w - 1f), base);
    }
}
