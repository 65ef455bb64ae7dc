package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.DType;

/**
 * Copies that change layout: narrow along a dim and its backward (zero pad), concat, assign into a slice (the
 * KV-cache insert), and bf16 ↔ f32 conversion. A tensor of shape (outer, D, inner) narrowed to [start, start+len)
 * of D is {@code outer} contiguous runs of len·inner elements, one arraycopy each.
 */
final class Layout {
    private Layout() {}

    /** dst (outer, dLen, inner) at dstStart of its dim ← src (outer, sLen, inner) from srcStart, len along the dim. */
    static void copyRuns(float[] src, int so, int sDim, int srcStart, float[] dst, int dOff, int dDim, int dstStart,
                         int len, int outer, int inner) {
        int run = len * inner;
        if (run == 0) return;
        Parallel.forRange(outer, Math.max(1, 16384 / run), (s, e) -> {
            for (int o = s; o < e; o++) {
                System.arraycopy(src, so + (o * sDim + srcStart) * inner, dst, dOff + (o * dDim + dstStart) * inner, run);
            }
        });
    }

    private static final VectorSpecies<Float> S = Vec.F;
    /** Shorts with the same lane count as {@link #S} (half its bits). */
    private static final VectorSpecies<Short> H = VectorSpecies.of(short.class, VectorShape.forBitSize(S.vectorBitSize() / 2));

    /**
     * fp32 → bf16 bits, round to nearest even: (bits + 0x7fff + lsb) >>> 16, NaN kept quiet (as
     * {@link DType#toBf16}), lanes narrowed int → short.
     */
    static void toBf16(float[] x, int xo, short[] y, int yo, int n) {
        Parallel.forRange(n, Elementwise.GRAIN, (s, e) -> {
            int i = s, ub = s + S.loopBound(e - s);
            for (; i < ub; i += S.length()) {
                IntVector bits = FloatVector.fromArray(S, x, xo + i).reinterpretAsInts();
                IntVector hi = bits.lanewise(VectorOperators.LSHR, 16);
                IntVector rounded = bits.add(hi.and(1).add(0x7fff)).lanewise(VectorOperators.LSHR, 16);
                var nan = bits.and(0x7fffffff).compare(VectorOperators.GT, 0x7f800000);
                rounded = rounded.blend(hi.or(0x40), nan);
                rounded.convertShape(VectorOperators.I2S, H, 0).reinterpretAsShorts().intoArray(y, yo + i);
            }
            for (; i < e; i++) y[yo + i] = DType.toBf16(x[xo + i]);
        });
    }

}
