package nanochat4j.train.chat;

import java.util.Arrays;
import java.util.List;

/**
 * The arithmetic of nanochat's chat_rl.py between sampling and the backward pass, kept free of the model so it can be
 * checked by hand:
 * <ul>
 *   <li>advantage = reward − mean(rewards of the group) (no division by the standard deviation);</li>
 *   <li>a group's sequences are padded to one length with {@code <|assistant_end|>} (masks with 0); inputs = seq[:-1],
 *       targets = seq[1:] with −1 where mask[1:] == 0: the prompt and the calculator's forced output are not trained;</li>
 *   <li>per pass of device-batch rows the loss is Σ nll·adv_row / (valid·passes·examplesPerRank) with valid the
 *       number of targets ≥ 0 in the pass (at least 1), i.e. −(policy-gradient objective), token-level (DAPO style).</li>
 * </ul>
 */
public final class Rollouts {
    private Rollouts() {}

    /** rewards − their mean. */
    public static float[] advantages(float[] rewards) {
        double mu = 0;
        for (float r : rewards) mu += r;
        mu /= rewards.length;
        float[] a = new float[rewards.length];
        for (int i = 0; i < a.length; i++) a[i] = (float) (rewards[i] - mu);
        return a;
    }

    /** A group's padded rows: {@code inputs}/{@code targets} are (rows, len−1) row-major, targets −1 where not trained. */
    public record Group(int rows, int len, int[] inputs, int[] targets) {
        /** Targets that are trained (≥ 0) in rows [r0, r1). */
        public int valid(int r0, int r1) {
            int n = 0;
            for (int i = r0 * len; i < r1 * len; i++) if (targets[i] >= 0) n++;
            return n;
        }

        public int[] inputs(int r0, int r1) {
            return Arrays.copyOfRange(inputs, r0 * len, r1 * len);
        }

        public int[] targets(int r0, int r1) {
            return Arrays.copyOfRange(targets, r0 * len, r1 * len);
        }
    }

    /** Pads {@code seqs} (prompt + completion) with {@code pad} and masks with 0 to the longest, then shifts. */
    public static Group group(List<int[]> seqs, List<int[]> masks, int pad) {
        int max = 0;
        for (int[] s : seqs) max = Math.max(max, s.length);
        if (max < 2) throw new IllegalArgumentException("rollouts of fewer than 2 tokens: nothing to predict");
        int len = max - 1, n = seqs.size();
        int[] inputs = new int[n * len], targets = new int[n * len];
        for (int r = 0; r < n; r++) {
            int[] s = seqs.get(r), m = masks.get(r);
            if (m.length != s.length) throw new IllegalArgumentException("row " + r + ": " + s.length + " tokens but " + m.length + " mask entries");
            for (int t = 0; t < len; t++) {
                inputs[r * len + t] = t < s.length ? s[t] : pad;
                boolean trained = t + 1 < m.length && m[t + 1] != 0;
                targets[r * len + t] = trained ? s[t + 1] : -1;
            }
        }
        return new Group(n, len, inputs, targets);
    }

    /**
     * The weights w with loss = Σ nll·w for rows [r0, r1) of a group: adv_row / (valid·passes·examplesPerRank) on
     * trained positions, 0 elsewhere (the model's per-token loss is already 0 there).
     */
    public static float[] lossWeights(Group g, float[] advantages, int r0, int r1, int passes, int examplesPerRank) {
        int valid = Math.max(1, g.valid(r0, r1));
        double denom = (double) valid * passes * examplesPerRank;
        float[] w = new float[(r1 - r0) * g.len()];
        for (int r = r0; r < r1; r++) {
            for (int t = 0; t < g.len(); t++) {
                int i = r * g.len() + t;
                if (g.targets()[i] >= 0) w[i - r0 * g.len()] = (float) (advantages[r] / denom);
            }
        }
        return w;
    }

    /** pass@k for k = 1..K summed over problems: {@code out[k−1]} = #problems with a correct sample among the first k. */
    public static long[] passAtK(List<boolean[]> outcomes, int maxK) {
        long[] pass = new long[maxK];
        for (boolean[] o : outcomes) {
            boolean any = false;
            for (int k = 0; k < maxK; k++) {
                if (k < o.length && o[k]) any = true;
                if (any) pass[k]++;
            }
        }
        return pass;
    }

    /**
     * The sampling seed of (step, example, round), as nanochat's {@code hash((step, example_idx, sampling_step)) &
     * 0x7FFFFFFF}: any fixed mix works; a run's --seed shifts it. SplitMix64's finalizer spreads nearby tuples apart.
     */
    public static long seed(long base, int step, int example, int round) {
        long z = base * 0x9E3779B97F4A7C15L + step;
        z = z * 0x9E3779B97F4A7C15L + example;
        z = z * 0x9E3779B97F4A7C15L + round;
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return (z ^ (z >>> 31)) & 0x7FFFFFFFL;
    }
}
