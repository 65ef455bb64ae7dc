// Our own tensor-core GEMM (the design card's "JIT its matmul kernels"): C = alpha·op(A)·op(B) + beta·C, batched
// over blockIdx.z, bf16 A and B, fp32 C (M, N) row-major, in the three layouts the model's linear layers need:
//   gemm_bf16_nt: A (M, K), B (N, K)  — y = x·Wᵀ (forward)
//   gemm_bf16_nn: A (M, K), B (K, N)  — dx = dy·W
//   gemm_bf16_tn: A (K, M), B (K, N)  — dW = dyᵀ·x
// mma.sync m16n8k16 (bf16 in, fp32 accumulate), BM×BN×BK block tiles split into WM×WN warp tiles, double-buffered
// bf16 tiles in shared memory padded by 8 elements a row (the fragment loads of a warp then hit 32 distinct banks).
// Shared memory always holds both tiles K-contiguous, as the .row.col fragments read them: a K-contiguous operand is
// copied by cp.async in 16-byte chunks; an operand whose rows run along M or N is read in 16-byte chunks along them
// and stored element by element transposed. Tile sizes are -D constants chosen per shape by the host (NVRTC compiles
// one variant per tile set); M % BM, N % BN and K % BK must be 0 and the operands 16-byte aligned (the host falls
// back to cuBLAS otherwise). Fragment layouts follow the PTX ISA for mma.m16n8k16 .row.col.
#include "common.cuh"
#include "tensorcore.cuh"
#ifndef BM
#define BM 128
#endif
#ifndef BN
#define BN 128
#endif
#ifndef BK
#define BK 32
#endif
#ifndef WM
#define WM 64
#endif
#ifndef WN
#define WN 32
#endif
#define GEMM_THREADS ((BM / WM) * (BN / WN) * 32)
#define LDS (BK + 8)
#define MT (WM / 16)
#define NT (WN / 8)

// Rows [r0, r0+R) × columns [k0, k0+BK) of a K-contiguous (rows, ld) matrix, by cp.async in 16-byte chunks.
template <int R>
__device__ __forceinline__ void stage_rows(unsigned short* s, const unsigned short* src, int r0, int k0, int ld) {
    for (int c = threadIdx.x; c < R * BK / 8; c += GEMM_THREADS) {
        int r = c / (BK / 8), col = (c % (BK / 8)) * 8;
        cp_async16(&s[r * LDS + col], src + (size_t) (r0 + r) * ld + k0 + col);
    }
}

// The same tile of a (K, ld) matrix whose rows run along R: 16-byte loads of 8 consecutive r at one k, each element
// stored transposed (s[r][k]), so the tile lands K-contiguous like stage_rows's. Consecutive threads take
// consecutive k, so a warp's 2-byte stores fill 64 contiguous bytes of one tile row (no bank conflict; with r
// fastest, every lane's row started in the same bank).
template <int R>
__device__ __forceinline__ void stage_cols(unsigned short* s, const unsigned short* src, int r0, int k0, int ld) {
    for (int c = threadIdx.x; c < R * BK / 8; c += GEMM_THREADS) {
        int kk = c % BK, r = (c / BK) * 8;
        uint4 v = *(const uint4*) (src + (size_t) (k0 + kk) * ld + r0 + r);
        unsigned w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
        for (int e = 0; e < 4; e++) { // little-endian: the lower address is the low half
            s[(r + 2 * e) * LDS + kk] = (unsigned short) (w[e] & 0xffffu);
            s[(r + 2 * e + 1) * LDS + kk] = (unsigned short) (w[e] >> 16);
        }
    }
}

// One stage of tiles: op(A) rows bm.., op(B) rows bn.., k in k0..k0+BK. TA: A is stored (K, M); TB: B is stored
// (N, K) (so "nt" is TA = false, TB = true).
template <bool TA, bool TB>
__device__ __forceinline__ void load_stage(unsigned short* sA, unsigned short* sB, const unsigned short* A,
                                           const unsigned short* B, int bm, int bn, int k0, int M, int N, int K) {
    if (TA) stage_cols<BM>(sA, A, bm, k0, M);
    else stage_rows<BM>(sA, A, bm, k0, K);
    if (TB) stage_rows<BN>(sB, B, bn, k0, K);
    else stage_cols<BN>(sB, B, bn, k0, N);
    cp_async_commit(); // an empty group when neither operand used cp.async: the waits below still hold
}

