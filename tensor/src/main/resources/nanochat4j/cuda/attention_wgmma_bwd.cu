// Flash-attention backward on Hopper's warpgroup MMA (sm_90a only), head dim 128: the wgmma twin of
// attention_tc_bwd.cu's _bf16 kernels — the same split, arguments and semantics, but dy read as its bf16 copy too
// (attn_bwd_dsum writes it while it reads dy for dsum), so every operand streams into shared memory by cp.async:
//   dq = scale·dS·k                  attn_wg_bwd_dq,  grid (ceil(T/128), H, B), 256 threads
//   dk = scale·dSᵀ·q, dv = Pᵀ·dy     attn_wg_bwd_dkv, grid (ceil(T/128), KV, B), 256 threads, summed over the group
// with P = exp(scale·q·k − lse), dP = dy·vᵀ, dS = P∘(dP − dsum); query row i sees key j iff j <= i and (window < 0 or
// i − j <= window); head h reads kv head h / (H / KV). q, dy (B, T, H, D) and k, v (B, T, KV, D) bf16; lse, dsum
// (B, H, T) fp32; dq, dk, dv fp32. Each output element is written once, by one thread, after a fixed-order loop: no
// atomics, bitwise reproducible like the mma.sync kernels.
//
// Why: mma.sync (attention_tc_bwd.cu) cannot feed an H100's tensor cores at full rate, and the backward is 5/7 of
// attention's flops. Here a block is two warpgroups, each owning 64 "resident" rows (K and V for dk/dv, Q and dY for
// dq) that stay in shared memory as the wgmma A operand; the other pair streams through two stages of 64-row tiles
// that both warpgroups share. Per streamed tile, a warpgroup computes with m64nNk16 wgmmas:
//   dkv: Sᵀ = K·Qᵀ, dPᵀ = V·dYᵀ  (N = 64 queries, A and B from shared memory)
//        Pᵀ, dSᵀ in fp32 registers, then dV += Pᵀ·dY, dK += dSᵀ·Q  (N = 128, A = Pᵀ / dSᵀ from registers, B read
//        transposed: the streamed tile's rows are now the K dimension)
//   dq:  S = Q·Kᵀ, dP = dY·Vᵀ (N = 64 keys); dQ += dS·K (N = 128, A = dS from registers, K read transposed)
// A wgmma accumulator's fragment (rows g and g+8 of a warp's 16, columns 2t, 2t+1 of each 8) is, two 8-column blocks
// at a time, exactly the register-A fragment of the next wgmma, so P and dS reach the tensor cores as bf16 without a
// shared-memory round trip (FA2's trick, kept by FA3).
//
// Shared memory (dynamic, 128-byte aligned): every 64- or 128-row bf16 tile in 8×16-byte core matrices, core matrix
// (row r/8, dims 8c…8c+7) at byte (r/8·16 + c)·128, row r%8 at 16·(r%8) inside it. The same bytes are a K-major
// operand (K = dims: leading byte offset 128, stride 2048) and an MN-major one (K = rows: leading 2048, stride 128),
// so one copy of a streamed tile serves both products. cp.async chunk c fills bytes 16c…16c+15 (row 8·(c/128) + c%8,
// dims 8·((c/8)%16)…): 8 consecutive threads fill 128 contiguous bytes from 8 rows, a warp reads 64 bytes of each.
// Rows past T are read as row T−1 (never out of bounds) and masked: such a row's P and dS are 0 and its outputs not
// written.
//   dkv: K, V resident (2 × 32 KB), 2 stages of Q, dY (2 × 16 KB) and lse, dsum (2 × 256 B): 132,096 bytes
//   dq:  Q, dY resident (2 × 32 KB), 2 stages of K, V (2 × 16 KB): 131,072 bytes
// One block an SM (8 warps, up to 255 registers a thread).
//
// Pipeline, per streamed tile it: wait for this thread's copies of tile it and make them visible to the async proxy;
// barrier (everyone's copies are in, every warpgroup is done with tile it−1); queue the copies of tile it+1 into the
// stage tile it−1 used; the wgmmas of tile it. Warpgroups skip tiles none of their rows see, and only tiles that cross
// the mask's edge or T pay for the per-element mask. Differences from the mma.sync kernels: dy enters the products as
// bf16 from the start (theirs round it in registers: the same values), and the NaN caveat of attention_tc_bwd.cu holds.
//
// nvcc 13.0 -arch=sm_90a --resource-usage: attn_wg_bwd_dq 170 registers, attn_wg_bwd_dkv 236, 0 bytes spilled, no
// wgmma serialization warning (recheck after any change: dkv's dK and dV accumulators alone are 128 registers).
#include "common.cuh"
#include "tensorcore.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#if HEAD_DIM != 128
#error "attention_wgmma_bwd.cu: HEAD_DIM 128 only (the N of the dq, dk and dv wgmmas)"
#endif
#define WB_THREADS 256                   // two warpgroups
#define WB_RES 128                       // resident rows a block: 64 a warpgroup
#define WB_ST 64                         // streamed rows a tile
#define WB_KL 128                        // K-major: bytes between core matrices along the dims
#define WB_RL (HEAD_DIM / 8 * 128)       // bytes between 8-row groups (2048)
#define WB_RES_BYTES (WB_RES * HEAD_DIM * 2)
#define WB_ST_BYTES (WB_ST * HEAD_DIM * 2)
#define WB_LOG2E 1.4426950408889634f

