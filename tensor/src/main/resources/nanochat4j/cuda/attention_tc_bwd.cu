// Tensor-core flash-attention backward (FA2's split), the bf16 mma.sync twin of attention.cu's attn_bwd_dq /
// attn_bwd_dkv: same arguments, same semantics, same layouts — q, dy, dq (B, T, H, D); k, v, dk, dv (B, T, KV, D);
// lse, dsum (B, H, T), dsum = rowsum(bf16(dy)∘y) from attention.cu's attn_bwd_dsum (bf16Dy = 1). Query row i sees key j iff j <= i and (window < 0 or
// i − j <= window); head h reads kv head h / (H / KV). With P = exp(scale·q·k − lse), dP = dy·vᵀ, dS = P∘(dP − dsum):
//   dq = scale·dS·k                  attn_tc_bwd_dq,  grid (ceil(T/64), H, B), 128 threads
//   dk = scale·dSᵀ·q, dv = Pᵀ·dy     attn_tc_bwd_dkv, grid (ceil(T/64), KV, B), 128 threads, summed over the group
// Each output element is written once, by one thread, after a fixed-order loop: no atomics, so runs are bitwise
// reproducible (resume is tested bit for bit).
//
// Both kernels have one shape. A block owns 64 "resident" rows (4 warps × 16, one m16 tile per warp): Q and dY for
// dq, K and V for dk/dv — converted to bf16 once into shared memory. It then streams KT rows at a time of the other
// pair (K and V, or Q and dY) through shared memory and per warp computes, with m16n8k16 bf16 mma and fp32 accumulators:
//   S = R1·S1ᵀ, dP = R2·S2ᵀ  (16 × KT; for dk/dv the keys are the M dimension, so these are Sᵀ and dPᵀ)
//   P = exp2(S·scale·log2e − lse·log2e) masked, dS = P∘(dP − dsum), in fp32 from the fp32 accumulators
//   acc += dS·S1 (dq: S1 = K), or accV += Pᵀ·dY and accK += dSᵀ·Q (dk/dv)
// The accumulator of S/dP (rows g, g+8; cols 2t, 2t+1 of each n8 tile) is, two n8 tiles at a time, exactly the A
// fragment of the next mma (rows g, g+8; k 2t, 2t+1 and 8+2t, 9+2t), so P and dS go from registers to the tensor
// cores rounded to bf16 with no shared-memory round trip (FA2's trick). The next mma's B operand (k = the streamed
// rows, n = dims) is the streamed tile read transposed, which ldmatrix .trans does from the same row-major tile.
//
// Why this split: at D = 128 the per-warp accumulators alone are 64 (dq) or 128 (dk + dv) registers a thread, so the
// resident operands live in shared memory (2 × 64 rows, 34 KB) and not in registers, and the stream tile is what is
// left of the 48 KB static limit: KT = 16 rows at D > 64 (32 at D <= 64, 64 at D <= 32). The next stream tile's fp32
// rows are loaded into registers while the tensor cores work on the current one (cp.async cannot convert to bf16),
// then converted and stored between the two barriers. Rows are padded by 8 bf16 (16 bytes): ldmatrix's eight 16-byte
// row reads of a phase then fall in distinct banks at every D % 16 == 0. Warps skip stream tiles they cannot see
// (causal / window), and only tiles that straddle the mask edge or T pay for the per-element mask.
// Pointers must be 16-byte aligned (fresh tensors are): rows are read as float4 (8 bytes of bf16 in the _bf16 kernels,
// which read q, k, v as the bf16 copies a training step keeps of them and are otherwise the same code).
// Difference from attn_bwd_dq/dkv: a NaN or inf in K or V (Q or dY for dk/dv) at a position a row cannot see, inside a
// tile its warp computes, reaches that row's gradient (masked P and dS are 0, but 0 · NaN in the mma; the fp32
// kernels skip zero weights). Only a forward that already made NaN feeds such values.
//
// dsum: dS = P∘(dP − dsum) cancels almost entirely in a peaked row (P ≈ 1 at one key, dP ≈ dsum there), so dsum must
// be the rowsum of what dP is made of: dP = bf16(dy)·bf16(v)ᵀ here, hence dsum = Σ bf16(dy)·y (attn_bwd_dsum with bf16Dy). With
// the fp32 dy of attn_bwd_dsum the two differ by dy's bf16 rounding, which in such rows is most of dS: dq and dk then
// came out 5–50% off in a host emulation at T = 2048 (as far off as an emulated FA2-style bf16 pipeline), ≤ 1% with it.
//
// nvcc 13.0 -arch=sm_90a --resource-usage, registers / static shared bytes, 0 bytes spilled everywhere (NVRTC 13.0's
// PTX through ptxas: the same within a few registers, no spill). dk/dv at D = 128 sits at 249 of 255 registers
// (2 blocks, 8 warps an SM): recheck for spills after any change.
//   HEAD_DIM 16:  dq 127 regs, 12288 B   dkv 164 regs, 12800 B
//   HEAD_DIM 32:  dq 208 regs, 20480 B   dkv 216 regs, 20992 B
//   HEAD_DIM 64:  dq 167 regs, 27648 B   dkv 213 regs, 27904 B
//   HEAD_DIM 128: dq 168 regs, 43520 B   dkv 249 regs, 43648 B
// The _bf16 entries (q, k, v as bf16), same shared memory: dq_bf16 122 / 187 / 182 / 176 regs at HEAD_DIM 16 / 32 /
// 64 / 128, dkv_bf16 164 / 214 / 213 / 249.
#include "common.cuh"
#include "tensorcore.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#if HEAD_DIM % 16 != 0 || HEAD_DIM < 16 || HEAD_DIM > 128
#error "attention_tc_bwd.cu: HEAD_DIM must be a multiple of 16 in [16, 128]"
#endif
#define TCB_THREADS 128
#define TCB_BR 64 // resident rows a block owns: 4 warps × 16
#if HEAD_DIM <= 32
#define TCB_KT 64
#elif HEAD_DIM <= 64
#define TCB_KT 32
#else
#define TCB_KT 16
#endif
#define TCB_LD (HEAD_DIM + 8)                                               // bf16 tile row stride (16 bytes of pad)
#define TCB_NS (TCB_KT / 8)                                                 // n8 tiles of a warp's scores
#define TCB_NO (HEAD_DIM / 8)                                               // n8 tiles of a warp's outputs
#define TCB_C4 (HEAD_DIM / 4)                                               // float4 chunks a row
#define TCB_PF ((TCB_KT * TCB_C4 + TCB_THREADS - 1) / TCB_THREADS)          // float4 a thread prefetches a tensor
#define TCB_LOG2E 1.4426950408889634f

