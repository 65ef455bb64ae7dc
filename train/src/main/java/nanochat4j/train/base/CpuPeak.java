package nanochat4j.train.base;

import jdk.incubator.vector.FloatVector;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * The CPU's fp32 FMA peak, measured (nanochat's MFU divides by a GPU's datasheet bf16 peak; a CPU has none we can
 * look up). Every worker of the shared pool runs 8 independent FMA chains (enough to cover the FMA latency) on
 * registers for a fixed time; peak = 2·lanes·FMAs / seconds.
 */
public final class CpuPeak {
    private CpuPeak() {}

    /** FLOP/s over all {@link Parallel#threads()} workers, measured for about {@code millis}. */
    public static double measure(long millis) {
        int threads = Parallel.threads();
        long[] fmas = new long[threads];
        long deadline = System.nanoTime() + millis * 1_000_000L;
        long t0 = System.nanoTime();
        float[] sink = new float[threads];
        Parallel.forRange(threads, 1, (start, end) -> {
            for (int t = start; t < end; t++) {
                FloatVector a = FloatVector.broadcast(Vec.F, 0.999f), b = FloatVector.broadcast(Vec.F, 1e-4f);
                FloatVector c0 = FloatVector.zero(Vec.F), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
                long n = 0;
                while (System.nanoTime() < deadline) {
                    for (int i = 0; i < 4096; i++) {
                        c0 = c0.fma(a, b); c1 = c1.fma(a, b); c2 = c2.fma(a, b); c3 = c3.fma(a, b);
                        c4 = c4.fma(a, b); c5 = c5.fma(a, b); c6 = c6.fma(a, b); c7 = c7.fma(a, b);
                    }
                    n += 8 * 4096;
                }
                fmas[t] = n;
                sink[t] = c0.add(c1).add(c2).add(c3).add(c4).add(c5).add(c6).add(c7).reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
            }
        });
        double seconds = (System.nanoTime() - t0) / 1e9;
        long total = 0;
        for (long f : fmas) total += f;
        if (Float.isNaN(sink[0])) throw new IllegalStateException("unreachable: keeps the FMA chains alive");
        return 2.0 * Vec.LANES * total / seconds;
    }
}