__device__ __forceinline__ bool wb_visible(int i, int j, int T, int window) {
    return i < T && j <= i && (window < 0 || i - j <= window);
}

// Rows r0… (R of them) of a (rows, HEAD_DIM) bf16 matrix into the core-matrix layout above, rows past T as row T−1.
template <int R>
__device__ __forceinline__ void wb_stage(unsigned char* s, const unsigned short* src, long long base, int stride, int r0, int T) {
#pragma unroll
    for (int c = threadIdx.x; c < R * HEAD_DIM / 8; c += WB_THREADS) {
        int r = 8 * (c / 128) + c % 8, d = 8 * ((c / 8) % 16);
        cp_async16(s + 16 * c, src + base + (long long) min(r0 + r, T - 1) * stride + d);
    }
}

// 64 per-row scalars (lse, dsum: row i of (b, h) at base + i) from row i0 on, rows past T as row T−1.
__device__ __forceinline__ void wb_stage_rows(float* s, const float* src, long long base, int i0, int T) {
    if (threadIdx.x < WB_ST) cp_async4(s + threadIdx.x, src + base + min(i0 + (int) threadIdx.x, T - 1));
}

// Descriptors of a tile's k-step: K-major (k = dims 16ks…, the tile's rows are M or N) and MN-major (k = rows
// 16ks…, the dims are N).
__device__ __forceinline__ unsigned long long wb_kmajor(unsigned addr, int ks) { return wg_desc(addr + 2 * WB_KL * ks, WB_KL, WB_RL); }
__device__ __forceinline__ unsigned long long wb_mnmajor(unsigned addr, int ks) { return wg_desc(addr + 2 * WB_RL * ks, WB_RL, WB_KL); }

// acc (64 × 64, this thread's 32) = A·Bᵀ over the 128 dims: A 64 resident rows at aAddr, B a streamed tile at bAddr.
__device__ __forceinline__ void wb_scores(float (&acc)[32], unsigned aAddr, unsigned bAddr) {
#pragma unroll
    for (int ks = 0; ks < HEAD_DIM / 16; ks++) wg_mma<64, 0, 0>(acc, wb_kmajor(aAddr, ks), wb_kmajor(bAddr, ks), ks > 0);
}

// acc (64 × 128) += A·B: A (64 × 64) as 4 register fragments, B the streamed tile (64 rows = K, 128 dims = N).
__device__ __forceinline__ void wb_accumulate(float (&acc)[64], const unsigned (&a)[4][4], unsigned bAddr) {
#pragma unroll
    for (int ks = 0; ks < WB_ST / 16; ks++) wg_mma_rs<128, 1>(acc, a[ks], wb_mnmajor(bAddr, ks), 1);
}

