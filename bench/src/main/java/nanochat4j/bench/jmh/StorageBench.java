package nanochat4j.bench.jmh;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.concurrent.TimeUnit;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Vec;
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
 * The storage decision behind {@code Tensor}: the same two vector loops (an fma dot product, the shape of every
 * reduction; an axpy, the shape of every elementwise kernel) over a heap {@code float[]} with
 * {@code fromArray/intoArray} and over an off-heap {@code MemorySegment} with {@code fromMemorySegment}.
 * Sizes: L1-resident, L2-resident and memory-bound.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 2, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector"})
public class StorageBench {
    private static final VectorSpecies<Float> S = Vec.F;

    @Param({"4096", "65536", "4194304"})
    public int n;

    private float[] ha, hb;
    private Arena arena;
    private MemorySegment sa, sb;

    @Setup(Level.Trial)
    public void setup() {
        ha = new float[n];
        hb = new float[n];
        arena = Arena.ofShared();
        sa = arena.allocate((long) n * 4, 64);
        sb = arena.allocate((long) n * 4, 64);
        for (int i = 0; i < n; i++) {
            ha[i] = (i % 7) * 0.1f;
            hb[i] = (i % 5) * 0.2f;
            sa.setAtIndex(ValueLayout.JAVA_FLOAT, i, ha[i]);
            sb.setAtIndex(ValueLayout.JAVA_FLOAT, i, hb[i]);
        }
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @Benchmark
    public float dotHeap() {
        var acc = FloatVector.zero(S);
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) acc = FloatVector.fromArray(S, ha, i).fma(FloatVector.fromArray(S, hb, i), acc);
        return acc.reduceLanes(VectorOperators.ADD);
    }

    @Benchmark
    public float dotSegment() {
        var acc = FloatVector.zero(S);
        long i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            acc = FloatVector.fromMemorySegment(S, sa, i * 4, ByteOrder.nativeOrder())
                    .fma(FloatVector.fromMemorySegment(S, sb, i * 4, ByteOrder.nativeOrder()), acc);
        }
        return acc.reduceLanes(VectorOperators.ADD);
    }

    @Benchmark
    public void axpyHeap() {
        int i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            FloatVector.fromArray(S, hb, i).add(FloatVector.fromArray(S, ha, i).mul(1e-3f)).intoArray(hb, i);
        }
    }

    @Benchmark
    public void axpySegment() {
        long i = 0, ub = S.loopBound(n);
        for (; i < ub; i += S.length()) {
            FloatVector.fromMemorySegment(S, sb, i * 4, ByteOrder.nativeOrder())
                    .add(FloatVector.fromMemorySegment(S, sa, i * 4, ByteOrder.nativeOrder()).mul(1e-3f))
                    .intoMemorySegment(sb, i * 4, ByteOrder.nativeOrder());
        }
    }
}
