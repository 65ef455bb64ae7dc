// Our tensor-core GEMM for Hopper (sm_90a only): C = alpha·op(A)·op(B) + beta·C, batched over blockIdx.z, bf16 A and
// B, fp32 C (M, N) row-major, in the three layouts of the model's linear layers (as gemm.cu, whose mma.sync kernels
// are the fallback on other GPUs):
//   gemm_wgmma_nt: A (M, K), B (N, K)  — y = x·Wᵀ (forward)
//   gemm_wgmma_nn: A (M, K), B (K, N)  — dx = dy·W
//   gemm_wgmma_tn: A (K, M), B (K, N)  — dW = dyᵀ·x
// mma.sync cannot reach Hopper's tensor-core peak: only the warpgroup MMA (wgmma.mma_async) feeds them at full rate,
// reading both operands straight from shared memory. A block is BM/64 warpgroups; each computes 64 rows × BN columns
// of C with one m64nBNk16 wgmma per 16 of depth, its accumulators in registers (BN/2 floats a thread).
//
// Shared memory holds STAGES stages of a BM×64 A tile and a BN×64 B tile, filled by cp.async in 16-byte chunks
// STAGES-2 tiles ahead of the MMAs, in the no-swizzle layout of 8×16-byte core matrices that wgmma descriptors
// describe. An operand whose rows run along K (A (M, K), B (N, K)) is stored K-major; one whose rows run along M or N
// (A (K, M), B (K, N)) is stored as it lies, M/N-major, and the wgmma reads it transposed (bf16 allows it) — no
// element-wise transposing copy as gemm.cu needs. Both layouts give chunk c the bytes c·16…c·16+15 of the tile:
//   K-major  (R rows × 64 k): chunk c = row 8·(c/64) + c%8, k 8·((c/8)%8)…+7;     core matrices along K every 128
//            bytes (the descriptor's leading byte offset), along M/N every 1024 (its stride byte offset)
//   MN-major (64 k × R rows): chunk c = k 8·(c/R) + c%8, rows 8·((c/8)%(R/8))…+7; along K every R·16 bytes (leading),
//            along M/N every 128 (stride)
// so 8 consecutive threads fill 128 contiguous bytes (no bank conflict) from 8 rows of global memory read 64 bytes
// at a time by the warp.
//
// Pipeline, per 64 of depth (kt): wait for this thread's copies of tile kt, make them visible to the tensor cores'
// async proxy, barrier (everyone's copies are in; every warpgroup has waited for its MMAs of tile kt-2), queue the
// copies of tile kt+STAGES-2 into the stage tile kt-2 used, issue the four MMAs of tile kt and let at most one group
// (kt's) stay in flight. M % BM, N % BN, K % 64 must be 0 and the operands 16-byte aligned (the host falls back to
// cuBLAS otherwise).
#include "common.cuh"
#include "tensorcore.cuh"
#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef STAGES
#define STAGES 4
#endif
#define BK 64
#define GROUP_M 8
#define WGS (BM / 64)
#define WG_THREADS (WGS * 128)
#define STAGE_BYTES ((BM + BN) * BK * 2)

static_assert(BM % 64 == 0 && BM <= 256, "BM: 64, 128, 192 or 256 rows (a warpgroup each 64)");
static_assert(BN == 128 || BN == 256, "BN: the wgmma N, 128 or 256");
static_assert(STAGES >= 3, "STAGES: at least the tile being read, the one in flight and one landing");

// One R-row tile of an operand, k in k0…k0+63, into shared memory (see the layouts above). KMAJOR: the operand is
// stored (rows, ld) with K contiguous; else (K, ld) with the rows contiguous.
template <int R, bool KMAJOR>
__device__ __forceinline__ void wg_stage(unsigned char* s, const unsigned short* src, int r0, int k0, int ld) {
#pragma unroll
    for (int c = threadIdx.x; c < R * BK / 8; c += WG_THREADS) {
        const unsigned short* from;
        if (KMAJOR) from = src + (size_t) (r0 + 8 * (c / 64) + c % 8) * ld + k0 + 8 * ((c / 8) % 8);
        else from = src + (size_t) (k0 + 8 * (c / R) + c % 8) * ld + r0 + 8 * ((c / 8) % (R / 8));
        cp_async16(s + 16 * c, from);
    }
}

template <bool TA, bool TB>
__device__ __forceinline__ void wg_load(unsigned char* stage, const unsigned short* A, const unsigned short* B, int bm, int bn,
                                        int k0, int M, int N, int K) {
    wg_stage<BM, !TA>(stage, A, bm, k0, TA ? M : K);
    wg_stage<BN, TB>(stage + BM * BK * 2, B, bn, k0, TB ? K : N);
}