// Accumulator element e of a 64-column tile: 8-column block e/4, row g + 8·((e/2)&1), column 8(e/4) + 2t + (e&1).
// Packs two adjacent blocks into the A fragment of k-step ks (columns 16ks…16ks+15).
__device__ __forceinline__ void wb_pack(unsigned (&a)[4][4], const float (&x)[32]) {
#pragma unroll
    for (int ks = 0; ks < 4; ks++) {
        a[ks][0] = tc_pack_bf16(x[8 * ks], x[8 * ks + 1]);
        a[ks][1] = tc_pack_bf16(x[8 * ks + 2], x[8 * ks + 3]);
        a[ks][2] = tc_pack_bf16(x[8 * ks + 4], x[8 * ks + 5]);
        a[ks][3] = tc_pack_bf16(x[8 * ks + 6], x[8 * ks + 7]);
    }
}

__device__ __forceinline__ void wb_fence_fragments(unsigned (&a)[4][4]) {
#pragma unroll
    for (int ks = 0; ks < 4; ks++) wg_fence_operand(a[ks]);
}

// Writes this thread's rows of a 64 × 128 accumulator times `scale` (rows ≥ T skipped): rows[0] gets elements
// 4j, 4j+1, rows[1] 4j+2, 4j+3, at columns 8j + 2t.
__device__ __forceinline__ void wb_store(float* out, long long base, int stride, const int (&rows)[2], int T, const float (&acc)[64],
                                         float scale, int t) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        if (rows[rr] >= T) continue;
        float* o = out + base + (long long) rows[rr] * stride;
#pragma unroll
        for (int j = 0; j < HEAD_DIM / 8; j++) {
            *(float2*) (o + 8 * j + 2 * t) = make_float2(acc[4 * j + 2 * rr] * scale, acc[4 * j + 2 * rr + 1] * scale);
        }
    }
}

