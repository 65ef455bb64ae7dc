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

    /** {@link #sum(FloatVector)} of lane values kept in an array (L floats): the same tree, scalar, so the same bits. */
    public static float sum(float[] lanes) {
        float[] v = lanes.clone();
        for (int h = L / 2; h >= 1; h /= 2) {
            for (int i = 0; i < h; i++) v[i] = v[i] + v[i + h];
        }
        return v[0];
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

    private static final FloatVector V_LOG2E = FloatVector.broadcast(F, LOG2E), V_ROUND = FloatVector.broadcast(F, ROUND),
            V_NLN2_HI = FloatVector.broadcast(F, -LN2_HI), V_NLN2_LO = FloatVector.broadcast(F, -LN2_LO),
            V_C7 = FloatVector.broadcast(F, C7), V_C6 = FloatVector.broadcast(F, C6), V_C5 = FloatVector.broadcast(F, C5),
            V_C4 = FloatVector.broadcast(F, C4), V_C3 = FloatVector.broadcast(F, C3), V_C2 = FloatVector.broadcast(F, C2),
            V_ONE = FloatVector.broadcast(F, 1f), V_TWO = FloatVector.broadcast(F, 2f),
            V_LO = FloatVector.broadcast(F, EXP_LO), V_HI = FloatVector.broadcast(F, EXP_HI);

    /**
     * e^x per lane: x = n·ln2 + r, e^r by Taylor, times 2^n built in two halves (subnormal results too). Clamped by
     * compare and blend (NaN compares false and stays NaN), cheaper than max/min's Java semantics.
     */
    public static FloatVector exp(FloatVector x) {
        x = x.blend(V_LO, x.lt(V_LO)).blend(V_HI, x.compare(VectorOperators.GT, V_HI));
        FloatVector t = x.fma(V_LOG2E, V_ROUND);
        FloatVector p = expReduced(x, t);
        // n as int from t's low mantissa bits; 2^n = 2^h · 2^(n−h) with h = n >> 1, each factor a normal float
        IntVector ni = t.reinterpretAsInts().sub(ROUND_BITS);
        IntVector h = ni.lanewise(VectorOperators.ASHR, 1);
        FloatVector s1 = h.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        FloatVector s2 = ni.sub(h).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(s1).mul(s2);
    }

    /** e^r for x = n·ln2 + r, with t = x·log2e + ROUND holding n (Cody–Waite reduction, Taylor polynomial). */
    private static FloatVector expReduced(FloatVector x, FloatVector t) {
        FloatVector n = t.sub(V_ROUND);
        FloatVector r = n.fma(V_NLN2_HI, x).add(n.mul(V_NLN2_LO));
        return r.fma(V_C7, V_C6).fma(r, V_C5).fma(r, V_C4).fma(r, V_C3).fma(r, V_C2).fma(r, V_ONE).fma(r, V_ONE);
    }

    private static final int ROUND_BITS = Float.floatToRawIntBits(ROUND);

    /** Lower end of {@link #expNonPositive}'s domain: 2^n stays a normal float in one factor down to here. */
    public static final float EXP_NONPOSITIVE_LO = -87f;

    /**
     * e^x for x in [{@link #EXP_NONPOSITIVE_LO}, 0] (the caller guarantees it; outside, the result is wrong, not
     * clamped): {@link #exp(FloatVector)}'s reduction and polynomial, without the clamps and with 2^n as one normal
     * factor, 9 vector operations fewer. Same bits as {@code exp} on that domain. Softcapped logits minus their
     * bound (s − c ∈ [−2c, 0]) are the use.
     */
    public static FloatVector expNonPositive(FloatVector x) {
        FloatVector t = x.fma(V_LOG2E, V_ROUND);
        IntVector ni = t.reinterpretAsInts().sub(ROUND_BITS);
        return expReduced(x, t).mul(ni.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
    }

    /** The scalar twin of {@link #expNonPositive(FloatVector)}. */
    public static float expNonPositive(float x) {
        float t = Math.fma(x, LOG2E, ROUND);
        return expReduced(x, t) * Float.intBitsToFloat((Float.floatToRawIntBits(t) - ROUND_BITS + 127) << 23);
    }

    /** The scalar twin of {@link #exp(FloatVector)}: the same operations in the same order, so the same bits. */
    public static float exp(float x) {
        if (x < EXP_LO) x = EXP_LO;
        if (x > EXP_HI) x = EXP_HI;
        float t = Math.fma(x, LOG2E, ROUND);
        float p = expReduced(x, t);
        int ni = Float.floatToRawIntBits(t) - ROUND_BITS;
        int h = ni >> 1;
        float s1 = Float.intBitsToFloat((h + 127) << 23), s2 = Float.intBitsToFloat((ni - h + 127) << 23);
        return p * s1 * s2;
    }

    /** The scalar twin of {@link #expReduced(FloatVector, FloatVector)}. */
    private static float expReduced(float x, float t) {
        float n = t - ROUND;
        float r = Math.fma(n, -LN2_HI, x) + n * -LN2_LO;
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        return Math.fma(p, r, 1f);
    }

    // ---- tanh, sigmoid ----

    /** Below this |x| tanh is an odd Taylor polynomial (no cancellation); above, 1 − 2/(e^{2|x|} + 1). */
    private static final float TANH_SMALL = 0.55f;
    /** Taylor coefficients of tanh: x, x³ … x^17 (ratio of terms ≤ (0.55·2/π)² ≈ 0.12 on the small range). */
    private static final float T3 = -1f / 3, T5 = 2f / 15, T7 = -17f / 315, T9 = 62f / 2835, T11 = -1382f / 155925,
            T13 = 21844f / 6081075, T15 = -929569f / 638512875, T17 = 6404582f / 10854718875f;

    private static final FloatVector V_T3 = FloatVector.broadcast(F, T3), V_T5 = FloatVector.broadcast(F, T5),
            V_T7 = FloatVector.broadcast(F, T7), V_T9 = FloatVector.broadcast(F, T9), V_T11 = FloatVector.broadcast(F, T11),
            V_T13 = FloatVector.broadcast(F, T13), V_T15 = FloatVector.broadcast(F, T15), V_T17 = FloatVector.broadcast(F, T17);

    /**
     * tanh per lane (tanh(±inf) = ±1, NaN stays NaN). Each branch is computed only when some lane needs it: softcapped
     * logits are mostly all-small or all-large per vector.
     */
    public static FloatVector tanh(FloatVector x) {
        FloatVector ax = x.abs();
        VectorMask<Float> small = ax.lt(TANH_SMALL).or(x.test(VectorOperators.IS_NAN));
        FloatVector result = x;
        if (!small.allTrue()) {
            FloatVector e = exp(ax.add(ax));
            FloatVector big = V_ONE.sub(V_TWO.div(e.add(V_ONE)));
            result = big.blend(big.neg(), x.lt(0f)); // |tanh| came from |x|
        }
        if (small.anyTrue()) {
            FloatVector x2 = x.mul(x);
            FloatVector p = x2.fma(V_T17, V_T15).fma(x2, V_T13).fma(x2, V_T11).fma(x2, V_T9).fma(x2, V_T7).fma(x2, V_T5)
                    .fma(x2, V_T3);
            result = result.blend(p.mul(x2).fma(x, x), small); // x + x·x²·p
        }
        return result;
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
        return V_ONE.div(exp(x.neg()).add(V_ONE));
    }

    /** The scalar twin of {@link #sigmoid(FloatVector)}. */
    public static float sigmoid(float x) {
        return 1f / (exp(-x) + 1f);
    }
}
