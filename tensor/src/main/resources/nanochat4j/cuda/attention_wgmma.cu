// Flash attention on Hopper's warpgroup MMA (sm_90a only), head dim 128: the wgmma twins of attention_tc_fwd.cu's
// attn_tc_fwd and attention_tc_bwd.cu's _bf16 kernels — the same arguments, split and semantics:
//   y, lse                           attn_wg_fwd(_bf16), grid (ceil(Tq/128), H, B), 256 threads
//   dq = scale·dS·k                  attn_wg_bwd_dq,  grid (ceil(T/128), H, B), 256 threads
//   dk = scale·dSᵀ·q, dv = Pᵀ·dy     attn_wg_bwd_dkv, grid (ceil(T/128), KV, B), 256 threads, summed over the group
// with P = exp(scale·q·k − lse), dP = dy·vᵀ, dS = P∘(dP − dsum); query row i (at position pos + i in the forward) sees
// key j iff j <= its position and (window < 0 or position − j <= window); head h reads kv head h / (H / KV). The
// forward reads q (B, Tq, H, D), k, v (B, Tkv, KV, D) — fp32 (attn_wg_fwd: a prefill chunk against the KV cache) or
// bf16 (attn_wg_fwd_bf16: the training step's, from the copies its backward keeps) — and writes y fp32, lse
// (B, H, Tq) unless null; the backward
// reads q, dy (B, T, H, D) and k, v (B, T, KV, D) as bf16 copies (dy's written by attn_bwd_dsum while it reads dy for
// dsum), lse, dsum (B, H, T) fp32, and writes dq, dk, dv fp32. Each output element is written once, by one thread,
// after a fixed-order loop: no atomics, bitwise reproducible like the mma.sync kernels.
//
// Why: mma.sync cannot feed an H100's tensor cores at full rate; only the warpgroup MMA does. A block is two
// warpgroups, each owning 64 "resident" rows (Q for the forward, K and V for dk/dv, Q and dY for dq) that stay in
// shared memory as the wgmma A operand; the other operands stream through three stages of 64-row tiles that both
// warpgroups share. Per streamed tile, a warpgroup computes with m64nNk16 wgmmas:
//   fwd: S = Q·Kᵀ (N = 64 keys, A and B from shared memory); the online softmax in fp32 registers; O += P·V (N = 128,
//        A = P from registers, V read transposed: its rows are the K dimension)
//   dkv: Sᵀ = K·Qᵀ, dPᵀ = V·dYᵀ (N = 64 queries); Pᵀ, dSᵀ in fp32 registers; dV += Pᵀ·dY, dK += dSᵀ·Q (N = 128, A
//        from registers, B read transposed)
//   dq:  S = Q·Kᵀ, dP = dY·Vᵀ (N = 64 keys); dQ += dS·K (N = 128, A = dS from registers, K read transposed)
// A wgmma accumulator's fragment (rows g and g+8 of a warp's 16, columns 2t, 2t+1 of each 8) is, two 8-column blocks
// at a time, exactly the register-A fragment of the next wgmma, so P and dS reach the tensor cores as bf16 without a
// shared-memory round trip (FA2's trick, kept by FA3).
//
// Shared memory (dynamic, 128-byte aligned): every 64- or 128-row bf16 tile in 8×16-byte core matrices, core matrix
// (row r/8, dims 8c…8c+7) at byte (r/8·16 + c)·128, row r%8 at 16·(r%8) inside it. The same bytes are a K-major
// operand (K = dims: leading byte offset 128, stride 2048) and an MN-major one (K = rows: leading 2048, stride 128),
// so one copy of a streamed tile serves both products. 16-byte chunk c holds bytes 16c…16c+15 (row 8·(c/128) + c%8,
// dims 8·((c/8)%16)…): 8 consecutive threads fill 128 contiguous bytes from 8 rows.
//   fwd: Q resident (32 KB), 3 stages of K and V (16 KB each): 131,072 bytes
//   dkv: K, V resident (32 KB each), 3 stages of Q and dY (16 KB each) and lse, dsum (256 B each): 165,376 bytes
//   dq:  Q, dY resident (32 KB each), 3 stages of K and V (16 KB each): 163,840 bytes
// One block an SM (8 warps, up to 255 registers a thread).
//
// bf16 operands stream by cp.async, two tiles ahead: per tile it, wait for this thread's copies of tile it (tile
// it+1's may still be in flight) and make them visible to the async proxy; barrier (everyone's copies are in, every
// warpgroup is done with tile it−1); queue the copies of tile it+2 into the stage tile it−1 used; the wgmmas of tile
// it. Rows past T (keys past the block's last visible
// one) are read as the last row (never out of bounds) and masked: their P and dS are 0 and their outputs are not
// written. fp32 inputs cannot go through cp.async (it does not convert): attn_wg_fwd loads tile it+1's K and V into
// registers (16 float4 a thread) before tile it's wgmmas and stores them, as bf16, after them, as attention_tc_fwd.cu
// does — and reads twice the bytes from L2 for the same flops, which is why training feeds the bf16 kernel.
// Warpgroups skip tiles none of their rows see, and only tiles that cross the mask's edge pay for the per-element
// mask. The NaN caveats of the mma.sync kernels hold (a NaN in V at a masked key inside a computed tile reaches the
// row: 0 · NaN in the MMA).
//
// Inside a warpgroup the backward overlaps its softmax with its own MMAs: S and dP are two groups, so P is computed
// while dP is still on the tensor cores, and (dk/dv) dS while dV += Pᵀ·dY is.
//
// nvcc 13.0 -arch=sm_90a --resource-usage: attn_wg_fwd 215 registers, attn_wg_fwd_bf16 155, attn_wg_bwd_dq 192,
// attn_wg_bwd_dkv 251; 0 bytes spilled, no wgmma serialization note (KernelCompileTest fails on either: dkv sits 4
// registers under the limit, its dK and dV accumulators alone 128).
//
// Register operands are fenced as CUTLASS and FlashAttention-3 do: wg_fence_operand on the accumulators and the
// register A fragments right before wg_fence(), and on them again after the wait, so the compiler can move no
// ordinary write of them (zeroing S, packing P or dS, rescaling O) between wgmma.fence and the wgmma, nor a read
// before the wait.
#include "common.cuh"
#include "tensorcore.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#if HEAD_DIM != 128
#error "attention_wgmma.cu: HEAD_DIM 128 only (the N of the O, dq, dk and dv wgmmas)"
#endif
#define WB_THREADS 256                   // two warpgroups
#define WB_RES 128                       // resident rows a block: 64 a warpgroup
#define WB_ST 64                         // streamed rows a tile
#define WB_KL 128                        // K-major: bytes between core matrices along the dims
#define WB_RL (HEAD_DIM / 8 * 128)       // bytes between 8-row groups (2048)
#define WB_RES_BYTES (WB_RES * HEAD_DIM * 2)
#define WB_ST_BYTES (WB_ST * HEAD_DIM * 2)
// WB_STAGES: streamed tiles in shared memory (3: the one read, two landing), passed by the backend, whose
// CudaBackend.WG_STAGES also sizes the dynamic shared memory
#if !defined(WB_STAGES) || WB_STAGES < 2
#error "WB_STAGES (>= 2) comes from CudaBackend.wgmmaAttentionDefines"
#endif
#define WB_LOG2E 1.4426950408889634f
#define WB_LN2 0.6931471805599453f

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