extern "C" __global__ void __launch_bounds__(WB_THREADS, 1) attn_wg_bwd_dkv(
        const unsigned short* __restrict__ q, const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const unsigned short* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum,
        float* __restrict__ dk, float* __restrict__ dv, int T, int H, int KV, int window, float scale) {
    extern __shared__ __align__(128) unsigned char wb_smem[];
    unsigned char* resK = wb_smem;
    unsigned char* resV = resK + WB_RES_BYTES;
    int wg = threadIdx.x >> 7, w = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int kvh = blockIdx.y, b = blockIdx.z, G = H / KV;
    int k0 = blockIdx.x * WB_RES, kw0 = k0 + 64 * wg;
    int kr[2] = {kw0 + 16 * w + g, kw0 + 16 * w + g + 8}; // this thread's key rows
    // Query tiles: from the one holding k0 (earlier queries see none of the block's keys) to the last query that sees
    // its last key; the loop runs over them for each head of the group.
    int qt0 = k0 / WB_ST, qEnd = window < 0 ? T - 1 : min(T - 1, k0 + WB_RES - 1 + window);
    int nq = qEnd / WB_ST - qt0 + 1, n = G * nq;
    long long kvBase = ((long long) b * T * KV + kvh) * HEAD_DIM;
    int kvStride = KV * HEAD_DIM, qStride = H * HEAD_DIM;
    float sl2 = scale * WB_LOG2E;

    // Stage s of the stream: Q, dY, lse, dsum.
    auto stage = [&](int s) { return wb_smem + 2 * WB_RES_BYTES + s * (2 * WB_ST_BYTES + 2 * WB_ST * 4); };
    auto load = [&](int it) {
        unsigned char* st = stage(it & 1);
        int hh = kvh * G + it / nq, q0 = (qt0 + it % nq) * WB_ST;
        long long qBase = ((long long) b * T * H + hh) * HEAD_DIM, rowBase = ((long long) b * H + hh) * T;
        wb_stage<WB_ST>(st, q, qBase, qStride, q0, T);
        wb_stage<WB_ST>(st + WB_ST_BYTES, dy, qBase, qStride, q0, T);
        wb_stage_rows((float*) (st + 2 * WB_ST_BYTES), lse, rowBase, q0, T);
        wb_stage_rows((float*) (st + 2 * WB_ST_BYTES) + WB_ST, dsum, rowBase, q0, T);
    };
    wb_stage<WB_RES>(resK, k, kvBase, kvStride, k0, T);
    wb_stage<WB_RES>(resV, v, kvBase, kvStride, k0, T);
    if (n > 0) load(0);
    cp_async_commit();

    float dka[64], dva[64];
#pragma unroll
    for (int e = 0; e < 64; e++) dka[e] = dva[e] = 0.f;
    unsigned aK = tc_smem_addr(resK) + wg * 64 / 8 * WB_RL, aV = tc_smem_addr(resV) + wg * 64 / 8 * WB_RL;
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        cp_async_wait<0>();
        tc_fence_proxy_async();
        __syncthreads();
        if (it + 1 < n) load(it + 1);
        cp_async_commit();
        int q0 = (qt0 + it % nq) * WB_ST;
        // Warpgroup-uniform: does a query of the tile see a key of ours; does every query see every key.
        bool active = kw0 < T && q0 + WB_ST - 1 >= kw0 && (window < 0 || q0 - (kw0 + 63) <= window);
        bool full = q0 >= kw0 + 63 && q0 + WB_ST - 1 < T && (window < 0 || q0 + WB_ST - 1 - kw0 <= window);
        if (!active) continue;
        unsigned char* st = stage(it & 1);
        unsigned sQ = tc_smem_addr(st), sD = sQ + WB_ST_BYTES;
        const float* sLse = (const float*) (st + 2 * WB_ST_BYTES);
        const float* sDsum = sLse + WB_ST;
        float s[32], dp[32];
#pragma unroll
        for (int e = 0; e < 32; e++) s[e] = dp[e] = 0.f;
        wg_fence();
        wb_scores(s, aK, sQ);   // Sᵀ: keys × queries
        wb_scores(dp, aV, sD);  // dPᵀ
        wg_commit();
        wg_wait<0>();
        wg_fence_operand(s);
        wg_fence_operand(dp);
#pragma unroll
        for (int e = 0; e < 32; e++) {
            int c = 8 * (e >> 2) + 2 * t + (e & 1), j = kr[(e >> 1) & 1];
            bool vis = full || wb_visible(q0 + c, j, T, window);
            float p = vis ? exp2f(s[e] * sl2 - sLse[c] * WB_LOG2E) : 0.f;
            dp[e] = vis ? p * (dp[e] - sDsum[c]) : 0.f;
            s[e] = p;
        }
        unsigned pa[4][4], da[4][4];
        wb_pack(pa, s);
        wb_pack(da, dp);
        wg_fence();
        wg_fence_operand(dva);
        wg_fence_operand(dka);
        wb_accumulate(dva, pa, sD);  // dV += Pᵀ·dY
        wb_accumulate(dka, da, sQ);  // dK += dSᵀ·Q
        wg_commit();
        wg_wait<0>();
        wg_fence_operand(dva);
        wg_fence_operand(dka);
        wb_fence_fragments(pa);
        wb_fence_fragments(da);
    }
    cp_async_wait<0>();
    wb_store(dk, kvBase, kvStride, kr, T, dka, scale, t);
    wb_store(dv, kvBase, kvStride, kr, T, dva, 1.f, t);
}

