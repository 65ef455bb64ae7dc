package nanochat4j.tensor.cpu;

import java.util.Arrays;
import java.util.concurrent.atomic.AtomicLong;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.OpChecks;

/**
 * Causal self-attention with GQA and a left sliding window, flash-style: forward, backward and the KV-cache form.
 * <ul>
 *   <li>Mask: query head h reads kv head h/(H/KV); key j is visible to query i iff j &lt;= i and
 *       (window &lt; 0 or i - j &lt;= window), so a window W sees W+1 keys. Key tiles no query of a block can see
 *       are never visited (work is O(T·min(T, W))); fully visible tiles skip the mask, and partially visible ones
 *       (diagonal, window edge) are computed in chunks of {@link #RC} rows over only the columns they can see.</li>
 *   <li>Never a T×T matrix: queries go in blocks of {@link #BQ} rows against tiles of {@link #BK} keys with an
 *       online softmax (running max m and sum l per row); scores live in a BQ×BK scratch tile. Base-2 inside:
 *       p = 2^(s·scale·log2e − m), and lse = (m + log2 l)·ln2 is saved for the backward.</li>
 *   <li>GQA without repeating K/V: the H/KV query heads of one kv head share every K/V tile. The forward keeps a
 *       thread's transposed keys Kᵀ across the query blocks of one (batch, kv head) it walks.</li>
 *   <li>Backward (FlashAttention-2): recompute P = exp(S − lse); D_i = rowsum(dO∘O); dV += Pᵀ·dO, dP = dO·Vᵀ,
 *       dS = P∘(dP − D_i), dK += scale·dSᵀ·Q, dQ += scale·dS·K. One task per (batch, kv head) walks its key tiles
 *       and owns its dQ rows, so nothing is accumulated across threads.</li>
 *   <li>Every product is the one register-tiled kernel {@link #gemm}: broadcast-scalar × vector FMAs over tiles of
 *       4 rows × 4 vectors (32-register ISAs) or 4 rows × 2 vectors (AVX2). exp is a vector polynomial
 *       {@link #exp2}. Per-thread scratch, reused across calls: no allocation per tile.</li>
 *   <li>Decode (fewer than 4 query rows) skips the K transpose and scores with direct dot products; it is
 *       memory-bound over the cache. {@link #decodeRow} is the same for one query row of GPT's fused decode step.</li>
 * </ul>
 * Parallel over (batch, kv head, query block) forward and (batch, kv head) backward with {@link Parallel}.
 */
public final class Attention {
    private Attention() {}

    private static final VectorSpecies<Float> F = Vec.F;
    private static final int L = Vec.LANES;
    /** Query rows per block (per head) and keys per tile. */
    static final int BQ = 64, BK = 64;
    /** Rows per chunk of a partially visible tile: each chunk only computes the key columns its rows can see. */
    private static final int RC = 16;
    private static final float LOG2E = 1.4426950408889634f, LN2 = 0.6931471805599453f;
    /** True where the ISA has 32 vector registers, so a 16-accumulator tile does not spill. */
    private static final boolean WIDE = Vec.REGISTERS == 32;
    /** The code path this JVM runs, for {@code bench kernels}. */
    public static String describe() {
        return "flash attention: tiles " + BQ + "x" + BK + ", " + (WIDE ? "4x4" : "4x2") + "-vector score tile, exp2 polynomial";
    }

    /** Numbers forward calls, so a thread's transposed keys are never reused across calls. */
    private static final AtomicLong CALLS = new AtomicLong();

    // ---------------------------------------------------------------------------------------------------------
    // Forward. q (B,T,H,D), k/v (B,T,KV,D) -> y (B,T,H,D), lse (B,H,T) natural-log sum-exp of scale·q·k per row.
    // ---------------------------------------------------------------------------------------------------------

    public static void forward(float[] q, float[] k, float[] v, float[] y, float[] lse,
                               int B, int T, int H, int KV, int D, int window, float scale) {
        checkForward("forward", q, k, v, y, lse, B, T, H, KV, D, scale);
        run(q, k, v, y, lse, B, T, T, 0, H, KV, D, window, scale);
    }

    // KV-cache form: q (B,Tq,H,D) at absolute positions pos..pos+Tq-1; kCache/vCache (B,Tmax,KV,D) hold keys
    // 0..pos+Tq-1 (the caller wrote the new ones); y (B,Tq,H,D). Tq=1 is decode, Tq>1 a prefill chunk.
    public static void forwardCached(float[] q, float[] kCache, float[] vCache, float[] y,
                                     int B, int Tq, int Tmax, int pos, int H, int KV, int D, int window, float scale) {
        OpChecks.attentionCached(B, Tq, Tmax, pos, H, KV, D, scale);
        String shapes = OpChecks.attentionCachedShapes(B, Tq, Tmax, pos, H, KV, D);
        long qn = (long) B * Tq * H * D, cn = (long) B * Tmax * KV * D;
        checkLen("forwardCached", "q", q, qn, shapes);
        checkLen("forwardCached", "y", y, qn, shapes);
        checkLen("forwardCached", "kCache", kCache, cn, shapes);
        checkLen("forwardCached", "vCache", vCache, cn, shapes);
        if (qn > Integer.MAX_VALUE || cn > Integer.MAX_VALUE)
            throw new IllegalArgumentException("attention forwardCached: more than 2^31 elements, got " + shapes);
        run(q, kCache, vCache, y, null, B, Tq, Tmax, pos, H, KV, D, window, scale);
    }

