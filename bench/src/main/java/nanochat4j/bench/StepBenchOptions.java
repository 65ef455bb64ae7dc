package nanochat4j.bench;

import java.util.Arrays;
import java.util.SplittableRandom;
import nanochat4j.tensor.Tensor;
import picocli.CommandLine.Option;

/**
 * What {@code bench model} and {@code bench train} share (a picocli mixin): the model's depth and vocabulary, the
 * batch shape, how many steps are timed, and the random batch they time.
 */
final class StepBenchOptions {
    @Option(names = "--depth", description = "model depth (default ${DEFAULT-VALUE})")
    int depth = 4;
    @Option(names = "--batch", description = "sequences per step (default ${DEFAULT-VALUE})")
    int batch = 8;
    @Option(names = "--seq", description = "sequence length (default ${DEFAULT-VALUE})")
    int seq = 512;
    @Option(names = "--vocab", description = "vocab size (default ${DEFAULT-VALUE})")
    int vocab = 32768;
    // 3 + 10, as nanochat's own CPU bench (tools/reference/nanochat_bench.py), so the two medians are taken alike; the
    // first steps also grow the heap, and the page faults of its first touch should not be in the median.
    @Option(names = "--warmup", description = "untimed steps first (default ${DEFAULT-VALUE})")
    int warmup = 3;
    @Option(names = "--iters", description = "timed steps, median reported (default ${DEFAULT-VALUE})")
    int iters = 10;
    @Option(names = "--json", description = "one JSON object per line")
    boolean json;

    /** Inputs and targets of one step. */
    record Batch(Tensor inputs, Tensor targets) {}

    void check() {
        if (warmup < 0 || iters < 1) throw new IllegalArgumentException("--warmup must be >= 0 and --iters >= 1");
    }

    /** batch × seq uniformly random inputs and targets (seed 1): the timing does not depend on what the tokens are. */
    Batch randomBatch() {
        SplittableRandom r = new SplittableRandom(1);
        int[] x = new int[batch * seq], y = new int[batch * seq];
        for (int i = 0; i < x.length; i++) {
            x[i] = r.nextInt(vocab);
            y[i] = r.nextInt(vocab);
        }
        return new Batch(Tensor.ofInts(x, batch, seq), Tensor.ofInts(y, batch, seq));
    }

    static double median(double[] a) {
        double[] t = a.clone();
        Arrays.sort(t);
        int n = t.length;
        return n % 2 == 1 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    }
}