extern "C" __global__ void __launch_bounds__(WB_THREADS, 1) attn_wg_bwd_dq(
        const unsigned short* __restrict__ q, const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        const unsigned short* __restrict__ dy, const float* __restrict__ lse, const float* __restrict__ dsum,
        float* __restrict__ dq, int T, int H, int KV, int window, float scale) {
    extern __shared__ __align__(128) unsigned char wb_smem[];
    unsigned char* resQ = wb_smem;
    unsigned char* resD = resQ + WB_RES_BYTES;
    int wg = threadIdx.x >> 7, w = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    int i0 = blockIdx.x * WB_RES, iw0 = i0 + 64 * wg;
    int qr[2] = {iw0 + 16 * w + g, iw0 + 16 * w + g + 8}; // this thread's query rows
    long long qBase = ((long long) b * T * H + h) * HEAD_DIM, kvBase = ((long long) b * T * KV + kvh) * HEAD_DIM;
    int qStride = H * HEAD_DIM, kvStride = KV * HEAD_DIM;
    float sl2 = scale * WB_LOG2E, rowLse[2], rowDsum[2];
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        long long r = ((long long) b * H + h) * T + min(qr[rr], T - 1);
        rowLse[rr] = lse[r] * WB_LOG2E;
        rowDsum[rr] = dsum[r];
    }
    // Key tiles: from the first key the block's first row sees to its last row.
    int kt0 = (window < 0 ? 0 : max(0, i0 - window)) / WB_ST, kEnd = min(T - 1, i0 + WB_RES - 1);
    int n = kEnd / WB_ST - kt0 + 1;

    auto stage = [&](int s) { return wb_smem + 2 * WB_RES_BYTES + s * 2 * WB_ST_BYTES; };
    auto load = [&](int it) {
        unsigned char* st = stage(it & 1);
        int j0 = (kt0 + it) * WB_ST;
        wb_stage<WB_ST>(st, k, kvBase, kvStride, j0, T);
        wb_stage<WB_ST>(st + WB_ST_BYTES, v, kvBase, kvStride, j0, T);
    };
    wb_stage<WB_RES>(resQ, q, qBase, qStride, i0, T);
    wb_stage<WB_RES>(resD, dy, qBase, qStride, i0, T);
    load(0);
    cp_async_commit();

    float dqa[64];
#pragma unroll
    for (int e = 0; e < 64; e++) dqa[e] = 0.f;
    unsigned aQ = tc_smem_addr(resQ) + wg * 64 / 8 * WB_RL, aD = tc_smem_addr(resD) + wg * 64 / 8 * WB_RL;
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        cp_async_wait<0>();
        tc_fence_proxy_async();
        __syncthreads();
        if (it + 1 < n) load(it + 1);
        cp_async_commit();
        int j0 = (kt0 + it) * WB_ST;
        bool active = iw0 < T && j0 <= iw0 + 63 && (window < 0 || iw0 - (j0 + WB_ST - 1) <= window);
        bool full = j0 + WB_ST - 1 <= iw0 && iw0 + 63 < T && (window < 0 || iw0 + 63 - j0 <= window);
        if (!active) continue;
        unsigned sK = tc_smem_addr(stage(it & 1)), sV = sK + WB_ST_BYTES;
        float s[32], dp[32];
#pragma unroll
        for (int e = 0; e < 32; e++) s[e] = dp[e] = 0.f;
        wg_fence();
        wb_scores(s, aQ, sK);   // S: queries × keys
        wb_scores(dp, aD, sV);  // dP
        wg_commit();
        wg_wait<0>();
        wg_fence_operand(s);
        wg_fence_operand(dp);
#pragma unroll
        for (int e = 0; e < 32; e++) {
            int rr = (e >> 1) & 1, j = j0 + 8 * (e >> 2) + 2 * t + (e & 1);
            bool vis = full || wb_visible(qr[rr], j, T, window);
            float p = vis ? exp2f(s[e] * sl2 - rowLse[rr]) : 0.f;
            dp[e] = vis ? p * (dp[e] - rowDsum[rr]) : 0.f;
        }
        unsigned da[4][4];
        wb_pack(da, dp);
        wg_fence();
        wg_fence_operand(dqa);
        wb_accumulate(dqa, da, sK);  // dQ += dS·K
        wg_commit();
        wg_wait<0>();
        wg_fence_operand(dqa);
        wb_fence_fragments(da);
    }
    cp_async_wait<0>();
    wb_store(dq, qBase, qStride, qr, T, dqa, scale, t);
}
