package nanochat4j.train.base;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * The CPU's fp32 FMA peak, measured (nanochat's MFU divides by a GPU's datasheet bf16 peak; a CPU has none we can
 * look up). Every worker of the shared pool calls a burst of 8 independent FMA chains (enough to hide the FMA
 * latency) over and over: first until the JIT has compiled it (the interpreted Vector API is orders of magnitude
 * slower), then for {@link #WINDOWS} measured windows; peak = 2·lanes·FMAs / seconds over all workers, in the best
 * window. The best, not the mean: a window in which another process held a core reads low, and a low peak makes
 * every MFU of a run too high (a 2-core AVX2 machine busy at the start once read 84 GFLOP/s for its ~200, and
 * base-train logged an MFU of 150%).
 */
public final class CpuPeak {
    private static final int BURST = 1024;

    private CpuPeak() {}

    /** Measured windows; the peak is the best of them. */
    static final int WINDOWS = 5;

    /** FLOP/s over all {@link Parallel#threads()} workers, the best of {@link #WINDOWS} windows of {@code millis} in all. */
    public static double measure(long millis) {
        float sink = 0;
        for (int i = 0; i < 20_000; i++) sink += burst(0.999f); // compile burst() before timing it
        double best = 0;
        for (int w = 0; w < WINDOWS; w++) {
            float[] sinks = new float[Parallel.threads()];
            best = Math.max(best, window(Math.max(1, millis / WINDOWS), sinks));
            for (float s : sinks) sink += s;
        }
        if (Float.isNaN(sink)) throw new IllegalStateException("unreachable: keeps the FMA chains alive");
        return best;
    }

    /** FLOP/s of every worker bursting for about {@code millis}; each worker's sum goes to {@code sinks}. */
    private static double window(long millis, float[] sinks) {
        int threads = sinks.length;
        long[] fmas = new long[threads];
        long t0 = System.nanoTime();
        long deadline = t0 + millis * 1_000_000L;
        Parallel.forRange(threads, 1, (start, end) -> {
            for (int t = start; t < end; t++) {
                long n = 0;
                float s = 0;
                while (System.nanoTime() < deadline) {
                    for (int k = 0; k < 64; k++) s += burst(0.999f);
                    n += 64L * 8 * BURST;
                }
                fmas[t] = n;
                sinks[t] = s;
            }
        });
        double seconds = (System.nanoTime() - t0) / 1e9;
        long total = 0;
        for (long f : fmas) total += f;
        return 2.0 * Vec.LANES * total / seconds;
    }

    private static float burst(float x) {
        FloatVector a = FloatVector.broadcast(Vec.F, x), b = FloatVector.broadcast(Vec.F, 1e-4f);
        FloatVector c0 = FloatVector.zero(Vec.F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
        for (int i = 0; i < BURST; i++) {
            c0 = c0.fma(a, b); c1 = c1.fma(a, b); c2 = c2.fma(a, b); c3 = c3.fma(a, b);
            c4 = c4.fma(a, b); c5 = c5.fma(a, b); c6 = c6.fma(a, b); c7 = c7.fma(a, b);
        }
        return c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).reduceLanes(VectorOperators.ADD);
    }
}
