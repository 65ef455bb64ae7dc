package nanochat4j.train.collective;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Vec;

/**
 * The caller's flat buffer as the ring sees it: copy a range out to the wire (an Aeron log buffer), or combine a
 * range arriving from the wire into it. Two element types: fp32 ({@code float[]}) and bf16 ({@code short[]} of bf16
 * bits) whose reductions are done in fp32 and rounded to bf16 (nearest-even) once per hop, both vectorized.
 * Wire format: the elements in native byte order (little-endian on every supported platform; the handshake checks).
 */
abstract sealed class Payload permits Payload.F32, Payload.F32Segment, Payload.Bf16 {

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
     * Not one class over segments for both: {@link F32} on a {@code float[]} viewed as a heap segment ran the 64 MB
     * heap all-reduce at 1.8–2.1 GB/s against 3.2–3.7 with array loads and stores (4 interleaved rounds).
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

    static final class Bf16 extends Payload {
        private static final VectorSpecies<Float> S = Vec.F;
        private static final VectorSpecies<Integer> I = S.withLanes(int.class);
        /** Shorts with the lane count of {@link #S} (half its bits). */
        private static final VectorSpecies<Short> H = VectorSpecies.of(short.class,
                VectorShape.forBitSize(S.vectorBitSize() / 2));
        private static final ByteOrder ORDER = ByteOrder.nativeOrder();
        private final short[] a;

        Bf16(short[] a) {
            this.a = a;
        }

        @Override
        int elementBytes() {
            return Short.BYTES;
        }

        @Override
        void store(int at, int n, MemorySegment wire) {
            MemorySegment.copy(a, at, wire, ValueLayout.JAVA_SHORT_UNALIGNED, 0, n);
        }

        @Override
        void load(int action, int at, int n, MemorySegment wire, float divisor) {
            if (action == COPY) MemorySegment.copy(wire, ValueLayout.JAVA_SHORT_UNALIGNED, 0, a, at, n);
            else combine(action, at, n, wire, null, divisor);
        }

        @Override
        void loadForward(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            if (action != COPY) {
                combine(action, at, n, wire, forward, divisor);
                return;
            }
            MemorySegment.copy(wire, ValueLayout.JAVA_SHORT_UNALIGNED, 0, a, at, n);
            MemorySegment.copy(wire, 0, forward, 0, (long) n * Short.BYTES);
        }

        /**
         * a[at, at+n) = wire ⊕ a[at, at+n) (also into forward when not null), vectorized: widen both sides to fp32,
         * combine, round back exactly as {@link #fromFloat}; the tail is scalar.
         */
        private void combine(int action, int at, int n, MemorySegment wire, MemorySegment forward, float divisor) {
            short[] a = this.a;
            int i = 0;
            int bound = H.loopBound(n);
            for (; i < bound; i += H.length()) {
                FloatVector x = widen(ShortVector.fromMemorySegment(H, wire, (long) i * Short.BYTES, ORDER));
                FloatVector y = widen(ShortVector.fromArray(H, a, at + i));
                FloatVector r = switch (action) {
                    case SUM -> x.add(y);
                    case MAX -> x.max(y);
                    default -> x.add(y).div(divisor);
                };
                ShortVector h = narrow(r);
                h.intoArray(a, at + i);
                if (forward != null) h.intoMemorySegment(forward, (long) i * Short.BYTES, ORDER);
            }
            for (; i < n; i++) {
                float x = toFloat(wire.getAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i));
                float y = toFloat(a[at + i]);
                float r = switch (action) {
                    case SUM -> x + y;
                    case MAX -> Math.max(x, y);
                    default -> (x + y) / divisor;
                };
                short h = fromFloat(r);
                a[at + i] = h;
                if (forward != null) forward.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, i, h);
            }
        }

        /** bf16 bits → fp32: widen short → int (the sign-extension bits shift out) and move to the high half. */
        static FloatVector widen(ShortVector h) {
            return ((IntVector) h.convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 16)
                    .reinterpretAsFloats();
        }

        /** fp32 → bf16 bits lane by lane, exactly {@link #fromFloat}: (bits + 0x7fff + lsb) >>> 16, NaN kept quiet. */
        static ShortVector narrow(FloatVector f) {
            IntVector bits = f.reinterpretAsInts();
            IntVector hi = bits.lanewise(VectorOperators.LSHR, 16);
            IntVector rounded = bits.add(hi.and(1).add(0x7fff)).lanewise(VectorOperators.LSHR, 16);
            var nan = bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000);
            return (ShortVector) rounded.blend(hi.or(0x40), nan).convertShape(VectorOperators.I2S, H, 0);
        }
    }

    /** bf16 bits → fp32 (exact). */
    static float toFloat(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /** fp32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN. */
    static short fromFloat(float f) {
        int b = Float.floatToRawIntBits(f);
        if ((b & 0x7fffffff) > 0x7f800000) return (short) ((b >>> 16) | 0x40);
        return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }
}