// Queues the copies of the first WB_STAGES − 1 streamed tiles, a group each (the resident rows' copies, queued
// before, go with tile 0's).
template <typename Load>
__device__ __forceinline__ void wb_prologue(int n, Load load) {
#pragma unroll
    for (int i = 0; i < WB_STAGES - 1; i++) {
        if (i < n) load(i);
        cp_async_commit();
    }
}

// The head of streamed tile it's iteration: this thread's copies of tile it landed (later tiles' may still be in
// flight) and made visible to the async proxy; the barrier (everyone's copies of tile it are in; every warpgroup is
// done with tile it − 1, so its stage is free); then tile it + WB_STAGES − 1's copies queued into that stage. A group
// is committed every iteration, empty or not, so the wait's count stays exact.
template <typename Load>
__device__ __forceinline__ void wb_advance(int it, int n, Load load) {
    cp_async_wait<WB_STAGES - 2>();
    tc_fence_proxy_async();
    __syncthreads();
    if (it + WB_STAGES - 1 < n) load(it + WB_STAGES - 1);
    cp_async_commit();
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
        unsigned char* st = stage(it % WB_STAGES);
        int hh = kvh * G + it / nq, q0 = (qt0 + it % nq) * WB_ST;
        long long qBase = ((long long) b * T * H + hh) * HEAD_DIM, rowBase = ((long long) b * H + hh) * T;
        wb_stage<WB_ST>(st, q, qBase, qStride, q0, T);
        wb_stage<WB_ST>(st + WB_ST_BYTES, dy, qBase, qStride, q0, T);
        wb_stage_rows((float*) (st + 2 * WB_ST_BYTES), lse, rowBase, q0, T);
        wb_stage_rows((float*) (st + 2 * WB_ST_BYTES) + WB_ST, dsum, rowBase, q0, T);
    };
    wb_stage<WB_RES>(resK, k, kvBase, kvStride, k0, T);
    wb_stage<WB_RES>(resV, v, kvBase, kvStride, k0, T);
    wb_prologue(n, load);

    float dka[64], dva[64];
