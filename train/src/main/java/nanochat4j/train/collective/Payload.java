package nanochat4j.train.collective;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Vec;

/**
 * The caller's flat buffer as the ring sees it: copy a range out to the wire (an Aeron log buffer), or combine a
 * range arriving from the wire into it, vectorized; the fp32 elements live on the heap ({@code float[]}) or off it
 * ({@link SharedFloats}).
 * Wire format: the elements in native byte order (little-endian on every supported platform; the handshake checks).
 */
abstract sealed class Payload permits Payload.F32, Payload.F32Segment {

    /** How an arriving chunk is combined into the buffer. */
    static final int COPY = 0, SUM = 1, MAX = 2, SUM_DIVIDE = 3;

    abstract int elementBytes();

    /** buffer[at, at+n) → wire. */
    abstract void store(int at, int n, MemorySegment wire);

    /** buffer[at, at+n) = combine(buffer[at, at+n), wire); {@code SUM_DIVIDE} divides the sum by {@code divisor}. */
    abstract void load(int action, int at, int n, MemorySegment wire, float divisor);

    /** {@link #load}, and the combined range also written to {@code forward} (the next hop's frame) in the same pass. */
    abstract void loadForward(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor);

    static final class F32 extends Payload {
        private static final VectorSpecies<Float> S = Vec.F;
        private static final ByteOrder ORDER = ByteOrder.nativeOrder();
        private final float[] a;

        F32(float[] a) {
            this.a = a;
        }

        @Override
        int elementBytes() {
            return Float.BYTES;
        }

        @Override
        void store(int at, int n, MemorySegment wire) {
            MemorySegment.copy(a, at, wire, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, n);
        }

        @Override
        void load(int action, int at, int n, MemorySegment wire, float divisor) {
            if (action == COPY) MemorySegment.copy(wire, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, a, at, n);
            else combine(action, at, n, wire, null, divisor);
        }

        @Override
        void loadForward(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            if (action != COPY) {
                combine(action, at, n, wire, forward, divisor);
                return;
            }
            MemorySegment.copy(wire, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, a, at, n);
            MemorySegment.copy(wire, 0, forward, 0, (long) n * Float.BYTES);
        }

        /** a[at, at+n) = wire ⊕ a[at, at+n), also into forward when not null. */
        private void combine(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            float[] a = this.a;
            int i = 0;
            int bound = S.loopBound(n);
            for (; i < bound; i += S.length()) {
                FloatVector x = FloatVector.fromMemorySegment(S, wire, (long) i * Float.BYTES, ORDER);
                FloatVector y = FloatVector.fromArray(S, a, at + i);
                FloatVector r = switch (action) {
                    case SUM -> x.add(y);
                    case MAX -> x.max(y);
                    default -> x.add(y).div(divisor);
                };
                r.intoArray(a, at + i);
                if (forward != null) r.intoMemorySegment(forward, (long) i * Float.BYTES, ORDER);
            }
            for (; i < n; i++) {
                float x = wire.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                float y = a[at + i];
                float r = switch (action) {
                    case SUM -> x + y;
                    case MAX -> Math.max(x, y);
                    default -> (x + y) / divisor;
                };
                a[at + i] = r;
                if (forward != null) forward.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, r);
            }
        }
    }

    /**
     * fp32 in an off-heap buffer ({@link SharedFloats} of a job across hosts): the same operations as {@link F32}.
     * Not one class over segments for both: {@link F32} on a {@code float[]} viewed as a heap segment made the heap
     * all-reduce markedly slower than array loads and stores do (docs/BENCHMARKS.md).
     */
    static final class F32Segment extends Payload {
        private static final VectorSpecies<Float> S = Vec.F;
        private static final ByteOrder ORDER = ByteOrder.nativeOrder();
        private final MemorySegment a;

        F32Segment(MemorySegment a) {
            this.a = a;
        }

        @Override
        int elementBytes() {
            return Float.BYTES;
        }

        @Override
        void store(int at, int n, MemorySegment wire) {
            MemorySegment.copy(a, (long) at * Float.BYTES, wire, 0, (long) n * Float.BYTES);
        }

        @Override
        void load(int action, int at, int n, MemorySegment wire, float divisor) {
            if (action == COPY) MemorySegment.copy(wire, 0, a, (long) at * Float.BYTES, (long) n * Float.BYTES);
            else combine(action, at, n, wire, null, divisor);
        }

        @Override
        void loadForward(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            if (action != COPY) {
                combine(action, at, n, wire, forward, divisor);
                return;
            }
            MemorySegment.copy(wire, 0, a, (long) at * Float.BYTES, (long) n * Float.BYTES);
            MemorySegment.copy(wire, 0, forward, 0, (long) n * Float.BYTES);
        }

        /** a[at, at+n) = wire ⊕ a[at, at+n), also into forward when not null (as {@link F32}). */
        private void combine(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            long base = (long) at * Float.BYTES;
            int i = 0;
            for (int bound = S.loopBound(n); i < bound; i += S.length()) {
                long o = (long) i * Float.BYTES;
                FloatVector x = FloatVector.fromMemorySegment(S, wire, o, ORDER);
                FloatVector y = FloatVector.fromMemorySegment(S, a, base + o, ORDER);
                FloatVector r = switch (action) {
                    case SUM -> x.add(y);
                    case MAX -> x.max(y);
                    default -> x.add(y).div(divisor);
                };
                r.intoMemorySegment(a, base + o, ORDER);
                if (forward != null) r.intoMemorySegment(forward, o, ORDER);
            }
            for (; i < n; i++) {
                float x = wire.getAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i);
                float y = a.get(ValueLayout.JAVA_FLOAT_UNALIGNED, base + (long) i * Float.BYTES);
                float r = switch (action) {
                    case SUM -> x + y;
                    case MAX -> Math.max(x, y);
                    default -> (x + y) / divisor;
                };
                a.set(ValueLayout.JAVA_FLOAT_UNALIGNED, base + (long) i * Float.BYTES, r);
                if (forward != null) forward.setAtIndex(ValueLayout.JAVA_FLOAT_UNALIGNED, i, r);
            }
        }
    }
}
