package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.DType;

/**
 * The decode-sized product: a few input rows x against a weight W stored (n, k), y[b, r] = α·W[r,:]·x[b,:] + β·y[b, r].
 * It is bound by reading W, so nothing is packed (packing would copy the whole weight to use it a few times). Two
 * loops:
 * <ul>
 *   <li>Several input rows, and one input row at 512 bits: four W rows per pass, each streamed from memory once for
 *       the first pair of input rows and from L1 for the others, with two input rows per pass (eight independent FMA
 *       chains, six loads per eight FMAs); an odd last input row, or a single one, runs the one-row kernels (four
 *       chains, the pair kernel's first-row sums).</li>
 *   <li>One input row (batch-1 decode) up to 256 bits ({@link #STREAM_ROWS}): one W row at a time, front to back,
 *       with four accumulators over k, so W is read as one sequential stream, which the hardware prefetcher follows:
 *       on the lm_head 20–45% faster than four rows side by side (four short streams restarted every four rows) at
 *       AVX2 and 128 bits (docs/BENCHMARKS.md). At 512 bits it is 15–25% slower: a 64-byte vector of a Java array
 *       (data 16 bytes past a line) always straddles two cache lines, and a row of 384 floats is six passes. With
 *       several input rows it would load each W vector once per input row: batch-8 decode ran 16% slower.</li>
 * </ul>
 * W is fp32 or bf16 (widened to fp32 in registers); every sum is fp32 in its loop's fixed order, the same for every
 * row whatever range of rows a thread is given, so any split of the rows gives the same bits.
 * <p>
 * Callers split the rows [r0, r1) over threads themselves: {@link Gemm} over its pool for x·Wᵀ with at most
 * {@link Gemm#GEMV_MAX_ROWS} rows, the model's fused decode step over its spinning team.
 */
public final class Gemv {
    private Gemv() {}

    private static final VectorSpecies<Float> F = Vec.F;
    private static final int L = Vec.LANES;
    /** The row-at-a-time loop for a single input row up to 256-bit vectors (see the class comment). */
    static final boolean STREAM_ROWS = L <= 8;

    /** The loops this JVM runs, for {@code bench infer}. */
    public static String describe() {
        return "GEMV " + F.vectorBitSize() + "-bit: batch 1 "
                + (STREAM_ROWS ? "one weight row at a time (4 accumulators)" : "four weight rows per pass")
                + ", batches four weight rows per pass";
    }

    /**
     * y[yo + b·ldy + r] = α·Σ_j W[r, j]·x[xo + b·ldx + j] + β·y[...] for r in [r0, r1), b in [0, nb); β = 0 never reads
     * y. W row r starts at wo + r·ldw in {@code wf} (fp32) or, when {@code wf} is null, in {@code wb} (bf16 bits).
     */
    public static void rows(float[] wf, short[] wb, int wo, int ldw, int k, float[] x, int xo, int ldx, int nb,
                            float[] y, int yo, int ldy, int r0, int r1, float alpha, float beta) {
        if (STREAM_ROWS && nb == 1) streamRows(wf, wb, wo, ldw, k, x, xo, ldx, nb, y, yo, ldy, r0, r1, alpha, beta);
        else quadRows(wf, wb, wo, ldw, k, x, xo, ldx, nb, y, yo, ldy, r0, r1, alpha, beta);
    }

    /** {@link #rows} four W rows per pass (every batch above one row; tests run both loops at every width). */
    static void quadRows(float[] wf, short[] wb, int wo, int ldw, int k, float[] x, int xo, int ldx, int nb,
                         float[] y, int yo, int ldy, int r0, int r1, float alpha, float beta) {
        int r = r0;
        for (; r + 4 <= r1; r += 4) {
            int b = 0;
            int w = wo + r * ldw;
            for (; b + 2 <= nb; b += 2) {
                int xa = xo + b * ldx, ya = yo + b * ldy + r;
                if (wf != null) quadF32(wf, w, ldw, k, x, xa, ldx, y, ya, ldy, alpha, beta);
                else quadBf16(wb, w, ldw, k, x, xa, ldx, y, ya, ldy, alpha, beta);
            }
            if (b < nb) {
                int xa = xo + b * ldx, ya = yo + b * ldy + r;
                if (wf != null) quadF32One(wf, w, ldw, k, x, xa, y, ya, alpha, beta);
                else quadBf16One(wb, w, ldw, k, x, xa, y, ya, alpha, beta);
            }
        }
        for (; r < r1; r++) {
            for (int b = 0; b < nb; b++) {
                int yi = yo + b * ldy + r;
                float d = wf != null ? dotF32(wf, wo + r * ldw, k, x, xo + b * ldx) : dotBf16(wb, wo + r * ldw, k, x, xo + b * ldx);
                y[yi] = out(d, alpha, beta, y, yi);
            }
        }
    }