__device__ __forceinline__ bool tcb_visible(int i, int j, int window) {
    return j <= i && (window < 0 || i - j <= window);
}

__device__ __forceinline__ void tcb_put4(unsigned short* s, float4 x) {
    *(uint2*) s = make_uint2(tc_pack_bf16(x.x, x.y), tc_pack_bf16(x.z, x.w));
}

// Four consecutive elements of an fp32 tensor (one float4), or of a bf16 one (8 bytes, widened: exact, so tcb_put4
// rounds them back to the same bits) — the kernels read q, k, v either way (attn_tc_bwd_* / attn_tc_bwd_*_bf16).
__device__ __forceinline__ float4 tcb_load4(const float* __restrict__ p) {
    return *(const float4*) p;
}

__device__ __forceinline__ float4 tcb_load4(const unsigned short* __restrict__ p) {
    uint2 u = *(const uint2*) p; // element 0 in the low half of u.x (little-endian)
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}

// Rows [r0, r0+TCB_BR) of one head of a (B, T, NH, D) tensor (base: row 0 of the head, stride: NH·D) into a bf16
// tile; rows >= T are zero.
template <typename S>
__device__ __forceinline__ void tcb_stage_resident(unsigned short* s, const S* __restrict__ src, long long base, int r0, int T,
                                                   int stride) {
    for (int e = threadIdx.x; e < TCB_BR * TCB_C4; e += TCB_THREADS) {
        int r = e / TCB_C4, c = (e - r * TCB_C4) * 4;
        float4 x = r0 + r < T ? tcb_load4(src + base + (long long) (r0 + r) * stride + c) : make_float4(0.f, 0.f, 0.f, 0.f);
        tcb_put4(s + r * TCB_LD + c, x);
    }
}

