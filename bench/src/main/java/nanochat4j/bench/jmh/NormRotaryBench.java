package nanochat4j.bench.jmh;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import nanochat4j.tensor.Backend;
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
 * rms_norm (forward, backward) over (B·T, C) activations and rotary (forward, backward) over (B, T, H, D) at the
 * training shapes of d4/d6/d12 with B·T = 4096 (memory-bound: compare GB/s with the machine's bandwidth).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class NormRotaryBench {
    /** Model width C; heads = C/64 with head dim 64 (d4: 256, d6: 384, d12: 768). */
    @Param({"256", "384", "768"})
    public int channels;

    private final Backend be = Backend.cpu();
    private Tensor x, dy, qk, dqk;
    private Backend.RotaryTables tables;

    @Setup
    public void setup() {
        Random r = new Random(7);
        int bt = 4096, b = 8, t = bt / b, d = 64, h = channels / d;
        x = rand(r, bt, channels);
        dy = rand(r, bt, channels);
        qk = rand(r, b, t, h, d);
        dqk = rand(r, b, t, h, d);
        tables = be.rotaryTables(t * 10, d, 100000);
    }

    private static Tensor rand(Random r, int... shape) {
        float[] a = new float[Tensor.numel(shape)];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        return Tensor.of(a, shape);
    }

    @Benchmark
    public Tensor rmsNormForward() {
        return be.rmsNorm(x, 1f);
    }

    @Benchmark
    public Tensor rmsNormBackward() {
        return be.rmsNormBackward(x, dy, 1f);
    }

    @Benchmark
    public Tensor rotaryForward() {
        return be.rotary(qk, tables.cos(), tables.sin(), 0);
    }

    @Benchmark
    public Tensor rotaryBackward() {
        return be.rotaryBackward(dqk, tables.cos(), tables.sin(), 0);
    }
}