#pragma unroll
    for (int e = 0; e < 64; e++) dka[e] = dva[e] = 0.f;
    unsigned aK = tc_smem_addr(resK) + wg * 64 / 8 * WB_RL, aV = tc_smem_addr(resV) + wg * 64 / 8 * WB_RL;
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        wb_advance(it, n, load);
        int q0 = (qt0 + it % nq) * WB_ST;
        // Warpgroup-uniform: does a query of the tile see a key of ours; does every query see every key.
        bool active = kw0 < T && q0 + WB_ST - 1 >= kw0 && (window < 0 || q0 - (kw0 + 63) <= window);
        bool full = q0 >= kw0 + 63 && q0 + WB_ST - 1 < T && (window < 0 || q0 + WB_ST - 1 - kw0 <= window);
        if (!active) continue;
        unsigned char* st = stage(it % WB_STAGES);
        unsigned sQ = tc_smem_addr(st), sD = sQ + WB_ST_BYTES;
        const float* sLse = (const float*) (st + 2 * WB_ST_BYTES);
        const float* sDsum = sLse + WB_ST;
        float s[32], dp[32];
#pragma unroll
        for (int e = 0; e < 32; e++) s[e] = dp[e] = 0.f;
        // Sᵀ and dPᵀ as two groups: P is computed while dPᵀ is still on the tensor cores, and dS while dV += Pᵀ·dY is.
        wg_fence_operand(s);
        wg_fence_operand(dp);
        wg_fence();
        wb_scores(s, aK, sQ);   // Sᵀ: keys × queries
        wg_commit();
        wb_scores(dp, aV, sD);  // dPᵀ
        wg_commit();
        wg_wait<1>();
        wg_fence_operand(s);
        unsigned vis = 0; // bit e: element e is a visible (key, query) pair
#pragma unroll
        for (int e = 0; e < 32; e++) {
            int c = 8 * (e >> 2) + 2 * t + (e & 1);
            bool v = full || wb_visible(q0 + c, kr[(e >> 1) & 1], T, window);
            vis |= (unsigned) v << e;
            s[e] = v ? exp2f(s[e] * sl2 - sLse[c] * WB_LOG2E) : 0.f;
        }
        unsigned pa[4][4], da[4][4];
        wb_pack(pa, s);
        wb_fence_fragments(pa);
        wg_fence_operand(dva);
        wg_fence();
        wb_accumulate(dva, pa, sD);  // dV += Pᵀ·dY
        wg_commit();
        wg_wait<1>();                // dPᵀ's group (the one before dV's) has landed
        wg_fence_operand(dp);
#pragma unroll
        for (int e = 0; e < 32; e++) {
            int c = 8 * (e >> 2) + 2 * t + (e & 1);
            dp[e] = (vis >> e) & 1 ? s[e] * (dp[e] - sDsum[c]) : 0.f;
        }
        wb_pack(da, dp);
        wb_fence_fragments(da);
        wg_fence_operand(dka);
        wg_fence();
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
        unsigned char* st = stage(it % WB_STAGES);
        int j0 = (kt0 + it) * WB_ST;
        wb_stage<WB_ST>(st, k, kvBase, kvStride, j0, T);
        wb_stage<WB_ST>(st + WB_ST_BYTES, v, kvBase, kvStride, j0, T);
    };
    wb_stage<WB_RES>(resQ, q, qBase, qStride, i0, T);
    wb_stage<WB_RES>(resD, dy, qBase, qStride, i0, T);
    wb_prologue(n, load);

    float dqa[64];