template <bool TA, bool TB>
__device__ __forceinline__ void gemm_body(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    __shared__ __align__(16) unsigned short sA[2][BM * LDS];
    __shared__ __align__(16) unsigned short sB[2][BN * LDS];
    A += blockIdx.z * strideA;
    B += blockIdx.z * strideB;
    C += blockIdx.z * strideC;
    int bm = blockIdx.y * BM, bn = blockIdx.x * BN;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int wm = (warp / (BN / WN)) * WM, wn = (warp % (BN / WN)) * WN;
    int g = lane >> 2, t = lane & 3;
    float acc[MT][NT][4];
#pragma unroll
    for (int i = 0; i < MT; i++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[i][j][e] = 0.0f;

    int tiles = K / BK;
    load_stage<TA, TB>(sA[0], sB[0], A, B, bm, bn, 0, M, N, K);
    for (int kt = 0; kt < tiles; kt++) {
        if (kt + 1 < tiles) {
            load_stage<TA, TB>(sA[(kt + 1) & 1], sB[(kt + 1) & 1], A, B, bm, bn, (kt + 1) * BK, M, N, K);
            cp_async_wait_all_but_one();
        } else {
            cp_async_wait_all();
        }
        __syncthreads();
        const unsigned short* a = sA[kt & 1];
        const unsigned short* b = sB[kt & 1];
#pragma unroll
        for (int kk = 0; kk < BK; kk += 16) {
            unsigned af[MT][4], bf[NT][2];
#pragma unroll
            for (int i = 0; i < MT; i++) {
                int r = wm + i * 16 + g;
                af[i][0] = *(const unsigned*) &a[r * LDS + kk + t * 2];
                af[i][1] = *(const unsigned*) &a[(r + 8) * LDS + kk + t * 2];
                af[i][2] = *(const unsigned*) &a[r * LDS + kk + 8 + t * 2];
                af[i][3] = *(const unsigned*) &a[(r + 8) * LDS + kk + 8 + t * 2];
            }
#pragma unroll
            for (int j = 0; j < NT; j++) {
                int n = wn + j * 8 + g;
                bf[j][0] = *(const unsigned*) &b[n * LDS + kk + t * 2];
                bf[j][1] = *(const unsigned*) &b[n * LDS + kk + 8 + t * 2];
            }
#pragma unroll
            for (int i = 0; i < MT; i++)
#pragma unroll
                for (int j = 0; j < NT; j++) tc_mma(acc[i][j], af[i], bf[j][0], bf[j][1]);
        }
        __syncthreads(); // the stage just read is the one the next iteration loads into
    }
#pragma unroll
    for (int i = 0; i < MT; i++) {
#pragma unroll
        for (int j = 0; j < NT; j++) {
            int row = bm + wm + i * 16 + g, col = bn + wn + j * 8 + t * 2;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float2* out = (float2*) &C[(size_t) (row + h * 8) * N + col];
                float2 v = make_float2(alpha * acc[i][j][2 * h], alpha * acc[i][j][2 * h + 1]);
                if (beta != 0.0f) {
                    float2 o = *out;
                    v.x += beta * o.x;
                    v.y += beta * o.y;
                }
                *out = v;
            }
        }
    }
}

// C = alpha·A·Bᵀ + beta·C, A (M, K), B (N, K).
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_bf16_nt(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    gemm_body<false, true>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}

// C = alpha·A·B + beta·C, A (M, K), B (K, N).
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_bf16_nn(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    gemm_body<false, false>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}

// C = alpha·Aᵀ·B + beta·C, A (K, M), B (K, N).
extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_bf16_tn(
        const unsigned short* __restrict__ A, const unsigned short* __restrict__ B, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, long long strideA, long long strideB, long long strideC) {
    gemm_body<true, false>(A, B, C, M, N, K, alpha, beta, strideA, strideB, strideC);
}
