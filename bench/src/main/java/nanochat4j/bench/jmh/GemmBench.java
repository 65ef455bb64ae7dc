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
 * lm_head (32768, C). Shapes are "m,n,k,transAtransB"; GFLOP/s = 2·m·n·k / time (JMH prints time per op: divide).
 * Run: {@code java --add-modules jdk.incubator.vector -cp bench/target/nanochat4j.jar org.openjdk.jmh.Main GemmBench}
 * (one shape: {@code ... GemmBench -p shape=4096,32768,384,NT}).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
public class GemmBench {
    @Param({
        "256,256,256,NN", "512,512,512,NN", "1024,1024,1024,NN", "2048,2048,2048,NN",
        // d4: C=256
        "4096,256,256,NT", "4096,256,256,NN", "256,256,4096,TN",
        "4096,1024,256,NT", "4096,256,1024,NN", "1024,256,4096,TN",
        "4096,256,1024,NT", "4096,1024,256,NN", "256,1024,4096,TN",
        "4096,32768,256,NT", "4096,256,32768,NN", "32768,256,4096,TN",
        // d6: C=384
        "4096,384,384,NT", "4096,384,384,NN", "384,384,4096,TN",
        "4096,1536,384,NT", "4096,384,1536,NN", "1536,384,4096,TN",
        "4096,384,1536,NT", "4096,1536,384,NN", "384,1536,4096,TN",
        "4096,32768,384,NT", "4096,384,32768,NN", "32768,384,4096,TN",
        // d12: C=768
        "4096,768,768,NT", "4096,768,768,NN", "768,768,4096,TN",
        "4096,3072,768,NT", "4096,768,3072,NN", "3072,768,4096,TN",
        "4096,768,3072,NT", "4096,3072,768,NN", "768,3072,4096,TN",
        "4096,32768,768,NT", "4096,768,32768,NN", "32768,768,4096,TN",
    })
    public String shape;

    private int m, n, k, lda, ldb;
    private boolean ta, tb;
    private float[] a, b, c;

    @Setup(Level.Trial)
    public void setup() {
        String[] p = shape.split(",");
        m = Integer.parseInt(p[0]);
        n = Integer.parseInt(p[1]);
        k = Integer.parseInt(p[2]);
        ta = p[3].charAt(0) == 'T';
        tb = p[3].charAt(1) == 'T';
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
