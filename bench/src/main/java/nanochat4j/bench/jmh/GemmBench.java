package nanochat4j.bench.jmh;

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import nanochat4j.tensor.cpu.Gemm;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * fp32 GEMM (all pool threads): square 256–2048 and the real layer products of d4/d6/d12 (C = 256/384/768) at
 * B·T = 4096 — forward y = x·Wᵀ (NT), dX = dY·W (NN) and dW = dYᵀ·X (TN) for W in (C,C), (4C,C), (C,4C) and the
 * lm_head (32768, C). Shapes are "MxNxK_AB" (A, B: N plain or T transposed); GFLOP/s = 2·m·n·k / time (JMH prints time per op: divide).
 * Run: {@code java --add-modules jdk.incubator.vector -cp bench/target/nanochat4j.jar org.openjdk.jmh.Main GemmBench}
 * (one shape: {@code ... GemmBench -p shape=4096x32768x384_NT}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 6, time = 3) // the first calls run before C2 has compiled the micro-kernel: seconds each
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
public class GemmBench {
    @Param({
        "256x256x256_NN", "512x512x512_NN", "1024x1024x1024_NN", "2048x2048x2048_NN",
        // d4: C=256
        "4096x256x256_NT", "4096x256x256_NN", "256x256x4096_TN",
        "4096x1024x256_NT", "4096x256x1024_NN", "1024x256x4096_TN",
        "4096x256x1024_NT", "4096x1024x256_NN", "256x1024x4096_TN",
        "4096x32768x256_NT", "4096x256x32768_NN", "32768x256x4096_TN",
        // d6: C=384
        "4096x384x384_NT", "4096x384x384_NN", "384x384x4096_TN",
        "4096x1536x384_NT", "4096x384x1536_NN", "1536x384x4096_TN",
        "4096x384x1536_NT", "4096x1536x384_NN", "384x1536x4096_TN",
        "4096x32768x384_NT", "4096x384x32768_NN", "32768x384x4096_TN",
        // d12: C=768
        "4096x768x768_NT", "4096x768x768_NN", "768x768x4096_TN",
        "4096x3072x768_NT", "4096x768x3072_NN", "3072x768x4096_TN",
        "4096x768x3072_NT", "4096x3072x768_NN", "768x3072x4096_TN",
        "4096x32768x768_NT", "4096x768x32768_NN", "32768x768x4096_TN",
    })
    public String shape;

    private int m, n, k, lda, ldb;
    private boolean ta, tb;
    private float[] a, b, c;

    @Setup(Level.Trial)
    public void setup() {
        String[] dims = shape.substring(0, shape.indexOf('_')).split("x");
        String trans = shape.substring(shape.indexOf('_') + 1);
        m = Integer.parseInt(dims[0]);
        n = Integer.parseInt(dims[1]);
        k = Integer.parseInt(dims[2]);
        ta = trans.charAt(0) == 'T';
        tb = trans.charAt(1) == 'T';
        lda = ta ? m : k;
        ldb = tb ? k : n;
        SplittableRandom r = new SplittableRandom(42);
        a = new float[m * k];
        b = new float[k * n];
        c = new float[m * n];
        for (int i = 0; i < a.length; i++) a[i] = (float) (r.nextDouble() - 0.5);
        for (int i = 0; i < b.length; i++) b[i] = (float) (r.nextDouble() - 0.5);
    }

    @TearDown(Level.Trial)
    public void report() {
        // JMH reports ms/op; the flop count turns that into GFLOP/s when reading the results.
        System.out.printf("%n%s: %.3f GFLOP per op%n", shape, 2.0 * m * n * k / 1e9);
    }

    @Benchmark
    public float[] sgemm() {
        Gemm.sgemm(ta, tb, m, n, k, 1f, a, 0, lda, b, 0, ldb, 0f, c, 0, n);
        return c;
    }
}