    /** {@link #rows} one W row at a time, front to back, against each input row in turn (the row-at-a-time loop). */
    static void streamRows(float[] wf, short[] wb, int wo, int ldw, int k, float[] x, int xo, int ldx, int nb,
                           float[] y, int yo, int ldy, int r0, int r1, float alpha, float beta) {
        for (int r = r0; r < r1; r++) {
            int w = wo + r * ldw;
            for (int b = 0; b < nb; b++) {
                int yi = yo + b * ldy + r;
                float s = wf != null ? Vec.dot(wf, w, x, xo + b * ldx, k) : rowBf16(wb, w, k, x, xo + b * ldx);
                y[yi] = out(s, alpha, beta, y, yi);
            }
        }
    }

    /** {@link Vec#dot} over bf16 weights, widened to fp32 in registers (a loop of its own, as {@link #quadBf16}). */
    private static float rowBf16(short[] w, int wa, int k, float[] x, int xa) {
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        int j = 0, ub4 = k / (4 * L) * (4 * L), ub = k / L * L;
        for (; j < ub4; j += 4 * L) {
            a0 = Vec.fromBf16(w, wa + j).fma(FloatVector.fromArray(F, x, xa + j), a0);
            a1 = Vec.fromBf16(w, wa + j + L).fma(FloatVector.fromArray(F, x, xa + j + L), a1);
            a2 = Vec.fromBf16(w, wa + j + 2 * L).fma(FloatVector.fromArray(F, x, xa + j + 2 * L), a2);
            a3 = Vec.fromBf16(w, wa + j + 3 * L).fma(FloatVector.fromArray(F, x, xa + j + 3 * L), a3);
        }
        for (; j < ub; j += L) a0 = Vec.fromBf16(w, wa + j).fma(FloatVector.fromArray(F, x, xa + j), a0);
        float s = VecMath.sum(a0.add(a1).add(a2.add(a3)));
        for (; j < k; j++) s += DType.fromBf16(w[wa + j]) * x[xa + j];
        return s;
    }

    /*
     * Four outputs for each of the input rows at xa and xa + dx: y[ya + q] and y[ya + dy + q] for W rows q = 0..3
     * starting at wa; the *One kernels do the same for one input row, in the same order (a sample's sums do not depend
     * on whether a second row ran beside it). The two weight dtypes have a loop each: one loop that picks the load per
     * dtype made C2 keep the FloatVectors in memory across the branch, and the GEMV slower (docs/BENCHMARKS.md).
     *
     * No kernel here branches on how it is called (one row or two, fp32 or bf16): that choice is made by the scalar
     * drivers above. A vector kernel is recompiled many times while its Vector API profiles settle, and once C2 counts
     * too many recompiles of a method it compiles a branch its profile never saw taken as a trap that deoptimizes on
     * every call and never recompiles. quadF32 had "one input row: store the second result or not" inside it; where the
     * prompt's prefill (two rows at a time) compiled it first, every batch-1 decode call then went through the
     * interpreter: 15 tok/s instead of 360 in about one JVM in four (JFR: millions of jdk.Deoptimization events,
     * reason unstable_if, action none; docs/BENCHMARKS.md).
     */

