package nanochat4j.train.optim;

/**
 * nanochat base_train's schedules, as functions of the optimizer step index {@code it} (0-based) over a horizon of
 * {@code numIterations} steps, with warmdown length Wd = round(warmdownRatio·N) (Python round: half to even):
 * <ul>
 *   <li>LR multiplier: (it+1)/warmup during warmup; 1 until N−Wd; then linear to {@code finalLrFrac} at N;</li>
 *   <li>Muon momentum: 0.85 → 0.97 linearly over the first 400 steps, 0.97, then → 0.90 during the warmdown
 *       (the warmup branch is tested first, so on short runs the warmdown branch may never be reached);</li>
 *   <li>Muon weight decay: cosine from {@code weightDecay} to 0 over N steps.</li>
 * </ul>
 * The formulas keep nanochat's evaluation order so the doubles match Python's exactly. The training loop sets
 * {@code lr = initialLr·lrMultiplier(it)} on every group, and momentum / weight decay on the Muon groups.
 */
public record Schedules(int numIterations, int warmupSteps, double warmdownRatio, double finalLrFrac, double weightDecay) {
    public static final int MOMENTUM_WARMUP_STEPS = 400;

    public Schedules {
        if (numIterations < 1) throw new IllegalArgumentException("schedules: num_iterations must be >= 1, got " + numIterations);
        if (warmupSteps < 0) throw new IllegalArgumentException("schedules: warmup_steps must be >= 0, got " + warmupSteps);
        if (!(warmdownRatio >= 0 && warmdownRatio <= 1)) {
            throw new IllegalArgumentException("schedules: warmdown_ratio must be in [0, 1], got " + warmdownRatio);
        }
    }

    /** nanochat's defaults: warmup 40 steps, warmdown 0.65 of the run, final LR 5% of the initial. */
    public static Schedules nanochat(int numIterations, double weightDecay) {
        return new Schedules(numIterations, 40, 0.65, 0.05, weightDecay);
    }

    /** Wd = round(warmdownRatio·N), round half to even like Python's round(). */
    public int warmdownIters() {
        return (int) Math.rint(warmdownRatio * numIterations);
    }

    public double lrMultiplier(int it) {
        checkStep(it);
        int warmdown = warmdownIters();
        if (it < warmupSteps) {
            return (it + 1) / (double) warmupSteps;
        } else if (it <= numIterations - warmdown) {
            return 1.0;
        } else {
            double progress = (numIterations - it) / (double) warmdown;
            return progress * 1.0 + (1 - progress) * finalLrFrac;
        }
    }

    public double muonMomentum(int it) {
        checkStep(it);
        int warmdown = warmdownIters();
        int warmdownStart = numIterations - warmdown;
        if (it < MOMENTUM_WARMUP_STEPS) {
            double frac = it / (double) MOMENTUM_WARMUP_STEPS;
            return (1 - frac) * 0.85 + frac * 0.97;
        } else if (warmdown > 0 && it >= warmdownStart) {
            double progress = (it - warmdownStart) / (double) warmdown;
            return 0.97 * (1 - progress) + 0.90 * progress;
        } else {
            return 0.97;
        }
    }

    public double muonWeightDecay(int it) {
        checkStep(it);
        return weightDecay * 0.5 * (1 + Math.cos(Math.PI * it / numIterations));
    }

    private void checkStep(int it) {
        if (it < 0 || it > numIterations) {
            throw new IllegalArgumentException("schedules: step " + it + " outside 0.." + numIterations);
        }
    }
}
