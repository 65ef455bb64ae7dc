// Our own tensor-core GEMM (the design card's "JIT its matmul kernels"): C = alpha·A·Bᵀ + beta·C, batched over
// blockIdx.z, with A (M, K) and B (N, K) bf16 row-major (both K-contiguous: the shape of y = x·Wᵀ, nanochat's
// linear) and C (M, N) fp32. mma.sync m16n8k16 (bf16 in, fp32 accumulate), BM×BN×BK block tiles split into
// WM×WN warp tiles, cp.async double buffering of the bf16 tiles through shared memory padded by 8 elements a row
// (the fragment loads of a warp then hit 32 distinct banks). Tile sizes are -D constants chosen per shape by the
// host (NVRTC compiles one variant per tile set); M % BM, N % BN and K % BK must be 0 (the host falls back to
// cuBLAS otherwise). Fragment layouts follow the PTX ISA for mma.m16n8k16 .row.col.
#include "common.cuh"
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

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    unsigned s = (unsigned) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(gmem));
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

__device__ __forceinline__ void cp_async_wait_all_but_one() {
    asm volatile("cp.async.wait_group 1;\n" ::);
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::);
}

__device__ __forceinline__ void mma_bf16(float* d, const unsigned* a, const unsigned* b) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// One stage of tiles: A rows bm.., B rows bn.., columns k0..k0+BK, 16-byte chunks spread over the block.
__device__ __forceinline__ void load_stage(unsigned short* sA, unsigned short* sB, const unsigned short* A,
                                           const unsigned short* B, int bm, int bn, int k0, int K) {
    for (int c = threadIdx.x; c < BM * BK / 8; c += GEMM_THREADS) {
        int r = c / (BK / 8), col = (c % (BK / 8)) * 8;
        cp_async16(&sA[r * LDS + col], A + (size_t) (bm + r) * K + k0 + col);
    }
    for (int c = threadIdx.x; c < BN * BK / 8; c += GEMM_THREADS) {
        int r = c / (BK / 8), col = (c % (BK / 8)) * 8;
        cp_async16(&sB[r * LDS + col], B + (size_t) (bn + r) * K + k0 + col);
    }
    cp_async_commit();
}

extern "C" __global__ void __launch_bounds__(GEMM_THREADS) gemm_bf16_nt(
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
    load_stage(sA[0], sB[0], A, B, bm, bn, 0, K);
    for (int kt = 0; kt < tiles; kt++) {
        if (kt + 1 < tiles) {
            load_stage(sA[(kt + 1) & 1], sB[(kt + 1) & 1], A, B, bm, bn, (kt + 1) * BK, K);
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
                for (int j = 0; j < NT; j++) mma_bf16(acc[i][j], af[i], bf[j]);
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
