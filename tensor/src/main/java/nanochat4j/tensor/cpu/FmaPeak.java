package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * This machine's fp32 peak as the Vector API reaches it: every pool thread runs a loop of fused multiply-adds on
 * 12 independent accumulators (enough to cover the FMA latency on two ports), the kernels' own species. The peak
 * is the best of several short runs, so a busy machine lowers it only when it is busy for all of them. What
 * base-train's MFU divides by on CPU and what {@code bench kernels} sets each op against (93% of gcc's FMA loop at
 * AVX2, 98% at 512 bits on the Zen 5 host; a second probe with 8 chains in base-train read 59% / 87% of this one).
 */
public final class FmaPeak {
    private FmaPeak() {}

    private static final VectorSpecies<Float> F = Vec.F;
    private static final int ACCUMULATORS = 12;

    /** GFLOP/s over all {@link Parallel#threads()} threads: the best of {@code runs} runs of {@code iters} iterations. */
    public static double measure(int runs, long iters) {
        int threads = Parallel.threads();
        float[] sink = new float[threads];
        for (int i = 0; i < 20; i++) loop(Math.max(1, iters / 10)); // reach C2 before timing
        double best = 0;
        for (int r = 0; r < runs; r++) {
            long t0 = System.nanoTime();
            Parallel.forRange(threads, (s, e) -> {
                for (int t = s; t < e; t++) sink[t] += loop(iters);
            });
            double sec = (System.nanoTime() - t0) / 1e9;
            best = Math.max(best, threads * (double) iters * ACCUMULATORS * 2 * F.length() / sec / 1e9);
        }
        if (Float.isNaN(sink[0])) throw new IllegalStateException("FMA peak loop produced NaN");
        return best;
    }

    private static float loop(long iters) {
        FloatVector x = FloatVector.broadcast(F, 0.999999f), y = FloatVector.broadcast(F, 1e-7f);
        FloatVector a0 = FloatVector.broadcast(F, 1f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
        FloatVector a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;
        for (long i = 0; i < iters; i++) {
            a0 = a0.fma(x, y); a1 = a1.fma(x, y); a2 = a2.fma(x, y); a3 = a3.fma(x, y);
            a4 = a4.fma(x, y); a5 = a5.fma(x, y); a6 = a6.fma(x, y); a7 = a7.fma(x, y);
            a8 = a8.fma(x, y); a9 = a9.fma(x, y); a10 = a10.fma(x, y); a11 = a11.fma(x, y);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                .reduceLanes(VectorOperators.ADD);
    }
}
