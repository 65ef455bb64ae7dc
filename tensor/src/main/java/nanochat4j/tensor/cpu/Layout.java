package nanochat4j.tensor.cpu;

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

    static void toBf16(float[] x, int xo, short[] y, int yo, int n) {
        Parallel.forRange(n, Elementwise.GRAIN, (s, e) -> {
            for (int i = s; i < e; i++) y[yo + i] = nanochat4j.tensor.DType.toBf16(x[xo + i]);
        });
    }

    static void fromBf16(short[] x, int xo, float[] y, int yo, int n) {
        Parallel.forRange(n, Elementwise.GRAIN, (s, e) -> {
            for (int i = s; i < e; i++) y[yo + i] = Float.intBitsToFloat((x[xo + i] & 0xffff) << 16);
        });
    }
}
