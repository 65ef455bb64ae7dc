package nanochat4j.train.optim;

import nanochat4j.tensor.cpu.AdamWKernel;

/**
 * AdamW's per-step scalars and the update over the optimizer's own arrays (the kernel is {@link AdamWKernel}, shared
 * with the CPU backend's {@code adamw}). Notable: the hyperparameters become fp32 scalars first (nanochat keeps them
 * in 0-D fp32 tensors).
 */
final class AdamW {
    private AdamW() {}

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

    /** Updates n elements in place: p[pOff..], reading g[gOff..], moments m[sOff..] and v[sOff..]. */
    static void update(float[] p, int pOff, float[] g, int gOff, float[] m, float[] v, int sOff, int n, Scalars s) {
        AdamWKernel.update(p, pOff, g, gOff, m, v, sOff, n, s.decay(), s.w1(), s.w2(), s.bias2(), s.eps(), s.stepSize());
    }
}
