package nanochat4j.bench.jmh;

import java.util.Random;
import java.util.concurrent.TimeUnit;
import nanochat4j.tensor.cpu.Attention;
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
 * Causal self-attention at the shape: B=8, T=512, head dim 64, heads 4 and 6 (KV = H, as nanochat's
 * defaults), full causal (window -1) and nanochat's short window for T=512 (128). FLOPs as nanochat's
 * estimate_flops counts them (the full T×T, although causal masking skips about half): forward 4·H·D·T·B·T,
 * forward+backward 12·H·D·T·B·T (H=4: 3.22 GFLOP, H=6: 4.83 GFLOP). Decode: one query per row against a cache
 * of 1024 positions (memory-bound: 2·B·1024·KV·D·4 bytes of K/V read per call).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 5, time = 1)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class AttentionBench {
    @Param({"4", "6"})
    public int heads;

    /** Left window: -1 = full causal; 128 = nanochat's short window at sequence length 512. */
    @Param({"-1", "128"})
    public int window;

    static final int B = 8, T = 512, D = 64, TMAX = 1024;

    private float[] q, k, v, y, lse, dy, dq, dk, dv, qDecode, kCache, vCache, yDecode;
    private float scale;

    @Setup
    public void setup() {
        Random r = new Random(11);
        int h = heads;
        q = rand(r, B * T * h * D);
        k = rand(r, B * T * h * D);
        v = rand(r, B * T * h * D);
        dy = rand(r, B * T * h * D);
        y = new float[q.length];
        lse = new float[B * h * T];
        dq = new float[q.length];
        dk = new float[k.length];
        dv = new float[v.length];
        qDecode = rand(r, B * h * D);
        kCache = rand(r, B * TMAX * h * D);
        vCache = rand(r, B * TMAX * h * D);
        yDecode = new float[qDecode.length];
        scale = (float) (1 / Math.sqrt(D));
        Attention.forward(q, k, v, y, lse, B, T, h, h, D, window, scale);
    }

    private static float[] rand(Random r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) r.nextGaussian();
        return a;
    }

    @Benchmark
    public float[] forward() {
        Attention.forward(q, k, v, y, lse, B, T, heads, heads, D, window, scale);
        return y;
    }

    @Benchmark
    public float[] forwardBackward() {
        Attention.forward(q, k, v, y, lse, B, T, heads, heads, D, window, scale);
        Attention.backward(q, k, v, y, lse, dy, dq, dk, dv, B, T, heads, heads, D, window, scale);
        return dq;
    }

    /** One decode step: the query at position TMAX-1 against the whole cache. */
    @Benchmark
    public float[] decode() {
        Attention.forwardCached(qDecode, kCache, vCache, yDecode, B, 1, TMAX, TMAX - 1, heads, heads, D, window, scale);
        return yDecode;
    }
}
