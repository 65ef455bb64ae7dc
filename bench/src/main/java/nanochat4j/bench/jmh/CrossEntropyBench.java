package nanochat4j.bench.jmh;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Fused softcap + cross-entropy forward+backward on (N, V) logits (the 4096 × 32768 case), and the
 * chunked lm_head form (x (N, C) · Wᵀ → CE → dx, dW) whose GEMMs dominate. Target: the fused CE within 0.4× of
 * the lm_head GEMM that produces the logits (compare with GemmBench at m=4096, n=32768, k=C).
 * Run: {@code java -cp bench/target/nanochat4j.jar org.openjdk.jmh.Main CrossEntropyBench}.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 2, time = 2)
@Measurement(iterations = 3, time = 4)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "-Xmx8g"})
public class CrossEntropyBench {
    @Param({"4096"})
    public int rows;

    @Param({"32768"})
    public int vocab;

    @Param({"384"})
    public int channels;

    private final Backend be = Backend.cpu();
    private Tensor logits, targets, x, w;

    @Setup
    public void setup() {
        Random r = new Random(42);
        float[] z = new float[rows * vocab];
        for (int i = 0; i < z.length; i++) z[i] = (float) r.nextGaussian() * 5f;
        logits = Tensor.of(z, rows, vocab);
        int[] t = new int[rows];
        for (int i = 0; i < rows; i++) t[i] = r.nextInt(vocab);
        targets = Tensor.ofInts(t);
        float[] xs = new float[rows * channels], ws = new float[vocab * channels];
        for (int i = 0; i < xs.length; i++) xs[i] = (float) r.nextGaussian();
        for (int i = 0; i < ws.length; i++) ws[i] = (float) r.nextGaussian() * 0.05f;
        x = Tensor.of(xs, rows, channels);
        w = Tensor.of(ws, vocab, channels);
    }

    @Benchmark
    public Backend.Loss softcapCrossEntropyFwdBwd() {
        return be.crossEntropy(logits, targets, 15f, Reduction.MEAN, true);
    }

    @Benchmark
    public Backend.LinearLoss linearSoftcapCrossEntropyFwdBwd() {
        return be.linearSoftcapCrossEntropy(x, w, targets, vocab, 15f, Reduction.MEAN, true);
    }
}