    private static void quadF32(float[] w, int wa, int ldw, int k, float[] x, int xa, int dx, float[] y, int ya, int dy,
                                 float alpha, float beta) {
        int w0 = wa, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw, xb = xa + dx;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        var b0 = FloatVector.zero(F);
        var b1 = FloatVector.zero(F);
        var b2 = FloatVector.zero(F);
        var b3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            var xw = FloatVector.fromArray(F, x, xb + j);
            var v0 = FloatVector.fromArray(F, w, w0 + j);
            var v1 = FloatVector.fromArray(F, w, w1 + j);
            var v2 = FloatVector.fromArray(F, w, w2 + j);
            var v3 = FloatVector.fromArray(F, w, w3 + j);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            b0 = v0.fma(xw, b0);
            b1 = v1.fma(xw, b1);
            b2 = v2.fma(xw, b2);
            b3 = v3.fma(xw, b3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        float t0 = VecMath.sum(b0), t1 = VecMath.sum(b1);
        float t2 = VecMath.sum(b2), t3 = VecMath.sum(b3);
        for (; j < k; j++) {
            float xj = x[xa + j], xk = x[xb + j];
            s0 += w[w0 + j] * xj;
            s1 += w[w1 + j] * xj;
            s2 += w[w2 + j] * xj;
            s3 += w[w3 + j] * xj;
            t0 += w[w0 + j] * xk;
            t1 += w[w1 + j] * xk;
            t2 += w[w2 + j] * xk;
            t3 += w[w3 + j] * xk;
        }
        put(y, ya, s0, s1, s2, s3, alpha, beta);
        put(y, ya + dy, t0, t1, t2, t3, alpha, beta);
    }

    /** {@link #quadF32} over bf16 weights, widened to fp32 in registers. */
    private static void quadBf16(short[] w, int wa, int ldw, int k, float[] x, int xa, int dx, float[] y, int ya, int dy,
                                 float alpha, float beta) {
        int w0 = wa, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw, xb = xa + dx;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        var b0 = FloatVector.zero(F);
        var b1 = FloatVector.zero(F);
        var b2 = FloatVector.zero(F);
        var b3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            var xw = FloatVector.fromArray(F, x, xb + j);
            var v0 = Vec.fromBf16(w, w0 + j);
            var v1 = Vec.fromBf16(w, w1 + j);
            var v2 = Vec.fromBf16(w, w2 + j);
            var v3 = Vec.fromBf16(w, w3 + j);
            a0 = v0.fma(xv, a0);
            a1 = v1.fma(xv, a1);
            a2 = v2.fma(xv, a2);
            a3 = v3.fma(xv, a3);
            b0 = v0.fma(xw, b0);
            b1 = v1.fma(xw, b1);
            b2 = v2.fma(xw, b2);
            b3 = v3.fma(xw, b3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        float t0 = VecMath.sum(b0), t1 = VecMath.sum(b1);
        float t2 = VecMath.sum(b2), t3 = VecMath.sum(b3);
        for (; j < k; j++) {
            float xj = x[xa + j], xk = x[xb + j];
            float u0 = DType.fromBf16(w[w0 + j]), u1 = DType.fromBf16(w[w1 + j]);
            float u2 = DType.fromBf16(w[w2 + j]), u3 = DType.fromBf16(w[w3 + j]);
            s0 += u0 * xj;
            s1 += u1 * xj;
            s2 += u2 * xj;
            s3 += u3 * xj;
            t0 += u0 * xk;
            t1 += u1 * xk;
            t2 += u2 * xk;
            t3 += u3 * xk;
        }
        put(y, ya, s0, s1, s2, s3, alpha, beta);
        put(y, ya + dy, t0, t1, t2, t3, alpha, beta);
    }

    /** {@link #quadF32}'s first input row alone (its a-sums, same operations and order). */
    private static void quadF32One(float[] w, int wa, int ldw, int k, float[] x, int xa, float[] y, int ya,
                                   float alpha, float beta) {
        int w0 = wa, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            a0 = FloatVector.fromArray(F, w, w0 + j).fma(xv, a0);
            a1 = FloatVector.fromArray(F, w, w1 + j).fma(xv, a1);
            a2 = FloatVector.fromArray(F, w, w2 + j).fma(xv, a2);
            a3 = FloatVector.fromArray(F, w, w3 + j).fma(xv, a3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        for (; j < k; j++) {
            float xj = x[xa + j];
            s0 += w[w0 + j] * xj;
            s1 += w[w1 + j] * xj;
            s2 += w[w2 + j] * xj;
            s3 += w[w3 + j] * xj;
        }
        put(y, ya, s0, s1, s2, s3, alpha, beta);
    }

    /** {@link #quadBf16}'s first input row alone (its a-sums, same operations and order). */
    private static void quadBf16One(short[] w, int wa, int ldw, int k, float[] x, int xa, float[] y, int ya,
                                    float alpha, float beta) {
        int w0 = wa, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) {
            var xv = FloatVector.fromArray(F, x, xa + j);
            a0 = Vec.fromBf16(w, w0 + j).fma(xv, a0);
            a1 = Vec.fromBf16(w, w1 + j).fma(xv, a1);
            a2 = Vec.fromBf16(w, w2 + j).fma(xv, a2);
            a3 = Vec.fromBf16(w, w3 + j).fma(xv, a3);
        }
        float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1);
        float s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
        for (; j < k; j++) {
            float xj = x[xa + j];
            s0 += DType.fromBf16(w[w0 + j]) * xj;
            s1 += DType.fromBf16(w[w1 + j]) * xj;
            s2 += DType.fromBf16(w[w2 + j]) * xj;
            s3 += DType.fromBf16(w[w3 + j]) * xj;
        }
        put(y, ya, s0, s1, s2, s3, alpha, beta);
    }

    private static void put(float[] y, int o, float s0, float s1, float s2, float s3, float alpha, float beta) {
        y[o] = out(s0, alpha, beta, y, o);
        y[o + 1] = out(s1, alpha, beta, y, o + 1);
        y[o + 2] = out(s2, alpha, beta, y, o + 2);
        y[o + 3] = out(s3, alpha, beta, y, o + 3);
    }

    private static float out(float s, float alpha, float beta, float[] y, int i) {
        return beta == 0f ? alpha * s : alpha * s + beta * y[i];
    }

    /** One W row at wo against one input row at xo: the same operations, in the same order, as one lane of {@link #quadF32}. */
    private static float dotF32(float[] w, int wo, int k, float[] x, int xo) {
        var acc = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) acc = FloatVector.fromArray(F, w, wo + j).fma(FloatVector.fromArray(F, x, xo + j), acc);
        float s = VecMath.sum(acc);
        for (; j < k; j++) s += w[wo + j] * x[xo + j];
        return s;
    }

    /** {@link #dotF32} over bf16 weights, as one lane of {@link #quadBf16}. */
    private static float dotBf16(short[] w, int wo, int k, float[] x, int xo) {
        var acc = FloatVector.zero(F);
        int j = 0, ub = k / L * L;
        for (; j < ub; j += L) acc = Vec.fromBf16(w, wo + j).fma(FloatVector.fromArray(F, x, xo + j), acc);
        float s = VecMath.sum(acc);
        for (; j < k; j++) s += DType.fromBf16(w[wo + j]) * x[xo + j];
        return s;
    }
}