template <bool TA, bool TB>
__device__ __forceinline__ void wg_body(const unsigned short* __restrict__ A, const unsigned short* __restrict__ B,
                                        float* __restrict__ C, int M, int N, int K, float alpha, float beta,
                                        long long strideA, long long strideB, long long strideC) {
    extern __shared__ __align__(128) unsigned char wg_smem[];
    A += blockIdx.z * strideA;
    B += blockIdx.z * strideB;
    C += blockIdx.z * strideC;
    // Blocks in groups of GROUP_M row tiles, column tile by column tile: the SMs working at once share a few A row
    // panels and sweep B's columns together, so both stay in L2 (in launch order, one A panel against every column
    // tile of a vocab-wide B would stream B from HBM once per panel).
    const int tilesM = gridDim.y, tilesN = gridDim.x, id = blockIdx.y * tilesN + blockIdx.x;
    const int firstM = id / (GROUP_M * tilesN) * GROUP_M, groupM = min(tilesM - firstM, GROUP_M), inGroup = id % (GROUP_M * tilesN);
    const int bm = (firstM + inGroup % groupM) * BM, bn = inGroup / groupM * BN;
    const int wg = threadIdx.x / 128;
    // wgmma's transpose bits: 1 where the operand's rows in shared memory run along M (A) or N (B)
    constexpr int TRANS_A = TA ? 1 : 0, TRANS_B = TB ? 0 : 1;
    // descriptor strides (bytes): K-major (lbo 128, sbo 1024); M/N-major (lbo R·16, sbo 128)
    constexpr unsigned A_LBO = TA ? BM * 16 : 128, A_SBO = TA ? 128 : 1024, B_LBO = TB ? 128 : BN * 16, B_SBO = TB ? 1024 : 128;
    // this warpgroup's 64 rows of A begin 8 core matrices along M in: 8·A_SBO bytes; a k16 step is two along K
    const unsigned aRows = 8 * A_SBO * wg;
    float d[BN / 2];
#pragma unroll
    for (int i = 0; i < BN / 2; i++) d[i] = 0.0f;

    const int tiles = K / BK;
#pragma unroll
    for (int s = 0; s < STAGES - 2; s++) {
        if (s < tiles) wg_load<TA, TB>(wg_smem + s * STAGE_BYTES, A, B, bm, bn, s * BK, M, N, K);
        cp_async_commit();
    }
    for (int kt = 0; kt < tiles; kt++) {
        cp_async_wait<STAGES - 3>(); // this thread's copies of tile kt have landed
        tc_fence_proxy_async();
        __syncthreads();
        const int next = kt + STAGES - 2;
        if (next < tiles) wg_load<TA, TB>(wg_smem + (next % STAGES) * STAGE_BYTES, A, B, bm, bn, next * BK, M, N, K);
        cp_async_commit(); // an empty group past the end keeps the count the wait above relies on
        const unsigned sa = tc_smem_addr(wg_smem + (kt % STAGES) * STAGE_BYTES), sb = sa + BM * BK * 2;
        wg_fence_operand(d);
        wg_fence();
#pragma unroll
        for (int ks = 0; ks < BK / 16; ks++) {
            wg_mma<BN, TRANS_A, TRANS_B>(d, wg_desc(sa + aRows + 2 * A_LBO * ks, A_LBO, A_SBO), wg_desc(sb + 2 * B_LBO * ks, B_LBO, B_SBO),
                                         kt > 0 || ks > 0);
        }
        wg_commit();
        wg_wait<1>(); // tile kt-1's MMAs are done: its stage may be refilled once everyone has passed the next barrier
        wg_fence_operand(d);
    }
    wg_wait<0>();
    wg_fence_operand(d);

    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    const int row = bm + 64 * wg + 16 * warp + lane / 4;
#pragma unroll
    for (int j = 0; j < BN / 8; j++) {
        const int col = bn + 8 * j + 2 * (lane % 4);
#pragma unroll
        for (int h = 0; h < 2; h++) {
            float2* out = (float2*) &C[(size_t) (row + 8 * h) * N + col];
            float2 v = make_float2(alpha * d[4 * j + 2 * h], alpha * d[4 * j + 2 * h + 1]);
            if (beta != 0.0f) {
                float2 o = *out;
                v.x += beta * o.x;
                v.y += beta * o.y;
            }
            *out = v;
        }
    }
}

// C = alpha·A·Bᵀ + beta·C, A (M, K), B (N, K).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_nt(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    wg_body<false, true>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}

// C = alpha·A·B + beta·C, A (M, K), B (K, N).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_nn(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    wg_body<false, false>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}

// C = alpha·Aᵀ·B + beta·C, A (K, M), B (K, N).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_tn(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    wg_body<true, false>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}