    /** Shared forward: Tq query rows at positions pos.. against keys of a (B,Tk,KV,D) store; lse may be null. */
    private static void run(float[] q, float[] k, float[] v, float[] y, float[] lse,
                            int B, int Tq, int Tk, int pos, int H, int KV, int D, int window, float scale) {
        int qBlocks = (Tq + BQ - 1) / BQ;
        long call = CALLS.incrementAndGet();
        Parallel.forRange(B * KV * qBlocks, (start, end) -> {
            Scratch s = Scratch.get(H / KV, D);
            for (int item = start; item < end; item++) {
                int qb = item % qBlocks, bg = item / qBlocks;
                forwardBlock(s, call, q, k, v, y, lse, bg / KV, bg % KV, qb * BQ, Math.min(BQ, Tq - qb * BQ),
                        Tq, Tk, pos, H, KV, D, window, scale);
            }
        });
    }

    /** Rows t0..t0+rows-1 (positions pos+t) of the G query heads of kv head g in batch row b. */
    private static void forwardBlock(Scratch sc, long call, float[] q, float[] k, float[] v, float[] y, float[] lse,
                                     int b, int g, int t0, int rows, int Tq, int Tk, int pos,
                                     int H, int KV, int D, int window, float scale) {
        int G = H / KV, qStride = H * D, kStride = KV * D;
        int i0 = pos + t0, i1 = i0 + rows;                         // absolute positions [i0, i1)
        float sc2 = scale * LOG2E;
        float[] o = sc.o, m = sc.m, l = sc.l, s = sc.s;
        boolean[] fixed = sc.fixedMax;
        Arrays.fill(o, 0, G * rows * D, 0f);
        Arrays.fill(l, 0, G * rows, 0f);
        int kLo = window < 0 ? 0 : Math.max(0, i0 - window);
        boolean direct = rows < 4;                                 // decode: dot products beat transposing K
        float[] kt = direct ? null : sc.keysTransposed(call, k, b, g, kLo, i1, Tk, KV, D);   // kt[d·ld + j]
        int ld = direct ? 0 : sc.ktLd;
        // A row whose scores are bounded, |s·scale·log2e| <= |q|·max|k|·scale·log2e <= 60 (always so with QK-norm),
        // keeps m = 0: p = 2^(s·sc2) stays within 2^±60, so no running max, no rescaling. Others run the online max.
        for (int hh = 0; hh < G; hh++) {
            for (int r = 0; r < rows; r++) {
                int qo = ((b * Tq + t0 + r) * H + g * G + hh) * D;
                fixed[hh * rows + r] = !direct && (float) Math.sqrt(dot(q, qo, q, qo, D)) * sc.ktMaxNorm * sc2 <= 60f;
                m[hh * rows + r] = fixed[hh * rows + r] ? 0f : Float.NEGATIVE_INFINITY;
            }
        }
        for (int k0 = kLo; k0 < i1; k0 += BK) {
            int n = Math.min(BK, i1 - k0), np = roundUp(n, 2 * L);
            int kvOff = ((b * Tk + k0) * KV + g) * D;
            boolean full = k0 + n - 1 <= i0 && (window < 0 || i1 - 1 - k0 <= window);
            for (int hh = 0; hh < G; hh++) {
                int qOff = ((b * Tq + t0) * H + g * G + hh) * D, oRow = hh * rows;
                if (direct) dots(q, qOff, qStride, rows, k, kvOff, kStride, n, D, s, np);
                // Chunks of RC rows only touch the columns [lo, hi) some row of theirs can see (diagonal/window edge)
                for (int r0 = 0; r0 < rows; r0 += RC) {
                    int rc = Math.min(RC, rows - r0), lo = 0, hi = n;
                    if (!full) {
                        lo = Math.max(0, (window < 0 ? 0 : i0 + r0 - window) - k0) / (2 * L) * (2 * L);
                        hi = Math.min(n, i0 + r0 + rc - k0);
                        if (hi <= lo) continue;
                    }
                    if (!direct) gemm(q, qOff + r0 * qStride, qStride, 1, kt, k0 + lo, ld, s, r0 * np + lo, np,
                            rc, roundUp(hi - lo, 2 * L), D, false);                           // S = Q·Kᵀ
                    for (int r = r0; r < r0 + rc; r++) {
                        int i = i0 + r, c0 = 0, c1 = n, so = r * np;
                        if (!full) {
                            c0 = Math.max(0, (window < 0 ? 0 : i - window) - k0);
                            c1 = Math.min(n, i - k0 + 1);
                        }
                        if (c1 <= c0) {                            // nothing visible to this row in this tile
                            Arrays.fill(s, so + lo, so + hi, 0f);
                            continue;
                        }
                        if (fixed[oRow + r]) {
                            l[oRow + r] += expShift(s, so + c0, c1 - c0, sc2, 0f);
                            Arrays.fill(s, so + lo, so + c0, 0f);
                            Arrays.fill(s, so + c1, so + hi, 0f);
                            continue;
                        }
                        float mOld = m[oRow + r];
                        float mNew = Math.max(mOld, rowMax(s, so + c0, c1 - c0) * sc2);
                        float sum = expShift(s, so + c0, c1 - c0, sc2, mNew);
                        Arrays.fill(s, so + lo, so + c0, 0f);
                        Arrays.fill(s, so + c1, so + hi, 0f);
                        float corr = mOld == Float.NEGATIVE_INFINITY ? 0f : exp2(mOld - mNew);
                        l[oRow + r] = l[oRow + r] * corr + sum;
                        m[oRow + r] = mNew;
                        if (corr != 1f) scaleRow(o, (oRow + r) * D, D, corr);
                    }
                    gemm(s, r0 * np + lo, np, 1, v, kvOff + lo * kStride, kStride, o, (oRow + r0) * D, D,
                            rc, D, hi - lo, true);                                          // O += P·V
                }
            }
        }
        for (int hh = 0; hh < G; hh++) {
            int h = g * G + hh;
            for (int r = 0; r < rows; r++) {
                int idx = hh * rows + r;
                float inv = 1f / l[idx];
                int yo = ((b * Tq + t0 + r) * H + h) * D;
                for (int d = 0; d < D; d++) y[yo + d] = o[idx * D + d] * inv;
                if (lse != null) lse[(b * H + h) * Tq + t0 + r] = (m[idx] + (float) (Math.log(l[idx]) / Math.log(2))) * LN2;
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Backward. Overwrites dq (B,T,H,D), dk/dv (B,T,KV,D) given dy (B,T,H,D) and the forward's y and lse.
    // ---------------------------------------------------------------------------------------------------------

    public static void backward(float[] q, float[] k, float[] v, float[] y, float[] lse, float[] dy,
                                float[] dq, float[] dk, float[] dv,
                                int B, int T, int H, int KV, int D, int window, float scale) {
        checkForward("backward", q, k, v, y, lse, B, T, H, KV, D, scale);
        String shapes = OpChecks.attentionShapes(B, T, H, KV, D);
        checkLen("backward", "dy", dy, (long) B * T * H * D, shapes);
        checkLen("backward", "dq", dq, (long) B * T * H * D, shapes);
        checkLen("backward", "dk", dk, (long) B * T * KV * D, shapes);
        checkLen("backward", "dv", dv, (long) B * T * KV * D, shapes);
        Parallel.forRange(B * KV, (start, end) -> {
            Scratch s = Scratch.get(H / KV, D);
            s.ensureRows(H / KV * T);
            for (int bg = start; bg < end; bg++)
                backwardItem(s, q, k, v, y, lse, dy, dq, dk, dv, bg / KV, bg % KV, T, H, KV, D, window, scale);
        });
    }

    private static void backwardItem(Scratch sc, float[] q, float[] k, float[] v, float[] y, float[] lse, float[] dy,
                                     float[] dq, float[] dk, float[] dv, int b, int g,
                                     int T, int H, int KV, int D, int window, float scale) {
        int G = H / KV, qStride = H * D, kStride = KV * D;
        float sc2 = scale * LOG2E;
        float[] s = sc.s, dp = sc.dp, kt = sc.kt, vt = sc.vt, dkAcc = sc.dkAcc, dvAcc = sc.dvAcc;
        float[] rowD = sc.rowD, rowLse = sc.rowLse;
        int[] chunkLo = sc.chunkLo, chunkHi = sc.chunkHi;
        // dq rows of this (b, group) start at zero; D_i = rowsum(dO∘O) and lse·log2e per row
        for (int hh = 0; hh < G; hh++) {
            int h = g * G + hh;
            for (int i = 0; i < T; i++) {
                int off = ((b * T + i) * H + h) * D;
                Arrays.fill(dq, off, off + D, 0f);
                rowD[hh * T + i] = dot(dy, off, y, off, D);
                rowLse[hh * T + i] = lse[(b * H + h) * T + i] * LOG2E;
            }
        }
        for (int k0 = 0; k0 < T; k0 += BK) {
            int n = Math.min(BK, T - k0), np = roundUp(n, 2 * L);
            int kvOff = ((b * T + k0) * KV + g) * D;
            transpose(k, kvOff, kStride, n, D, kt, np, 0);          // columns n..np-1 are never read
            transpose(v, kvOff, kStride, n, D, vt, np, 0);
            Arrays.fill(dkAcc, 0, n * D, 0f);
            Arrays.fill(dvAcc, 0, n * D, 0f);
            int qHi = window < 0 ? T : (int) Math.min(T, (long) k0 + n + window);   // last query seeing key k0+n-1, +1
            for (int i0 = k0; i0 < qHi; i0 += BQ) {
                int rows = Math.min(BQ, qHi - i0);
                boolean full = k0 + n - 1 <= i0 && (window < 0 || i0 + rows - 1 - k0 <= window);
                for (int hh = 0; hh < G; hh++) {
                    int qOff = ((b * T + i0) * H + g * G + hh) * D;
                    for (int r0 = 0; r0 < rows; r0 += RC) {
                        int rc = Math.min(RC, rows - r0), lo = 0, hi = n;
                        if (!full) {
                            lo = Math.max(0, (window < 0 ? 0 : i0 + r0 - window) - k0) / (2 * L) * (2 * L);
                            hi = Math.min(n, i0 + r0 + rc - k0);
                        }
                        chunkLo[r0 / RC] = lo;
                        chunkHi[r0 / RC] = hi;
                        if (hi <= lo) continue;
                        int cols = roundUp(hi - lo, 2 * L), qo = qOff + r0 * qStride;
                        gemm(q, qo, qStride, 1, kt, lo, np, s, r0 * np + lo, np, rc, cols, D, false);   // S  = Q·Kᵀ
                        gemm(dy, qo, qStride, 1, vt, lo, np, dp, r0 * np + lo, np, rc, cols, D, false); // dP = dO·Vᵀ
                        for (int r = r0; r < r0 + rc; r++) {
                            int i = i0 + r, c0 = 0, c1 = n, so = r * np;
                            if (!full) {
                                c0 = Math.max(0, (window < 0 ? 0 : i - window) - k0);
                                c1 = Math.min(n, i - k0 + 1);
                            }
                            if (c1 <= c0) {
                                Arrays.fill(s, so + lo, so + hi, 0f);
                                Arrays.fill(dp, so + lo, so + hi, 0f);
                                continue;
                            }
                            probsAndGrad(s, dp, so + c0, c1 - c0, sc2, rowLse[hh * T + i], rowD[hh * T + i], scale);
                            Arrays.fill(s, so + lo, so + c0, 0f);
                            Arrays.fill(s, so + c1, so + hi, 0f);
                            Arrays.fill(dp, so + lo, so + c0, 0f);
                            Arrays.fill(dp, so + c1, so + hi, 0f);
                        }
                        // s holds P, dp holds scale·dS on [lo, hi) of these rows
                        gemm(dp, r0 * np + lo, np, 1, k, kvOff + lo * kStride, kStride, dq, qo, qStride,
                                rc, D, hi - lo, true);                                                 // dQ += dS·K
                    }
                    if (full) {                                    // one product over all rows: longest inner loop
                        gemm(s, 0, 1, np, dy, qOff, qStride, dvAcc, 0, D, n, D, rows, true);          // dV += Pᵀ·dO
                        gemm(dp, 0, 1, np, q, qOff, qStride, dkAcc, 0, D, n, D, rows, true);          // dK += dSᵀ·Q
                    } else {
                        for (int r0 = 0; r0 < rows; r0 += RC) {
                            int rc = Math.min(RC, rows - r0), lo = chunkLo[r0 / RC], hi = chunkHi[r0 / RC];
                            if (hi <= lo) continue;
                            int qo = qOff + r0 * qStride;
                            gemm(s, r0 * np + lo, 1, np, dy, qo, qStride, dvAcc, lo * D, D, hi - lo, D, rc, true);
                            gemm(dp, r0 * np + lo, 1, np, q, qo, qStride, dkAcc, lo * D, D, hi - lo, D, rc, true);
                        }
                    }
                }
            }
            for (int j = 0; j < n; j++) {
                System.arraycopy(dkAcc, j * D, dk, kvOff + j * kStride, D);
                System.arraycopy(dvAcc, j * D, dv, kvOff + j * kStride, D);
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Kernels
    // ---------------------------------------------------------------------------------------------------------

    /**
     * c[r·cRs + n] (+)= Σ_k a[aOff + r·aRs + k·aCs] · b[bOff + k·bRs + n] for r &lt; rows, n &lt; cols, k &lt; inner.
     * Register tiles of broadcast-scalar × vector FMAs: 4 rows × 4 vectors (16 accumulators) where the CPU has 32
     * vector registers (AVX-512, NEON), then 4 rows × 2 vectors (8 accumulators, fits AVX2's 16), then single rows.
     */
    static void gemm(float[] a, int aOff, int aRs, int aCs, float[] b, int bOff, int bRs,
                     float[] c, int cOff, int cRs, int rows, int cols, int inner, boolean accumulate) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            int a0 = aOff + r * aRs, c0 = cOff + r * cRs;
            int n = WIDE ? tile4x4(a, a0, aRs, aCs, b, bOff, bRs, c, c0, cRs, cols, inner, accumulate) : 0;
            n = tile4x2(a, a0, aRs, aCs, b, bOff, bRs, c, c0, cRs, n, cols, inner, accumulate);
            for (int rr = 0; rr < 4; rr++) gemmRow(a, a0 + rr * aRs, aCs, b, bOff, bRs, c, c0 + rr * cRs, n, cols, inner, accumulate);
        }
        for (; r < rows; r++) gemmRow(a, aOff + r * aRs, aCs, b, bOff, bRs, c, cOff + r * cRs, 0, cols, inner, accumulate);
    }

    /** Rows r..r+3, columns [0, cols) in steps of 4 vectors; returns the first column not done. */
    private static int tile4x4(float[] a, int a0, int aRs, int aCs, float[] b, int bOff, int bRs,
                               float[] c, int c0, int cRs, int cols, int inner, boolean accumulate) {
        int n = 0;
        int c1 = c0 + cRs, c2 = c0 + 2 * cRs, c3 = c0 + 3 * cRs;
        for (; n + 4 * L <= cols; n += 4 * L) {
            FloatVector x00, x01, x02, x03, x10, x11, x12, x13, x20, x21, x22, x23, x30, x31, x32, x33;
            if (accumulate) {
                x00 = FloatVector.fromArray(F, c, c0 + n); x01 = FloatVector.fromArray(F, c, c0 + n + L);
                x02 = FloatVector.fromArray(F, c, c0 + n + 2 * L); x03 = FloatVector.fromArray(F, c, c0 + n + 3 * L);
                x10 = FloatVector.fromArray(F, c, c1 + n); x11 = FloatVector.fromArray(F, c, c1 + n + L);
                x12 = FloatVector.fromArray(F, c, c1 + n + 2 * L); x13 = FloatVector.fromArray(F, c, c1 + n + 3 * L);
                x20 = FloatVector.fromArray(F, c, c2 + n); x21 = FloatVector.fromArray(F, c, c2 + n + L);
                x22 = FloatVector.fromArray(F, c, c2 + n + 2 * L); x23 = FloatVector.fromArray(F, c, c2 + n + 3 * L);
                x30 = FloatVector.fromArray(F, c, c3 + n); x31 = FloatVector.fromArray(F, c, c3 + n + L);
                x32 = FloatVector.fromArray(F, c, c3 + n + 2 * L); x33 = FloatVector.fromArray(F, c, c3 + n + 3 * L);
            } else {
                x00 = x01 = x02 = x03 = x10 = x11 = x12 = x13 = x20 = x21 = x22 = x23 = x30 = x31 = x32 = x33 = FloatVector.zero(F);
            }
            int ai = a0, bi = bOff + n;
            for (int kk = 0; kk < inner; kk++, ai += aCs, bi += bRs) {
                FloatVector b0 = FloatVector.fromArray(F, b, bi), b1 = FloatVector.fromArray(F, b, bi + L);
                FloatVector b2 = FloatVector.fromArray(F, b, bi + 2 * L), b3 = FloatVector.fromArray(F, b, bi + 3 * L);
                FloatVector w = FloatVector.broadcast(F, a[ai]);
                x00 = w.fma(b0, x00); x01 = w.fma(b1, x01); x02 = w.fma(b2, x02); x03 = w.fma(b3, x03);
                w = FloatVector.broadcast(F, a[ai + aRs]);
                x10 = w.fma(b0, x10); x11 = w.fma(b1, x11); x12 = w.fma(b2, x12); x13 = w.fma(b3, x13);
                w = FloatVector.broadcast(F, a[ai + 2 * aRs]);
                x20 = w.fma(b0, x20); x21 = w.fma(b1, x21); x22 = w.fma(b2, x22); x23 = w.fma(b3, x23);
                w = FloatVector.broadcast(F, a[ai + 3 * aRs]);
                x30 = w.fma(b0, x30); x31 = w.fma(b1, x31); x32 = w.fma(b2, x32); x33 = w.fma(b3, x33);
            }
            x00.intoArray(c, c0 + n); x01.intoArray(c, c0 + n + L); x02.intoArray(c, c0 + n + 2 * L); x03.intoArray(c, c0 + n + 3 * L);
            x10.intoArray(c, c1 + n); x11.intoArray(c, c1 + n + L); x12.intoArray(c, c1 + n + 2 * L); x13.intoArray(c, c1 + n + 3 * L);
            x20.intoArray(c, c2 + n); x21.intoArray(c, c2 + n + L); x22.intoArray(c, c2 + n + 2 * L); x23.intoArray(c, c2 + n + 3 * L);
            x30.intoArray(c, c3 + n); x31.intoArray(c, c3 + n + L); x32.intoArray(c, c3 + n + 2 * L); x33.intoArray(c, c3 + n + 3 * L);
        }
        return n;
    }

    /** Rows r..r+3, columns [n0, cols) in steps of 2 vectors; returns the first column not done. */
    private static int tile4x2(float[] a, int a0, int aRs, int aCs, float[] b, int bOff, int bRs,
                               float[] c, int c0, int cRs, int n0, int cols, int inner, boolean accumulate) {
        int n = n0;
        int c1 = c0 + cRs, c2 = c0 + 2 * cRs, c3 = c0 + 3 * cRs;
        for (; n + 2 * L <= cols; n += 2 * L) {
            FloatVector x00, x01, x10, x11, x20, x21, x30, x31;
            if (accumulate) {
                x00 = FloatVector.fromArray(F, c, c0 + n); x01 = FloatVector.fromArray(F, c, c0 + n + L);
                x10 = FloatVector.fromArray(F, c, c1 + n); x11 = FloatVector.fromArray(F, c, c1 + n + L);
                x20 = FloatVector.fromArray(F, c, c2 + n); x21 = FloatVector.fromArray(F, c, c2 + n + L);
                x30 = FloatVector.fromArray(F, c, c3 + n); x31 = FloatVector.fromArray(F, c, c3 + n + L);
            } else {
                x00 = x01 = x10 = x11 = x20 = x21 = x30 = x31 = FloatVector.zero(F);
            }
            int ai = a0, bi = bOff + n;
            for (int kk = 0; kk < inner; kk++, ai += aCs, bi += bRs) {
                FloatVector b0 = FloatVector.fromArray(F, b, bi), b1 = FloatVector.fromArray(F, b, bi + L);
                FloatVector w = FloatVector.broadcast(F, a[ai]);
                x00 = w.fma(b0, x00); x01 = w.fma(b1, x01);
                w = FloatVector.broadcast(F, a[ai + aRs]);
                x10 = w.fma(b0, x10); x11 = w.fma(b1, x11);
                w = FloatVector.broadcast(F, a[ai + 2 * aRs]);
                x20 = w.fma(b0, x20); x21 = w.fma(b1, x21);
                w = FloatVector.broadcast(F, a[ai + 3 * aRs]);
                x30 = w.fma(b0, x30); x31 = w.fma(b1, x31);
            }
            x00.intoArray(c, c0 + n); x01.intoArray(c, c0 + n + L);
            x10.intoArray(c, c1 + n); x11.intoArray(c, c1 + n + L);
            x20.intoArray(c, c2 + n); x21.intoArray(c, c2 + n + L);
            x30.intoArray(c, c3 + n); x31.intoArray(c, c3 + n + L);
        }
        return n;
    }

    /** One output row, columns [n0, cols): vectors of 2L, then L, then scalars. */
    private static void gemmRow(float[] a, int ai0, int aCs, float[] b, int bOff, int bRs,
                                float[] c, int ci, int n0, int cols, int inner, boolean accumulate) {
        int n = n0;
        for (; n + 2 * L <= cols; n += 2 * L) {
            FloatVector x0 = accumulate ? FloatVector.fromArray(F, c, ci + n) : FloatVector.zero(F);
            FloatVector x1 = accumulate ? FloatVector.fromArray(F, c, ci + n + L) : FloatVector.zero(F);
            int ai = ai0, bi = bOff + n;
            for (int kk = 0; kk < inner; kk++, ai += aCs, bi += bRs) {
                FloatVector w = FloatVector.broadcast(F, a[ai]);
                x0 = w.fma(FloatVector.fromArray(F, b, bi), x0);
                x1 = w.fma(FloatVector.fromArray(F, b, bi + L), x1);
            }
            x0.intoArray(c, ci + n);
            x1.intoArray(c, ci + n + L);
        }
        for (; n + L <= cols; n += L) {
            FloatVector x0 = accumulate ? FloatVector.fromArray(F, c, ci + n) : FloatVector.zero(F);
            int ai = ai0, bi = bOff + n;
            for (int kk = 0; kk < inner; kk++, ai += aCs, bi += bRs)
                x0 = FloatVector.broadcast(F, a[ai]).fma(FloatVector.fromArray(F, b, bi), x0);
            x0.intoArray(c, ci + n);
        }
        for (; n < cols; n++) {
            float acc = accumulate ? c[ci + n] : 0f;
            int ai = ai0, bi = bOff + n;
            for (int kk = 0; kk < inner; kk++, ai += aCs, bi += bRs) acc = Math.fma(a[ai], b[bi], acc);
            c[ci + n] = acc;
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // One query row against a KV cache: the attention of GPT's fused decode step (its Decoder), per (row, head).
    // ---------------------------------------------------------------------------------------------------------

    /**
     * y[yo, yo+D) = Σ_j softmax_j(scale·q·k_j)·v_j over the n cached rows k_j = k[kOff + j·stride, +D) and
     * v_j = v[vOff + j·stride, +D)
     * for one query row q[qo, qo+D); s[so, so+n) is the caller's scratch for the scores. Scores four keys at a time
     * (each q vector loaded once for four keys), the softmax through the vector {@link #exp2}, and the output
     * accumulated in registers over all n values, four vectors of it at a time. A call per key (a dot product, then
     * an axpy, over 64-float rows) cost more in calls and in reloading the output than in reading the cache.
     */
    public static void decodeRow(float[] q, int qo, float[] k, int kOff, float[] v, int vOff, int stride, int n, int D,
                                 float scale, float[] s, int so, float[] y, int yo) {
        if (n < 1) throw new IllegalArgumentException("attention decodeRow: no keys (n = " + n + ")");
        int vd = D / L * L;
        int j = 0;
        for (; j + 4 <= n; j += 4) {
            int k0 = kOff + j * stride, k1 = k0 + stride, k2 = k1 + stride, k3 = k2 + stride;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            int d = 0;
            for (; d < vd; d += L) {
                FloatVector qv = FloatVector.fromArray(F, q, qo + d);
                a0 = qv.fma(FloatVector.fromArray(F, k, k0 + d), a0);
                a1 = qv.fma(FloatVector.fromArray(F, k, k1 + d), a1);
                a2 = qv.fma(FloatVector.fromArray(F, k, k2 + d), a2);
                a3 = qv.fma(FloatVector.fromArray(F, k, k3 + d), a3);
            }
            float s0 = VecMath.sum(a0), s1 = VecMath.sum(a1), s2 = VecMath.sum(a2), s3 = VecMath.sum(a3);
            for (; d < D; d++) {
                float qd = q[qo + d];
                s0 = Math.fma(qd, k[k0 + d], s0);
                s1 = Math.fma(qd, k[k1 + d], s1);
                s2 = Math.fma(qd, k[k2 + d], s2);
                s3 = Math.fma(qd, k[k3 + d], s3);
            }
            s[so + j] = s0;
            s[so + j + 1] = s1;
            s[so + j + 2] = s2;
            s[so + j + 3] = s3;
        }
        for (; j < n; j++) s[so + j] = dot(q, qo, k, kOff + j * stride, D);
        float sc2 = scale * LOG2E, m = rowMax(s, so, n) * sc2;
        float inv = 1f / expShift(s, so, n, sc2, m);                // s = 2^(s·sc2 − m): the unnormalized weights
        int d = 0;
        for (; d + 4 * L <= vd; d += 4 * L) {
            FloatVector o0 = FloatVector.zero(F), o1 = o0, o2 = o0, o3 = o0;
            for (int jj = 0, vo = vOff + d; jj < n; jj++, vo += stride) {
                FloatVector p = FloatVector.broadcast(F, s[so + jj]);
                o0 = p.fma(FloatVector.fromArray(F, v, vo), o0);
                o1 = p.fma(FloatVector.fromArray(F, v, vo + L), o1);
                o2 = p.fma(FloatVector.fromArray(F, v, vo + 2 * L), o2);
                o3 = p.fma(FloatVector.fromArray(F, v, vo + 3 * L), o3);
            }
            o0.mul(inv).intoArray(y, yo + d);
            o1.mul(inv).intoArray(y, yo + d + L);
            o2.mul(inv).intoArray(y, yo + d + 2 * L);
            o3.mul(inv).intoArray(y, yo + d + 3 * L);
        }
        for (; d < vd; d += L) {
            FloatVector o = FloatVector.zero(F);
            for (int jj = 0, vo = vOff + d; jj < n; jj++, vo += stride) o = FloatVector.broadcast(F, s[so + jj]).fma(FloatVector.fromArray(F, v, vo), o);
            o.mul(inv).intoArray(y, yo + d);
        }
        for (; d < D; d++) {
            float o = 0f;
            for (int jj = 0, vo = vOff + d; jj < n; jj++, vo += stride) o = Math.fma(s[so + jj], v[vo], o);
            y[yo + d] = o * inv;
        }
    }

    /** s[r·np + j] = q_r·k_j for the decode path (few query rows): one K row load serves every row. */
    private static void dots(float[] q, int qOff, int qStride, int rows, float[] k, int kOff, int kStride, int n, int D,
                             float[] s, int np) {
        for (int j = 0; j < n; j++)
            for (int r = 0; r < rows; r++) s[r * np + j] = dot(q, qOff + r * qStride, k, kOff + j * kStride, D);
    }

    static float dot(float[] x, int xo, float[] z, int zo, int n) {
        int d = 0;
        float sum = 0f;
        if (n >= L) {
            FloatVector acc0 = FloatVector.zero(F), acc1 = FloatVector.zero(F);
            for (; d + 2 * L <= n; d += 2 * L) {
                acc0 = FloatVector.fromArray(F, x, xo + d).fma(FloatVector.fromArray(F, z, zo + d), acc0);
                acc1 = FloatVector.fromArray(F, x, xo + d + L).fma(FloatVector.fromArray(F, z, zo + d + L), acc1);
            }
            for (; d + L <= n; d += L)
                acc0 = FloatVector.fromArray(F, x, xo + d).fma(FloatVector.fromArray(F, z, zo + d), acc0);
            sum = VecMath.sum(acc0.add(acc1));
        }
        for (; d < n; d++) sum = Math.fma(x[xo + d], z[zo + d], sum);
        return sum;
    }

    /** dst[d·ld + col0 + j] = src[off + j·stride + d] for j &lt; n. */
    private static void transpose(float[] src, int off, int stride, int n, int D, float[] dst, int ld, int col0) {
        int j = 0;
        for (; j + 4 <= n; j += 4) {                               // 4 source rows at a time: 4 adjacent stores
            int s0 = off + j * stride, s1 = s0 + stride, s2 = s1 + stride, s3 = s2 + stride;
            for (int d = 0; d < D; d++) {
                int o = d * ld + col0 + j;
                dst[o] = src[s0 + d];
                dst[o + 1] = src[s1 + d];
                dst[o + 2] = src[s2 + d];
                dst[o + 3] = src[s3 + d];
            }
        }
        for (; j < n; j++) {
            int so = off + j * stride;
            for (int d = 0; d < D; d++) dst[d * ld + col0 + j] = src[so + d];
        }
    }

    /** max of s[off..off+n); compare+blend instead of max(), whose Java NaN/±0 semantics cost extra instructions. */
    private static float rowMax(float[] s, int off, int n) {
        int j = 0;
        float mx = Float.NEGATIVE_INFINITY;
        if (n >= L) {
            FloatVector acc = FloatVector.fromArray(F, s, off);
            for (j = L; j + L <= n; j += L) {
                FloatVector x = FloatVector.fromArray(F, s, off + j);
                acc = acc.blend(x, acc.compare(VectorOperators.LT, x));
            }
            mx = acc.reduceLanes(VectorOperators.MAX);
        }
        for (; j < n; j++) mx = Math.max(mx, s[off + j]);
        return mx;
    }

    /** s[off+j] = 2^(s[off+j]·sc2 − m) in place; returns their sum. */
    private static float expShift(float[] s, int off, int n, float sc2, float m) {
        int j = 0;
        float sum = 0f;
        if (n >= L) {
            FloatVector acc = FloatVector.zero(F), vs = FloatVector.broadcast(F, sc2), vm = FloatVector.broadcast(F, -m);
            for (; j + L <= n; j += L) {
                FloatVector p = exp2(FloatVector.fromArray(F, s, off + j).fma(vs, vm));
                p.intoArray(s, off + j);
                acc = acc.add(p);
            }
            sum = VecMath.sum(acc);
        }
        for (; j < n; j++) {
            float p = exp2(s[off + j] * sc2 - m);
            s[off + j] = p;
            sum += p;
        }
        return sum;
    }

    /** P = 2^(s·sc2 − lse2) into s; scale·dS = scale·P·(dP − rowD) into dp. */
    private static void probsAndGrad(float[] s, float[] dp, int off, int n, float sc2, float lse2, float rowD, float scale) {
        int j = 0;
        FloatVector vs = FloatVector.broadcast(F, sc2), vl = FloatVector.broadcast(F, -lse2);
        FloatVector vd = FloatVector.broadcast(F, rowD), vscale = FloatVector.broadcast(F, scale);
        for (; j + L <= n; j += L) {
            FloatVector p = exp2(FloatVector.fromArray(F, s, off + j).fma(vs, vl));
            p.intoArray(s, off + j);
            p.mul(vscale).mul(FloatVector.fromArray(F, dp, off + j).sub(vd)).intoArray(dp, off + j);
        }
        for (; j < n; j++) {
            float p = exp2(s[off + j] * sc2 - lse2);
            s[off + j] = p;
            dp[off + j] = p * scale * (dp[off + j] - rowD);
        }
    }

    private static void scaleRow(float[] o, int off, int n, float f) {
        int d = 0;
        FloatVector vf = FloatVector.broadcast(F, f);
        for (; d + L <= n; d += L) FloatVector.fromArray(F, o, off + d).mul(vf).intoArray(o, off + d);
        for (; d < n; d++) o[off + d] *= f;
    }

    // 2^x for x <= 0 (softmax arguments): x = n + f with n = round(x), |f| <= 1/2; 2^f by a degree-6 Taylor
    // polynomial of e^(f·ln2) (relative error ~1.2e-7); 2^n built in the exponent bits. x is clamped at -127,
    // where the exponent field becomes 0 and the result exactly 0 (true value < 1e-38).
    private static final float ROUND = 12582912f;                 // 1.5·2^23: x + ROUND rounds x to an integer
    private static final float C1 = 0.6931471805599453f, C2 = 0.2402265069591007f, C3 = 0.05550410866482158f,
            C4 = 0.009618129107628477f, C5 = 0.0013333558146428443f, C6 = 1.5403530393381606e-4f;

    static FloatVector exp2(FloatVector x) {
        x = x.blend(-127f, x.compare(VectorOperators.LT, -127f));  // 2^-127 comes out as exactly 0 below
        FloatVector t = x.add(ROUND);
        FloatVector f = x.sub(t.sub(ROUND));
        FloatVector p = f.fma(C6, C5).fma(f, FloatVector.broadcast(F, C4)).fma(f, FloatVector.broadcast(F, C3))
                .fma(f, FloatVector.broadcast(F, C2)).fma(f, FloatVector.broadcast(F, C1)).fma(f, FloatVector.broadcast(F, 1f));
        FloatVector pow = ((IntVector) t.reinterpretAsInts()).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
        return p.mul(pow);
    }

    static float exp2(float x) {
        x = Math.max(x, -127f);
        float t = x + ROUND;
        float f = x - (t - ROUND);
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(f, C6, C5), f, C4), f, C3), f, C2), f, C1), f, 1f);
        return p * Float.intBitsToFloat((Float.floatToRawIntBits(t) + 127) << 23);
    }

    private static int roundUp(int n, int m) {
        return (n + m - 1) / m * m;
    }

    /** Per-thread buffers, grown on demand and reused across calls (never allocated per tile). */
    private static final class Scratch {
        private static final ThreadLocal<Scratch> LOCAL = ThreadLocal.withInitial(Scratch::new);
        float[] s = new float[0], dp, kt, vt, o, m, l, dkAcc, dvAcc, rowD = new float[0], rowLse = new float[0];
        int g = -1, d = -1;
        final int[] chunkLo = new int[BQ / RC], chunkHi = new int[BQ / RC];
        boolean[] fixedMax;
        /** Keys [ktLo, ktHi) of (call, b, g) transposed into ktAll[d·ktLd + j], kept while a thread walks query blocks. */
        float[] ktAll = new float[0];
        long ktCall = -1;
        int ktB, ktG, ktLo, ktHi, ktLd;
        /** Largest |k_j| over the transposed keys: bounds every score of a query row (Cauchy-Schwarz). */
        float ktMaxNorm;

        float[] keysTransposed(long call, float[] k, int b, int g, int lo, int hi, int Tk, int KV, int D) {
            int ld = Tk + 2 * L;                                   // room for a tile's padding past the last key
            if (ktAll.length < D * ld) {
                ktAll = new float[D * ld];
                ktCall = -1;
            }
            if (ktCall != call || ktB != b || ktG != g || ktLd != ld || lo < ktLo || lo > ktHi) {
                ktCall = call;
                ktB = b;
                ktG = g;
                ktLd = ld;
                ktLo = ktHi = lo;
                ktMaxNorm = 0f;
            }
            if (hi > ktHi) {
                int off = ((b * Tk + ktHi) * KV + g) * D;
                transpose(k, off, KV * D, hi - ktHi, D, ktAll, ld, ktHi);
                for (int j = 0; j < hi - ktHi; j++) {
                    int o = off + j * KV * D;
                    ktMaxNorm = Math.max(ktMaxNorm, (float) Math.sqrt(dot(k, o, k, o, D)));
                }
                ktHi = hi;
            }
            return ktAll;
        }

        static Scratch get(int G, int D) {
            Scratch s = LOCAL.get();
            if (G > s.g || D > s.d) s.resize(Math.max(G, s.g), Math.max(D, s.d));
            return s;
        }

        private void resize(int G, int D) {
            int np = roundUp(BK, 2 * L);
            s = new float[BQ * np];
            dp = new float[BQ * np];
            kt = new float[D * np];
            vt = new float[D * np];
            o = new float[G * BQ * D];
            m = new float[G * BQ];
            fixedMax = new boolean[G * BQ];
            l = new float[G * BQ];
            dkAcc = new float[BK * D];
            dvAcc = new float[BK * D];
            g = G;
            d = D;
        }

        void ensureRows(int n) {
            if (rowD.length < n) {
                rowD = new float[n];
                rowLse = new float[n];
            }
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Argument checks
    // ---------------------------------------------------------------------------------------------------------

    private static void checkForward(String op, float[] q, float[] k, float[] v, float[] y, float[] lse,
                                     int B, int T, int H, int KV, int D, float scale) {
        OpChecks.attention(op, B, T, H, KV, D, scale);
        String shapes = OpChecks.attentionShapes(B, T, H, KV, D);
        if ((long) B * T * H * D > Integer.MAX_VALUE)
            throw new IllegalArgumentException("attention " + op + ": more than 2^31 elements, got " + shapes);
        checkLen(op, "q", q, (long) B * T * H * D, shapes);
        checkLen(op, "k", k, (long) B * T * KV * D, shapes);
        checkLen(op, "v", v, (long) B * T * KV * D, shapes);
        checkLen(op, "y", y, (long) B * T * H * D, shapes);
        checkLen(op, "lse", lse, (long) B * H * T, shapes);
    }

    private static void checkLen(String op, String name, float[] a, long expected, String shapes) {
        if (a == null) throw new IllegalArgumentException("attention " + op + ": " + name + " is null for " + shapes);
        if (a.length != expected)
            throw new IllegalArgumentException("attention " + op + ": " + name + " has " + a.length + " floats, expected "
                    + expected + " for " + shapes);
    }
}
