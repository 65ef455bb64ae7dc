package nanochat4j.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * This machine's memory bandwidth as the Vector API reaches it: STREAM's triad a = b + s·c on every pool thread,
 * over arrays far larger than any cache, counted as STREAM counts it (two reads and a write per element). The
 * memory-bound kernels (rms_norm, rotary, cross-entropy) are judged against it. Best of several runs, so a busy
 * machine lowers it only when it is busy for all of them.
 */
final class MemBandwidth {
    private MemBandwidth() {}

    private static final VectorSpecies<Float> F = Vec.F;

    /** GB/s of the triad over {@code floats} floats per array (3 arrays), best of {@code runs}. */
    static double measure(int runs, int floats) {
        int n = floats / F.length() * F.length();
        float[] a = new float[n], b = new float[n], c = new float[n];
        java.util.Arrays.fill(b, 1f);
        java.util.Arrays.fill(c, 2f);
        int threads = Parallel.threads();
        int per = (n / threads) / F.length() * F.length();
        double best = 0;
        for (int r = 0; r < runs + 2; r++) {   // the first two runs warm the JIT and fault the pages in
            long t0 = System.nanoTime();
            Parallel.forRange(threads, (s, e) -> {
                for (int t = s; t < e; t++) triad(a, b, c, t * per, t == threads - 1 ? n : (t + 1) * per);
            });
            double sec = (System.nanoTime() - t0) / 1e9;
            if (r >= 2) best = Math.max(best, 3.0 * 4 * n / sec / 1e9);
        }
        if (a[n / 2] != 5f) throw new IllegalStateException("triad produced " + a[n / 2] + ", expected 5");
        return best;
    }

    private static void triad(float[] a, float[] b, float[] c, int from, int to) {
        FloatVector s = FloatVector.broadcast(F, 2f);
        for (int i = from; i < to; i += F.length()) {
            FloatVector.fromArray(F, c, i).fma(s, FloatVector.fromArray(F, b, i)).intoArray(a, i);
        }
    }
}
