package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * This machine's fp32 peak as the Vector API reaches it: every pool thread runs a loop of fused multiply-adds on
 * 12 independent accumulators (enough to cover the FMA latency on two ports), the kernels' own species. The peak
 * is the best of several short runs, so a busy machine lowers it only when it is busy for all of them. What
 * base-train's MFU divides by on CPU and what {@code bench kernels} sets each op against.
 *
 * <p>Each accumulator is the addend ({@code acc = x·y + acc}), as in the GEMM's micro-kernels: C2 emits
 * {@code vfmadd231ps} with the accumulator as destination. Written as {@code acc = acc·x + y} instead, C2 copied y into
 * a fresh register before every FMA, ran out of AVX2's 16 and kept accumulators on the stack: that loop read 86% of
 * gcc's at 256 bits, this one 91–100% in three pairs (docs/BENCHMARKS.md).
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
        // distinct starts, so no compiler may treat two accumulators as one value
        FloatVector a0 = FloatVector.broadcast(F, 1f), a1 = a0.add(0.01f), a2 = a0.add(0.02f), a3 = a0.add(0.03f);
        FloatVector a4 = a0.add(0.04f), a5 = a0.add(0.05f), a6 = a0.add(0.06f), a7 = a0.add(0.07f);
        FloatVector a8 = a0.add(0.08f), a9 = a0.add(0.09f), a10 = a0.add(0.10f), a11 = a0.add(0.11f);
        for (long i = 0; i < iters; i++) {
            a0 = x.fma(y, a0); a1 = x.fma(y, a1); a2 = x.fma(y, a2); a3 = x.fma(y, a3);
            a4 = x.fma(y, a4); a5 = x.fma(y, a5); a6 = x.fma(y, a6); a7 = x.fma(y, a7);
            a8 = x.fma(y, a8); a9 = x.fma(y, a9); a10 = x.fma(y, a10); a11 = x.fma(y, a11);
        }
        return a0.add(a1).add(a2).add(a3).add(a4).add(a5).add(a6).add(a7).add(a8).add(a9).add(a10).add(a11)
                .reduceLanes(VectorOperators.ADD);
    }
}
