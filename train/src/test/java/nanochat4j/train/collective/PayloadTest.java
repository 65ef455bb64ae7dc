package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.cpu.Vec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The vectorized bf16 combine against a scalar fp32 reference, bit for bit, including ties, NaN, ±Inf, tails. */
class PayloadTest {
    private static final int[] ACTIONS = {Payload.SUM, Payload.MAX, Payload.SUM_DIVIDE};

    /** Pairs (wire, buffer) of bf16 bits whose fp32 combination hits the rounding and special cases. */
    private static final short[][] SPECIAL = {
            {0x3f80, 0x3b80}, // 1 + 2^-8: a tie between 1 and 1+2^-7, rounds to the even 1
            {0x3f81, 0x3b80}, // (1+2^-7) + 2^-8: a tie, rounds up to the even 1+2^-6
            {(short) 0xbf81, (short) 0xbb80}, // the same tie, negative
            {0x3f80, 0x3b81}, // just above the tie: rounds up
            {0x7fc0, 0x3f80}, // quiet NaN + 1
            {0x7f81, 0x3f80}, // signalling NaN pattern: stays NaN
            {(short) 0xffc1, 0x0000}, // negative NaN with payload
            {0x7f80, (short) 0xff80}, // +Inf + -Inf = NaN
            {0x7f80, 0x3f80}, // +Inf + 1
            {(short) 0xff80, 0x7f7f}, // -Inf and the largest finite
            {0x7f7f, 0x7f7f}, // largest finite + itself overflows to +Inf
            {0x0001, 0x0001}, // subnormals
            {(short) 0x8000, 0x0000}, // -0 + +0
            {(short) 0x8000, (short) 0x8000}, // -0 + -0
    };

    @ParameterizedTest(name = "{0} elements")
    @ValueSource(ints = {1, 7, 15, 16, 17, 33, 100, 1031})
    void vectorizedBf16CombineEqualsTheScalarReferenceBitForBit(int n) {
        SplittableRandom rnd = new SplittableRandom(n);
        short[] wire = new short[n], buf = new short[n];
        for (int i = 0; i < n; i++) {
            if (i % 3 == 0) { // special pairs land in vector lanes and in the scalar tail
                short[] p = SPECIAL[(i / 3) % SPECIAL.length];
                wire[i] = p[0];
                buf[i] = p[1];
            } else {
                wire[i] = DType.toBf16((float) rnd.nextGaussian() * 3);
                buf[i] = i % 5 == 1 ? wire[i] : DType.toBf16((float) rnd.nextGaussian());
            }
        }
        for (int action : ACTIONS) {
            for (int at : new int[] {0, 3}) { // also at an unaligned offset in the buffer
                short[] a = new short[n + at];
                System.arraycopy(buf, 0, a, at, n);
                short[] expected = a.clone();
                for (int i = 0; i < n; i++) expected[at + i] = reference(action, wire[i], buf[i], 3f);
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment w = arena.allocate((long) n * Short.BYTES);
                    MemorySegment.copy(wire, 0, w, ValueLayout.JAVA_SHORT_UNALIGNED, 0, n);
                    new Payload.Bf16(a).load(action, at, n, w, 3f);
                }
                for (int i = 0; i < a.length; i++) {
                    assertEquals(expected[i], a[i], "action " + action + " at " + at + " element " + i + ": wire 0x"
                            + Integer.toHexString(wire[Math.max(0, i - at)] & 0xffff) + " (vector lanes " + Vec.LANES + ")");
                }
                // fused combine-and-forward: the same bits in the buffer and in the forwarded frame
                short[] b = new short[n + at];
                System.arraycopy(buf, 0, b, at, n);
                short[] forwarded = new short[n];
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment w = arena.allocate((long) n * Short.BYTES), f = arena.allocate((long) n * Short.BYTES);
                    MemorySegment.copy(wire, 0, w, ValueLayout.JAVA_SHORT_UNALIGNED, 0, n);
                    new Payload.Bf16(b).loadForward(action, at, n, w, f, 3f);
                    MemorySegment.copy(f, ValueLayout.JAVA_SHORT_UNALIGNED, 0, forwarded, 0, n);
                }
                assertArrayEquals(expected, b, "loadForward action " + action);
                assertArrayEquals(java.util.Arrays.copyOfRange(expected, at, at + n), forwarded, "forwarded frame, action " + action);
            }
        }
    }

    @Test
    void roundingTiesGoToEvenAndNaNStaysQuietNaN() {
        assertEquals((short) 0x3f80, reference(Payload.SUM, (short) 0x3f80, (short) 0x3b80, 1));
        assertEquals((short) 0x3f82, reference(Payload.SUM, (short) 0x3f81, (short) 0x3b80, 1));
        assertEquals((short) 0x7f80, reference(Payload.SUM, (short) 0x7f7f, (short) 0x7f7f, 1));
        short nan = reference(Payload.SUM, (short) 0x7f80, (short) 0xff80, 1);
        assertEquals(0x7f80, nan & 0x7f80);
        assertEquals(0x40, nan & 0x40);
        // the vectorized path agrees on exactly these lanes
        short[] a = new short[64], wire = new short[64];
        java.util.Arrays.fill(a, (short) 0x3b80);
        java.util.Arrays.fill(wire, (short) 0x3f81);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment w = arena.allocate(wire.length * 2L);
            MemorySegment.copy(wire, 0, w, ValueLayout.JAVA_SHORT_UNALIGNED, 0, wire.length);
            new Payload.Bf16(a).load(Payload.SUM, 0, a.length, w, 1);
        }
        for (short s : a) assertEquals((short) 0x3f82, s);
    }

    /** fp32 math on the widened values, rounded once to bf16 (as DType.toBf16). */
    private static short reference(int action, short wire, short buf, float divisor) {
        float x = DType.fromBf16(wire), y = DType.fromBf16(buf);
        float r = switch (action) {
            case Payload.SUM -> x + y;
            case Payload.MAX -> Math.max(x, y);
            default -> (x + y) / divisor;
        };
        return DType.toBf16(r);
    }
}
