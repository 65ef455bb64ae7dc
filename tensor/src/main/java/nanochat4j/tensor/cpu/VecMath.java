package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector math whose results do not depend on the JIT tier, the vector width or where an element falls.
 *
 * <p>Why not the Vector API's own: {@code reduceLanes(ADD)} may add the lanes in any order, and does — the
 * interpreter and C1 add them left to right, C2 as a tree — so a kernel gave different bits before and after it was
 * compiled (GemmTest's thread-count check failed that way on AVX2). {@code lanewise(EXP|TANH)} calls SVML where the
 * JVM has it for that width and falls back to a scalar {@code Math.exp} per lane elsewhere: other bits again, and a
 * scalar loop where the JVM has no stub (128-bit NEON, some AVX2 builds). Here every function is plain lane-wise
 * arithmetic (add, mul, fma, bit shifts) that C2 and the fallback compute identically, and each vector function has
 * a scalar twin doing the same operations in the same order, so a loop's scalar tail gives the same bits as its
 * vector body would.
 *
 * <p>Accuracy (checked in VecMathTest against float64 over dense sweeps): exp within 2 ulp, tanh and sigmoid within
 * 2e-7 absolute / 3 ulp relative, over the whole float range.
 */
public final class VecMath {
    private VecMath() {}

    private static final VectorSpecies<Float> F = Vec.F;
    private static final VectorSpecies<Integer> I = F.withLanes(int.class);
    private static final int L = F.length();

    // ---- horizontal sums in a fixed order ----

    private static final VectorShuffle<Float> ROT8 = rotation(8), ROT4 = rotation(4), ROT2 = rotation(2), ROT1 = rotation(1);

    private static VectorShuffle<Float> rotation(int by) {
        return VectorShuffle.fromOp(F, i -> (i + by) % L);
    }

    /**
     * Σ lanes of v as a fixed tree: lane i + lane i+L/2, then + L/4, …, 1 (what C2 does for reduceLanes, but the
     * same in every tier).
     */
    public static float sum(FloatVector v) {
        if (L >= 16) v = v.add(v.rearrange(ROT8));
        if (L >= 8) v = v.add(v.rearrange(ROT4));
        if (L >= 4) v = v.add(v.rearrange(ROT2));
        if (L >= 2) v = v.add(v.rearrange(ROT1));
        return v.lane(0);
    }

    // ---- exp ----

    private static final float LOG2E = 1.44269504088896341f;
    /** ln 2 split so that n·LN2_HI is exact for |n| ≤ 2^9 (Cody–Waite). */
    private static final float LN2_HI = 0.693145751953125f, LN2_LO = 1.42860682030941723212e-6f;
    /** 1.5·2^23: adding it rounds a float of magnitude < 2^22 to an integer (ties to even) in its low mantissa bits. */
    private static final float ROUND = 12582912f;
    /** Beyond these exp is 0 or +inf in float; clamping keeps 2^n's exponent arithmetic in range. */
    private static final float EXP_LO = -104f, EXP_HI = 89f;
    /** 1/k! for k = 7 … 2: Taylor on |r| ≤ ln2/2 (error r^8/8! ≤ 6e-9 relative, below half an ulp). */
    private static final float C7 = 1f / 5040, C6 = 1f / 720, C5 = 1f / 120, C4 = 1f / 24, C3 = 1f / 6, C2 = 0.5f;

    /** e^x per lane: x = n·ln2 + r, e^r by Taylor, times 2^n built in two halves (subnormal results too). */
    public static FloatVector exp(FloatVector x) {
        x = x.max(EXP_LO).min(EXP_HI); // NaN stays NaN (Math.max/min semantics)
        FloatVector t = x.fma(FloatVector.broadcast(F, LOG2E), FloatVector.broadcast(F, ROUND));
        FloatVector n = t.sub(ROUND);
        FloatVector r = n.fma(FloatVector.broadcast(F, -LN2_HI), x);
        r = n.fma(FloatVector.broadcast(F, -LN2_LO), r);
        FloatVector p = r.fma(FloatVector.broadcast(F, C7), FloatVector.broadcast(F, C6));
        p = p.fma(r, FloatVector.broadcast(F, C5));
        p = p.fma(r, FloatVector.broadcast(F, C4));
        p = p.fma(r, FloatVector.broadcast(F, C3));
        p = p.fma(r, FloatVector.broadcast(F, C2));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        p = p.fma(r, FloatVector.broadcast(F, 1f));
        // n as int from t's low mantissa bits; 2^n = 2^h · 2^(n−h) with h = n >> 1, each factor a normal float
        IntVector ni = t.reinterpretAsInts().sub(Float.floatToRawIntBits(ROUND));
        IntVector h = ni.lanewise(VectorOperators.ASHR, 1);
        FloatVector s1 = h.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = ni.sub(h).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(s1).mul(s2);
    }

    /** The scalar twin of {@link #exp(FloatVector)}: the same operations in the same order, so the same bits. */
    public static float exp(float x) {
        x = Math.min(Math.max(x, EXP_LO), EXP_HI);
        float t = Math.fma(x, LOG2E, ROUND);
        float n = t - ROUND;
        float r = Math.fma(n, -LN2_HI, x);
        r = Math.fma(n, -LN2_LO, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        int ni = Float.floatToRawIntBits(t) - Float.floatToRawIntBits(ROUND);
        int h = ni >> 1;
        float s1 = Float.intBitsToFloat((h + 127) << 23), s2 = Float.intBitsToFloat((ni - h + 127) << 23);
        return p * s1 * s2;
    }

    // ---- tanh, sigmoid ----

    /** Below this |x| tanh is an odd Taylor polynomial (no cancellation); above, 1 − 2/(e^{2|x|} + 1). */
    private static final float TANH_SMALL = 0.55f;
    /** Taylor coefficients of tanh: x, x³ … x^17 (ratio of terms ≤ (0.55·2/π)² ≈ 0.12 on the small range). */
    private static final float T3 = -1f / 3, T5 = 2f / 15, T7 = -17f / 315, T9 = 62f / 2835, T11 = -1382f / 155925,
            T13 = 21844f / 6081075, T15 = -929569f / 638512875, T17 = 6404582f / 10854718875f;

    /** tanh per lane (tanh(±inf) = ±1, NaN stays NaN). */
    public static FloatVector tanh(FloatVector x) {
        FloatVector ax = x.abs();
        FloatVector e = exp(ax.add(ax));
        FloatVector big = FloatVector.broadcast(F, 1f).sub(FloatVector.broadcast(F, 2f).div(e.add(1f)));
        FloatVector x2 = x.mul(x);
        FloatVector p = x2.fma(FloatVector.broadcast(F, T17), FloatVector.broadcast(F, T15));
        p = p.fma(x2, FloatVector.broadcast(F, T13));
        p = p.fma(x2, FloatVector.broadcast(F, T11));
        p = p.fma(x2, FloatVector.broadcast(F, T9));
        p = p.fma(x2, FloatVector.broadcast(F, T7));
        p = p.fma(x2, FloatVector.broadcast(F, T5));
        p = p.fma(x2, FloatVector.broadcast(F, T3));
        FloatVector small = p.mul(x2).fma(x, x); // x + x·x²·p
        VectorMask<Float> isSmall = ax.compare(VectorOperators.LT, TANH_SMALL);
        FloatVector signed = big.blend(big.neg(), x.compare(VectorOperators.LT, 0f)); // |tanh| came from |x|
        return signed.blend(small, isSmall.or(x.test(VectorOperators.IS_NAN)));
    }

    /** The scalar twin of {@link #tanh(FloatVector)}. */
    public static float tanh(float x) {
        float ax = Math.abs(x);
        if (ax < TANH_SMALL || Float.isNaN(x)) {
            float x2 = x * x;
            float p = Math.fma(x2, T17, T15);
            p = Math.fma(p, x2, T13);
            p = Math.fma(p, x2, T11);
            p = Math.fma(p, x2, T9);
            p = Math.fma(p, x2, T7);
            p = Math.fma(p, x2, T5);
            p = Math.fma(p, x2, T3);
            return Math.fma(p * x2, x, x);
        }
        float big = 1f - 2f / (exp(ax + ax) + 1f);
        return Math.copySign(big, x);
    }

    /** 1/(1 + e^−x) per lane. */
    public static FloatVector sigmoid(FloatVector x) {
        return FloatVector.broadcast(F, 1f).div(exp(x.neg()).add(1f));
    }

    /** The scalar twin of {@link #sigmoid(FloatVector)}. */
    public static float sigmoid(float x) {
        return 1f / (exp(-x) + 1f);
    }
}