#pragma unroll
    for (int e = 0; e < 64; e++) dqa[e] = 0.f;
    unsigned aQ = tc_smem_addr(resQ) + wg * 64 / 8 * WB_RL, aD = tc_smem_addr(resD) + wg * 64 / 8 * WB_RL;
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        wb_advance(it, n, load);
        int j0 = (kt0 + it) * WB_ST;
        bool active = iw0 < T && j0 <= iw0 + 63 && (window < 0 || iw0 - (j0 + WB_ST - 1) <= window);
        bool full = j0 + WB_ST - 1 <= iw0 && iw0 + 63 < T && (window < 0 || iw0 + 63 - j0 <= window);
        if (!active) continue;
        unsigned sK = tc_smem_addr(stage(it % WB_STAGES)), sV = sK + WB_ST_BYTES;
        float s[32], dp[32];
#pragma unroll
        for (int e = 0; e < 32; e++) s[e] = dp[e] = 0.f;
        wg_fence_operand(s);
        wg_fence_operand(dp);
        wg_fence();
        wb_scores(s, aQ, sK);   // S: queries × keys
        wg_commit();
        wb_scores(dp, aD, sV);  // dP, on the tensor cores while P is computed
        wg_commit();
        wg_wait<1>();
        wg_fence_operand(s);
        unsigned vis = 0; // bit e: element e is a visible (query, key) pair
#pragma unroll
        for (int e = 0; e < 32; e++) {
            int rr = (e >> 1) & 1, j = j0 + 8 * (e >> 2) + 2 * t + (e & 1);
            bool v = full || wb_visible(qr[rr], j, T, window);
            vis |= (unsigned) v << e;
            s[e] = v ? exp2f(s[e] * sl2 - rowLse[rr]) : 0.f;
        }
        wg_wait<0>();
        wg_fence_operand(dp);
#pragma unroll
        for (int e = 0; e < 32; e++) dp[e] = (vis >> e) & 1 ? s[e] * (dp[e] - rowDsum[(e >> 1) & 1]) : 0.f;
        unsigned da[4][4];
        wb_pack(da, dp);
        wb_fence_fragments(da);
        wg_fence_operand(dqa);
        wg_fence();
        wb_accumulate(dqa, da, sK);  // dQ += dS·K
        wg_commit();
        wg_wait<0>();
        wg_fence_operand(dqa);
        wb_fence_fragments(da);
    }
    cp_async_wait<0>();
    wb_store(dq, qBase, qStride, qr, T, dqa, scale, t);
}

// ---- forward