// The stream tile's rows [r0, r0+TCB_KT) into registers (consecutive threads, consecutive 4 elements of a row) …
template <typename S>
__device__ __forceinline__ void tcb_fetch(float4 (&p)[TCB_PF], const S* __restrict__ src, long long base, int r0, int T,
                                          int stride) {
#pragma unroll
    for (int c = 0; c < TCB_PF; c++) {
        int e = threadIdx.x + c * TCB_THREADS, r = e / TCB_C4, col = (e - r * TCB_C4) * 4;
        bool ok = e < TCB_KT * TCB_C4 && r0 + r < T;
        p[c] = ok ? tcb_load4(src + base + (long long) (r0 + r) * stride + col) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

// … and from registers into the bf16 tile, once every warp is done reading the previous one.
__device__ __forceinline__ void tcb_put(unsigned short* s, const float4 (&p)[TCB_PF]) {
#pragma unroll
    for (int c = 0; c < TCB_PF; c++) {
        int e = threadIdx.x + c * TCB_THREADS, r = e / TCB_C4, col = (e - r * TCB_C4) * 4;
        if (e < TCB_KT * TCB_C4) tcb_put4(s + r * TCB_LD + col, p[c]);
    }
}

// dk/dv's stream tile published: its queries' q and dy rows as bf16, their lse (in log2 units) and dsum.
__device__ __forceinline__ void tcb_put_queries(unsigned short* Qs, unsigned short* Gs, float* Ls, float* Ds, const float4 (&pq)[TCB_PF],
                                                const float4 (&pg)[TCB_PF], float pl, float pd) {
    tcb_put(Qs, pq);
    tcb_put(Gs, pg);
    if (threadIdx.x < TCB_KT) {
        Ls[threadIdx.x] = pl * TCB_LOG2E;
        Ds[threadIdx.x] = pd;
    }
}

// s = R1·S1ᵀ and dp = R2·S2ᵀ for a warp: R1, R2 its 16 resident rows (tiles at r1, r2), S1, S2 the KT streamed rows.
// ldmatrix x4: lane l gives the address of row l & 7 of 8×8 matrix l >> 3. For A the matrices are (rows 0-7, k 0-7),
// (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15, k 8-15) = a0..a3; for B (n = streamed rows) they are
// (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0, b1 of n tile 0, then of n tile 1.
__device__ __forceinline__ void tcb_scores(float (&s)[TCB_NS][4], float (&dp)[TCB_NS][4], const unsigned short* r1,
                                           const unsigned short* r2, const unsigned short* s1, const unsigned short* s2,
                                           int lane) {
    int mi = lane >> 3, r8 = lane & 7;
    int aOff = (r8 + (mi & 1) * 8) * TCB_LD + (mi >> 1) * 8;
    int bOff = (r8 + (mi >> 1) * 8) * TCB_LD + (mi & 1) * 8;
#pragma unroll
    for (int n = 0; n < TCB_NS; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) { s[n][e] = 0.f; dp[n][e] = 0.f; }
#pragma unroll
    for (int kd = 0; kd < HEAD_DIM; kd += 16) {
        unsigned a1[4], a2[4];
        tc_ldsm_x4(a1, r1 + aOff + kd);
        tc_ldsm_x4(a2, r2 + aOff + kd);
#pragma unroll
        for (int n = 0; n < TCB_NS / 2; n++) {
            unsigned b[4];
            tc_ldsm_x4(b, s1 + bOff + n * 16 * TCB_LD + kd);
            tc_mma(s[2 * n], a1, b[0], b[1]);
            tc_mma(s[2 * n + 1], a1, b[2], b[3]);
            tc_ldsm_x4(b, s2 + bOff + n * 16 * TCB_LD + kd);
            tc_mma(dp[2 * n], a2, b[0], b[1]);
            tc_mma(dp[2 * n + 1], a2, b[2], b[3]);
        }
    }
}

// acc (16 × D) += X·M: X (16 × KT) a warp's accumulator tiles, rounded to bf16 as A fragments (n tiles 2kk, 2kk+1
// are k step kk); M the streamed (KT, D) tile as B (k = its rows), read by ldmatrix .trans: matrices (k 0-7, n 0-7),
// (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15) = b0, b1 of n tile 0, then of n tile 1.
__device__ __forceinline__ void tcb_accumulate(float (&acc)[TCB_NO][4], const float (&x)[TCB_NS][4], const unsigned short* m,
                                               int lane) {
    int mi = lane >> 3, r8 = lane & 7;
    int off = (r8 + (mi & 1) * 8) * TCB_LD + (mi >> 1) * 8;
#pragma unroll
    for (int kk = 0; kk < TCB_KT / 16; kk++) {
        unsigned a[4] = {tc_pack_bf16(x[2 * kk][0], x[2 * kk][1]), tc_pack_bf16(x[2 * kk][2], x[2 * kk][3]),
                         tc_pack_bf16(x[2 * kk + 1][0], x[2 * kk + 1][1]), tc_pack_bf16(x[2 * kk + 1][2], x[2 * kk + 1][3])};
#pragma unroll
        for (int nd = 0; nd < HEAD_DIM / 16; nd++) {
            unsigned b[4];
            tc_ldsm_x4_t(b, m + off + kk * 16 * TCB_LD + nd * 16);
            tc_mma(acc[2 * nd], a, b[0], b[1]);
            tc_mma(acc[2 * nd + 1], a, b[2], b[3]);
        }
    }
}

// dq: warp w owns query rows i0 + 16w …; streams K/V key tiles from the window's first key to the block's last row.
// S: the element type of q, k, v (float, or unsigned short for bf16 bits); dy is fp32 either way.
template <typename S>
__device__ __forceinline__ void tcb_dq(const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,
                                       const float* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum,
                                       float* __restrict__ dq, int T, int H, int KV, int window, float scale) {
    __shared__ __align__(16) unsigned short Qs[TCB_BR * TCB_LD];
    __shared__ __align__(16) unsigned short Gs[TCB_BR * TCB_LD];
    __shared__ __align__(16) unsigned short Ks[TCB_KT * TCB_LD];
    __shared__ __align__(16) unsigned short Vs[TCB_KT * TCB_LD];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    // Causal blocks further down see more keys: run them first, so the last wave is the short blocks.
    int i0 = (gridDim.x - 1 - blockIdx.x) * TCB_BR, iLast = min(T - 1, i0 + TCB_BR - 1), iw = i0 + 16 * w;
    int qStride = H * HEAD_DIM, kvStride = KV * HEAD_DIM;
    long long qBase = ((long long) b * T * H + h) * HEAD_DIM;
    long long kvBase = ((long long) b * T * KV + kvh) * HEAD_DIM;
    long long lBase = ((long long) b * H + h) * T;
    tcb_stage_resident(Qs, q, qBase, i0, T, qStride);
    tcb_stage_resident(Gs, dy, qBase, i0, T, qStride);
    float lse2[2], dr[2]; // the lane's rows g and g + 8: lse in log2 units, dsum
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = iw + g + 8 * r;
        lse2[r] = i < T ? lse[lBase + i] * TCB_LOG2E : 0.f;
        dr[r] = i < T ? dsum[lBase + i] : 0.f;
    }
    int lo = window < 0 ? 0 : max(0, i0 - window);
    int nTiles = (iLast - lo) / TCB_KT + 1;
    float4 pk[TCB_PF], pv[TCB_PF];
    tcb_fetch(pk, k, kvBase, lo, T, kvStride);
    tcb_fetch(pv, v, kvBase, lo, T, kvStride);
    tcb_put(Ks, pk);
    tcb_put(Vs, pv);
    __syncthreads();
    float sl2 = scale * TCB_LOG2E;
    float acc[TCB_NO][4];
#pragma unroll
    for (int n = 0; n < TCB_NO; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc[n][e] = 0.f;
#pragma unroll 1
    for (int it = 0; it < nTiles; it++) {
        int t0 = lo + it * TCB_KT;
        if (it + 1 < nTiles) {
            tcb_fetch(pk, k, kvBase, t0 + TCB_KT, T, kvStride);
            tcb_fetch(pv, v, kvBase, t0 + TCB_KT, T, kvStride);
        }
        bool any = iw < T && t0 <= iw + 15 && (window < 0 || iw - (t0 + TCB_KT - 1) <= window);
        if (any) {
            bool full = t0 + TCB_KT - 1 <= iw && iw + 15 < T && (window < 0 || iw + 15 - t0 <= window);
            float s[TCB_NS][4], dp[TCB_NS][4];
            tcb_scores(s, dp, Qs + 16 * w * TCB_LD, Gs + 16 * w * TCB_LD, Ks, Vs, lane);
#pragma unroll
            for (int n = 0; n < TCB_NS; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int i = iw + g + 8 * (e >> 1), j = t0 + n * 8 + 2 * t4 + (e & 1);
                    bool ok = full || (i < T && tcb_visible(i, j, window));
                    float p = ok ? exp2f(fmaf(s[n][e], sl2, -lse2[e >> 1])) : 0.f;
                    s[n][e] = p * (dp[n][e] - dr[e >> 1]); // dS
                }
            tcb_accumulate(acc, s, Ks, lane);
        }
        __syncthreads();
        if (it + 1 < nTiles) {
            tcb_put(Ks, pk);
            tcb_put(Vs, pv);
        }
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int i = iw + g + 8 * r;
        if (i >= T) continue;
        float* out = dq + qBase + (long long) i * qStride + 2 * t4;
#pragma unroll
        for (int n = 0; n < TCB_NO; n++) *(float2*) (out + n * 8) = make_float2(acc[n][2 * r] * scale, acc[n][2 * r + 1] * scale);
    }
}

// dk/dv: warp w owns key rows j0 + 16w …; streams Q/dY query tiles (with their lse, dsum) from the block's first key
// to the window's last query, for each head of the group in turn (the flattened loop keeps the prefetch simple).
template <typename S>
__device__ __forceinline__ void tcb_dkv(const S* __restrict__ q, const S* __restrict__ k, const S* __restrict__ v,
                                        const float* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum,
                                        float* __restrict__ dk, float* __restrict__ dv, int T, int H, int KV, int window, float scale) {
    __shared__ __align__(16) unsigned short Ks[TCB_BR * TCB_LD];
    __shared__ __align__(16) unsigned short Vs[TCB_BR * TCB_LD];
    __shared__ __align__(16) unsigned short Qs[TCB_KT * TCB_LD];
    __shared__ __align__(16) unsigned short Gs[TCB_KT * TCB_LD];
    __shared__ float Ls[TCB_KT], Ds[TCB_KT]; // the stream tile's lse (log2 units) and dsum
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t4 = lane & 3;
    int kvh = blockIdx.y, b = blockIdx.z, G = H / KV;
    int j0 = blockIdx.x * TCB_BR, jLast = min(T - 1, j0 + TCB_BR - 1), jw = j0 + 16 * w;
    int qStride = H * HEAD_DIM, kvStride = KV * HEAD_DIM;
    long long kvBase = ((long long) b * T * KV + kvh) * HEAD_DIM;
    tcb_stage_resident(Ks, k, kvBase, j0, T, kvStride);
    tcb_stage_resident(Vs, v, kvBase, j0, T, kvStride);
    int hi = window < 0 || window >= T - 1 - jLast ? T - 1 : jLast + window; // (no jLast + window overflow)
    int nT = (hi - j0) / TCB_KT + 1, n = G * nT;
    float4 pq[TCB_PF], pg[TCB_PF];
    float pl = 0.f, pd = 0.f;
    {
        long long qBase = ((long long) b * T * H + kvh * G) * HEAD_DIM, lBase = ((long long) b * H + kvh * G) * T;
        tcb_fetch(pq, q, qBase, j0, T, qStride);
        tcb_fetch(pg, dy, qBase, j0, T, qStride);
        if (threadIdx.x < TCB_KT && j0 + (int) threadIdx.x < T) {
            pl = lse[lBase + j0 + threadIdx.x];
            pd = dsum[lBase + j0 + threadIdx.x];
        }
        tcb_put_queries(Qs, Gs, Ls, Ds, pq, pg, pl, pd);
    }
    __syncthreads();
    float sl2 = scale * TCB_LOG2E;
    float accK[TCB_NO][4], accV[TCB_NO][4];
#pragma unroll
    for (int c = 0; c < TCB_NO; c++)
#pragma unroll
        for (int e = 0; e < 4; e++) { accK[c][e] = 0.f; accV[c][e] = 0.f; }
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        int t0 = j0 + (it % nT) * TCB_KT;
        if (it + 1 < n) {
            int hh = kvh * G + (it + 1) / nT, u0 = j0 + ((it + 1) % nT) * TCB_KT;
            long long qBase = ((long long) b * T * H + hh) * HEAD_DIM, lBase = ((long long) b * H + hh) * T;
            tcb_fetch(pq, q, qBase, u0, T, qStride);
            tcb_fetch(pg, dy, qBase, u0, T, qStride);
            pl = 0.f;
            pd = 0.f;
            if (threadIdx.x < TCB_KT && u0 + (int) threadIdx.x < T) {
                pl = lse[lBase + u0 + threadIdx.x];
                pd = dsum[lBase + u0 + threadIdx.x];
            }
        }
        bool any = jw < T && t0 + TCB_KT - 1 >= jw && (window < 0 || t0 - (jw + 15) <= window);
        if (any) {
            bool full = t0 >= jw + 15 && t0 + TCB_KT - 1 < T && (window < 0 || t0 + TCB_KT - 1 - jw <= window);
            float s[TCB_NS][4], dp[TCB_NS][4]; // Sᵀ, dPᵀ: rows keys, columns queries
            tcb_scores(s, dp, Ks + 16 * w * TCB_LD, Vs + 16 * w * TCB_LD, Qs, Gs, lane);
#pragma unroll
            for (int c = 0; c < TCB_NS; c++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int col = c * 8 + 2 * t4 + (e & 1), i = t0 + col, j = jw + g + 8 * (e >> 1);
                    bool ok = full || (i < T && tcb_visible(i, j, window));
                    float p = ok ? exp2f(fmaf(s[c][e], sl2, -Ls[col])) : 0.f;
                    s[c][e] = p;                         // Pᵀ
                    dp[c][e] = p * (dp[c][e] - Ds[col]); // dSᵀ
                }
            tcb_accumulate(accV, s, Gs, lane);
            tcb_accumulate(accK, dp, Qs, lane);
        }
        __syncthreads();
        if (it + 1 < n) tcb_put_queries(Qs, Gs, Ls, Ds, pq, pg, pl, pd);
        __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int j = jw + g + 8 * r;
        if (j >= T) continue;
        long long o = kvBase + (long long) j * kvStride + 2 * t4;
#pragma unroll
        for (int c = 0; c < TCB_NO; c++) {
            *(float2*) (dk + o + c * 8) = make_float2(accK[c][2 * r] * scale, accK[c][2 * r + 1] * scale);
            *(float2*) (dv + o + c * 8) = make_float2(accV[c][2 * r], accV[c][2 * r + 1]);
        }
    }
}

// The entry points: q, k, v in fp32, or as the bf16 copies a training step keeps for its backward (Autograd.shelve):
// the same tiles, so the same bits.
extern "C" __global__ void __launch_bounds__(TCB_THREADS) attn_tc_bwd_dq(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dy,
        const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dq, int T, int H, int KV, int window,
        float scale) {
    tcb_dq(q, k, v, dy, lse, dsum, dq, T, H, KV, window, scale);
}

// (2 blocks an SM, which 255 registers a thread allow anyway: under plain bounds nvcc 13.0 capped this one at 128
// registers at HEAD_DIM 16 and spilled 8 bytes)
extern "C" __global__ void __launch_bounds__(TCB_THREADS, 2) attn_tc_bwd_dq_bf16(
        const unsigned short* __restrict__ q, const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const float* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dq, int T,
        int H, int KV, int window, float scale) {
    tcb_dq(q, k, v, dy, lse, dsum, dq, T, H, KV, window, scale);
}

extern "C" __global__ void __launch_bounds__(TCB_THREADS) attn_tc_bwd_dkv(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dy,
        const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dk, float* __restrict__ dv, int T, int H,
        int KV, int window, float scale) {
    tcb_dkv(q, k, v, dy, lse, dsum, dk, dv, T, H, KV, window, scale);
}

extern "C" __global__ void __launch_bounds__(TCB_THREADS) attn_tc_bwd_dkv_bf16(
        const unsigned short* __restrict__ q, const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const float* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dk,
        float* __restrict__ dv, int T, int H, int KV, int window, float scale) {
    tcb_dkv(q, k, v, dy, lse, dsum, dk, dv, T, H, KV, window, scale);
}
