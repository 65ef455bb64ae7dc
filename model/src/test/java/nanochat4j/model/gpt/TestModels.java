package nanochat4j.model.gpt;

import java.util.SplittableRandom;
import nanochat4j.autograd.Parameter;

/** Models for the tests of every module (this module's test-jar). */
public final class TestModels {
    private TestModels() {}

    /**
     * init + a perturbation like the fixture's 'pert' case, so every path carries signal. At init the projections into
     * the residual stream (c_proj) are zero: each block passes its input through, c_q/c_k/c_v/c_fc get no gradient, and
     * since the final norm makes the loss blind to the stream's scale, the lambdas' gradients are exactly zero — a
     * comparison of two devices' gradients there compares rounding noise.
     */
    public static GPT perturbed(GPTConfig cfg, long seed) {
        GPT m = GPT.create(cfg, seed);
        SplittableRandom r = new SplittableRandom(seed + 1);
        for (Parameter p : m.parameters()) {
            if (p.name().endsWith("c_proj.weight") || p.name().equals("smear_lambda") || p.name().equals("lm_head.weight")) {
                float[] a = p.tensor().floats();
                for (int i = 0; i < p.numel(); i++) a[p.tensor().offset() + i] = (float) (r.nextGaussian() * 0.1);
            }
        }
        return m;
    }
}