// Keys [t0, t0 + 64) of one kv head, fp32 (keys past hi read as zeros), into registers: 4 chunks of 8 dims a thread,
// two float4 each — the chunks this thread stores (wf_put) into the core-matrix layout.
__device__ __forceinline__ void wf_get(float4 (&pre)[8], const float* __restrict__ src, long long base, int stride, int t0, int hi) {
#pragma unroll
    for (int n = 0; n < 4; n++) {
        int c = threadIdx.x + n * WB_THREADS, r = 8 * (c / 128) + c % 8, d = 8 * ((c / 8) % 16), j = t0 + r;
        const float4* p = (const float4*) (src + base + (long long) j * stride + d);
        pre[2 * n] = j <= hi ? p[0] : make_float4(0.f, 0.f, 0.f, 0.f);
        pre[2 * n + 1] = j <= hi ? p[1] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

__device__ __forceinline__ void wf_put(unsigned char* s, const float4 (&pre)[8]) {
#pragma unroll
    for (int n = 0; n < 4; n++) {
        int c = threadIdx.x + n * WB_THREADS;
        float4 a = pre[2 * n], b = pre[2 * n + 1];
        *(uint4*) (s + 16 * c) = make_uint4(tc_pack_bf16(a.x, a.y), tc_pack_bf16(a.z, a.w), tc_pack_bf16(b.x, b.y), tc_pack_bf16(b.z, b.w));
    }
}

// The forward from fp32 (In = float: K and V converted through registers) or bf16 (unsigned short: cp.async) inputs.
template <typename In>
__device__ __forceinline__ void wf_body(const In* __restrict__ q, const In* __restrict__ k, const In* __restrict__ v, float* __restrict__ y,
                                        float* __restrict__ lse, int Tq, int Tkv, int H, int KV, int pos, int window, float scale) {
    constexpr bool BF16 = sizeof(In) == 2;
    extern __shared__ __align__(128) unsigned char wf_smem[]; // (C++ linkage: not the kernels' wb_smem)
    unsigned char* resQ = wf_smem;
    int wg = threadIdx.x >> 7, w = (threadIdx.x >> 5) & 3, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    // Keys [lo, hi] are the union of what the block's rows see.
    int i0 = blockIdx.x * WB_RES;
    int pFirst = pos + i0, pLast = pos + min(Tq - 1, i0 + WB_RES - 1);
    int lo = window < 0 ? 0 : max(0, pFirst - window), hi = min(pLast, Tkv - 1);
    int n = hi >= lo ? (hi - lo) / WB_ST + 1 : 0;
    // This warpgroup's rows, and this thread's: accumulator elements with (e >> 1) & 1 = rr are row qr[rr].
    int iw0 = i0 + 64 * wg;
    bool wgOk = iw0 < Tq;
    int wpFirst = pos + iw0, wpLast = pos + min(Tq - 1, iw0 + 63);
    int qr[2] = {iw0 + 16 * w + g, iw0 + 16 * w + g + 8};
    int p[2] = {pos + qr[0], pos + qr[1]};
    int lim[2] = {min(p[0], Tkv - 1), min(p[1], Tkv - 1)}; // the causal limit, never past the keys that exist
    long long qBase = ((long long) b * Tq * H + h) * HEAD_DIM, kvBase = ((long long) b * Tkv * KV + kvh) * HEAD_DIM;
    int qStride = H * HEAD_DIM, kvStride = KV * HEAD_DIM;
    float sl2 = scale * WB_LOG2E;

    auto stage = [&](int s) { return wf_smem + WB_RES_BYTES + s * 2 * WB_ST_BYTES; };
    // bf16 inputs: tile it's K and V (keys past hi as key hi: masked) by cp.async into its stage
    auto load = [&](int it) {
        int t0 = lo + it * WB_ST;
        wb_stage<WB_ST>(stage(it % WB_STAGES), (const unsigned short*) k, kvBase, kvStride, t0, hi + 1);
        wb_stage<WB_ST>(stage(it % WB_STAGES) + WB_ST_BYTES, (const unsigned short*) v, kvBase, kvStride, t0, hi + 1);
    };
    float4 pk[8], pv[8]; // fp32 inputs: the next tile's K and V on their way through registers
    if constexpr (BF16) {
        // Q (rows past Tq as row Tq − 1) and the first K, V tile
        wb_stage<WB_RES>(resQ, (const unsigned short*) q, qBase, qStride, i0, Tq);
        wb_prologue(n, load);
    } else {
        // Q: 128 rows (past Tq: zeros), converted once.
#pragma unroll 1
        for (int c = threadIdx.x; c < WB_RES * HEAD_DIM / 8; c += WB_THREADS) {
            int r = 8 * (c / 128) + c % 8, d = 8 * ((c / 8) % 16), i = i0 + r;
            float4 a = make_float4(0.f, 0.f, 0.f, 0.f), bb = a;
            if (i < Tq) {
                const float4* src = (const float4*) ((const float*) q + qBase + (long long) i * qStride + d);
                a = src[0];
                bb = src[1];
            }
            *(uint4*) (resQ + 16 * c) = make_uint4(tc_pack_bf16(a.x, a.y), tc_pack_bf16(a.z, a.w), tc_pack_bf16(bb.x, bb.y), tc_pack_bf16(bb.z, bb.w));
        }
        if (n > 0) {
            wf_get(pk, (const float*) k, kvBase, kvStride, lo, hi);
            wf_get(pv, (const float*) v, kvBase, kvStride, lo, hi);
            wf_put(stage(0), pk);
            wf_put(stage(0) + WB_ST_BYTES, pv);
        }
        tc_fence_proxy_async();
    }

    float o[64];
#pragma unroll
    for (int e = 0; e < 64; e++) o[e] = 0.f;
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f}; // l: this lane's partial sums over its own columns
    unsigned aQ = tc_smem_addr(resQ) + wg * 64 / 8 * WB_RL;
#pragma unroll 1
    for (int it = 0; it < n; it++) {
        int t0 = lo + it * WB_ST;
        bool more = it + 1 < n;
        if constexpr (BF16) {
            wb_advance(it, n, load);
        } else {
            __syncthreads(); // tile it is in its stage; every warpgroup is done with tile it − 1
            if (more) {
                wf_get(pk, (const float*) k, kvBase, kvStride, t0 + WB_ST, hi);
                wf_get(pv, (const float*) v, kvBase, kvStride, t0 + WB_ST, hi);
            }
        }
        // Warpgroup-uniform: does any of its rows see a key of the tile; does every row see every key.
        bool active = wgOk && t0 <= wpLast && (window < 0 || t0 + WB_ST - 1 >= wpFirst - window);
        bool full = t0 + WB_ST - 1 <= min(wpFirst, hi) && (window < 0 || wpLast - t0 <= window);
        if (active) {
            unsigned sK = tc_smem_addr(stage(it % WB_STAGES)), sV = sK + WB_ST_BYTES;
            float s[32];
#pragma unroll
            for (int e = 0; e < 32; e++) s[e] = 0.f;
            wg_fence_operand(s);
            wg_fence();
            wb_scores(s, aQ, sK);
            wg_commit();
            wg_wait<0>();
            wg_fence_operand(s);
            // Element e: key t0 + 8(e/4) + 2t + (e&1), row qr[(e>>1)&1]. Scores in log2 units.
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int e = 0; e < 32; e++) {
                int rr = (e >> 1) & 1;
                float x = s[e] * sl2;
                if (!full) {
                    int j = t0 + 8 * (e >> 2) + 2 * t + (e & 1);
                    bool vis = j <= lim[rr] && (window < 0 || p[rr] - j <= window);
                    x = vis ? x : NEG_INF;
                }
                s[e] = x;
                mx[rr] = nan_max(mx[rr], x);
            }
            float corr[2], mUse[2];
            online_softmax_step(m, l, mx, mUse, corr);
#pragma unroll
            for (int e = 0; e < 32; e++) {
                float pr = exp2f(s[e] - mUse[(e >> 1) & 1]);
                s[e] = pr;
                l[(e >> 1) & 1] += pr;
            }
            unsigned pa[4][4];
            wb_pack(pa, s);
#pragma unroll
            for (int e = 0; e < 64; e++) o[e] *= corr[(e >> 1) & 1];
            wb_fence_fragments(pa);
            wg_fence_operand(o);
            wg_fence();
            wb_accumulate(o, pa, sV); // O += P·V
            wg_commit();
            wg_wait<0>();
            wg_fence_operand(o);
            wb_fence_fragments(pa);
        }
        if (!BF16 && more) {
            unsigned char* next = stage((it + 1) % WB_STAGES); // last read by tile it − 2's wgmmas, waited before a barrier
            wf_put(next, pk);
            wf_put(next + WB_ST_BYTES, pv);
            tc_fence_proxy_async();
        }
    }
    if constexpr (BF16) cp_async_wait<0>();

    if (!wgOk) return; // warpgroup-uniform, after the last barrier
    online_softmax_total(l);
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        if (qr[rr] >= Tq) continue;
        float inv = 1.f / l[rr];
        float* yr = y + qBase + (long long) qr[rr] * qStride;
#pragma unroll
        for (int j = 0; j < HEAD_DIM / 8; j++) *(float2*) (yr + 8 * j + 2 * t) = make_float2(o[4 * j + 2 * rr] * inv, o[4 * j + 2 * rr + 1] * inv);
        if (lse != 0 && t == 0) lse[((long long) b * H + h) * Tq + qr[rr]] = m[rr] * WB_LN2 + logf(l[rr]);
    }
}

extern "C" __global__ void __launch_bounds__(WB_THREADS, 1) attn_wg_fwd(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ y,
        float* __restrict__ lse, int Tq, int Tkv, int H, int KV, int pos, int window, float scale) {
    wf_body(q, k, v, y, lse, Tq, Tkv, H, KV, pos, window, scale);
}

// The same with q, k, v as bf16 (the copies a training step keeps for the backward, made before the forward).
extern "C" __global__ void __launch_bounds__(WB_THREADS, 1) attn_wg_fwd_bf16(
        const unsigned short* __restrict__ q, const unsigned short* __restrict__ k, const unsigned short* __restrict__ v,
        float* __restrict__ y, float* __restrict__ lse, int Tq, int Tkv, int H, int KV, int pos, int window, float scale) {
    wf_body(q, k, v, y, lse, Tq, Tkv, H, KV, pos, window, scale);
}
