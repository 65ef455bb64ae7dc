// Our tensor-core GEMM for Hopper (sm_90a only): C = alpha·op(A)·op(B) + beta·C, batched, bf16 A and
// B, fp32 C (M, N) row-major, in the three layouts of the model's linear layers (as gemm.cu, whose mma.sync kernels
// are the fallback on other GPUs):
//   gemm_wgmma_nt: A (M, K), B (N, K)  — y = x·Wᵀ (forward)
//   gemm_wgmma_nn: A (M, K), B (K, N)  — dx = dy·W
//   gemm_wgmma_tn: A (K, M), B (K, N)  — dW = dyᵀ·x
// mma.sync cannot reach Hopper's tensor-core peak: only the warpgroup MMA (wgmma.mma_async) feeds them at full rate,
// reading both operands straight from shared memory. And the threads that multiply should not also copy: a block is
// one producer warpgroup, whose one thread has the tensor memory accelerator (TMA) copy whole tiles into shared
// memory, and BM/64 consumer warpgroups, each computing 64 rows × BN columns of C with one m64nBNk16 wgmma per 16 of
// depth, its accumulators in registers (BN/2 floats a thread; the producer gives its registers to them).
//
// Shared memory holds STAGES stages of a BM×64 A tile and a BN×64 B tile, each with two mbarriers: `full` completes
// when the stage's bytes have landed (the producer's arrival sets the bytes to expect; TMA counts them in), `empty`
// when every consumer thread has waited for its MMAs on the stage, so the producer may refill it. TMA writes each tile
// in the 128-byte swizzle: a tile is rows of 64 bf16 (128 bytes), and the 16-byte chunk c of row r is stored at chunk
// c ^ (r % 8), so the 8 rows of a core matrix fall in 8 different bank groups. The wgmma descriptors say the same
// (layout type 1). An operand whose rows run along K (A (M, K), B (N, K)) is loaded K-major: one box of R rows × 64
// k, 8-row groups 1024 bytes apart (the stride byte offset), a k16 step 32 bytes along the swizzled row. One whose
// rows run along M or N (A (K, M), B (K, N)) is loaded as it lies, M/N-major, and the wgmma reads it transposed (bf16
// allows it): boxes of 64 k × 64 columns, 8 k-rows 1024 bytes apart (stride byte offset), the next 64 columns one box
// (8192 bytes) on (leading byte offset), a k16 step 2048 bytes. These are the canonical SW128 layouts of the PTX ISA
// (CUTLASS's make_gmma_desc). M % BM, N % BN, K % 64 must be 0 and the operands 16-byte aligned (the host falls back
// to cuBLAS otherwise).
//
// Split-K: a weight gradient (dW = dyᵀ·x) is a small C over a deep K — at d12, 768×768 from 65,536 tokens is 36 tiles
// of 128×128 for 132 SMs. With splits > 1 the C slices are batch × splits: each multiplies its share of the
// depth (whole 64-deep tiles, as even as they divide) into its own fp32 slice of a workspace, and gemm_split_sum adds
// the slices in split order (the same sum on every run) into C with alpha and beta.
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
#define CONSUMERS (BM / 64)
#define WG_THREADS ((CONSUMERS + 1) * 128)
#define A_BYTES (BM * BK * 2)
#define STAGE_BYTES ((BM + BN) * BK * 2)
#define BOX_BYTES (64 * BK * 2) // one 64×64 box of an M/N-major operand

static_assert(BM == 128, "BM: 128 rows, two consumer warpgroups of 64 (the register split below is theirs)");
static_assert(BN == 128 || BN == 256, "BN: the wgmma N, 128 or 256");
static_assert(STAGES >= 2, "STAGES: at least one tile multiplied while the next lands");

// The producer's registers go to the consumers: 40 are plenty to issue copies; a consumer of BN = 256 holds 128
// accumulators. The block starts at 168 a thread (384 threads, 64 Ki registers an SM); what the producer's 128 threads
// give back, 128·(168 − 40), is what the consumers' 256 take, 256·(232 − 168), so the claim never waits.
#define PRODUCER_REGS 40
#define CONSUMER_REGS 232

#define SW128 1 // wg_desc's layout type of the 128-byte swizzle

// Work item w of a persistent block: C slice z (a batch, or a batch's split) and the tile (bm, bn) in it. Tiles in
// groups of GROUP_M row tiles, column tile by column tile: the SMs working at once share a few A row panels and sweep
// B's columns together, so both stay in L2 (in plain order, one A panel against every column tile of a vocab-wide B
// would stream B from HBM once per panel).
__device__ __forceinline__ void wg_tile(int w, int tilesM, int tilesN, int& z, int& bm, int& bn) {
    z = w / (tilesM * tilesN);
    const int id = w % (tilesM * tilesN);
    const int firstM = id / (GROUP_M * tilesN) * GROUP_M, groupM = min(tilesM - firstM, GROUP_M), inGroup = id % (GROUP_M * tilesN);
    bm = (firstM + inGroup % groupM) * BM;
    bn = inGroup / groupM * BN;
}

// A split's share of the depth, in 64-deep tiles: from kt0, `tiles` of them (as even as they divide).
__device__ __forceinline__ void wg_split(int K, int split, int splits, int& kt0, int& tiles) {
    const int kTiles = K / BK;
    kt0 = (int) ((long long) kTiles * split / splits);
    tiles = (int) ((long long) kTiles * (split + 1) / splits) - kt0;
}

template <bool TA, bool TB>
__device__ __forceinline__ void wg_body(const TmaMap* tmA, const TmaMap* tmB, float* __restrict__ C, int M, int N, int K,
                                        float alpha, float beta, int aBatchRows, int bBatchRows, int splits, int slices) {
    extern __shared__ __align__(1024) unsigned char wg_raw[];
    // the swizzle pattern is a function of the shared address, so stages start on 1024 bytes (the host asks for 1 KiB more)
    unsigned char* smem = wg_raw + ((1024 - (tc_smem_addr(wg_raw) & 1023)) & 1023);
    unsigned long long* full = (unsigned long long*) (smem + STAGES * STAGE_BYTES);
    unsigned long long* empty = full + STAGES;
    // Persistent: a block an SM (the host launches at most one per SM), taking work items blockIdx.x, + gridDim.x, …
    // The stages and their mbarrier phases run on across items, so the producer fills the next item's first stages
    // while the consumers finish this one's MMAs and store its C.
    const int tilesM = M / BM, tilesN = N / BN, work = tilesM * tilesN * slices;
    const int wg = threadIdx.x / 128;

    if (threadIdx.x == 0) {
        for (int s = 0; s < STAGES; s++) {
            mbar_init(&full[s], 1);                   // the producer's arrival (with the bytes to expect)
            mbar_init(&empty[s], CONSUMERS * 128);    // every consumer thread, after its wait for the stage's MMAs
        }
        mbar_init_fence();
    }
    __syncthreads();

    if (wg == CONSUMERS) { // the producer: warpgroup BM/64, its first thread issues every copy
        wg_regs_release<PRODUCER_REGS>();
        if (threadIdx.x % 128 != 0) return;
        int it = 0; // 64-deep tiles issued so far, over every item: stage it % STAGES, its round it / STAGES
        for (int w = blockIdx.x; w < work; w += gridDim.x) {
            int z, bm, bn, kt0, tiles;
            wg_tile(w, tilesM, tilesN, z, bm, bn);
            wg_split(K, z % splits, splits, kt0, tiles);
            const int aRow = z / splits * aBatchRows, bRow = z / splits * bBatchRows;
            for (int kt = 0; kt < tiles; kt++, it++) {
                const int s = it % STAGES, k0 = (kt0 + kt) * BK;
                if (it >= STAGES) mbar_wait(&empty[s], (it / STAGES - 1) & 1); // the consumers are done with its last tile
                unsigned char* a = smem + s * STAGE_BYTES;
                unsigned char* b = a + A_BYTES;
                mbar_arrive_expect_tx(&full[s], STAGE_BYTES);
                if (!TA) tma_load_2d(a, tmA, k0, aRow + bm, &full[s]);                  // BM rows × 64 k
                else for (int j = 0; j < BM / 64; j++) tma_load_2d(a + j * BOX_BYTES, tmA, bm + 64 * j, aRow + k0, &full[s]);
                if (TB) tma_load_2d(b, tmB, k0, bRow + bn, &full[s]);                   // BN rows × 64 k
                else for (int j = 0; j < BN / 64; j++) tma_load_2d(b + j * BOX_BYTES, tmB, bn + 64 * j, bRow + k0, &full[s]);
            }
        }
        return;
    }

    wg_regs_claim<CONSUMER_REGS>();
    // wgmma's transpose bits: 1 where the operand's rows in shared memory run along M (A) or N (B)
    constexpr int TRANS_A = TA ? 1 : 0, TRANS_B = TB ? 0 : 1;
    // descriptor offsets (bytes): K-major — lbo unused by the swizzled layouts (16), sbo 1024 between 8-row groups,
    // a k16 step 32; M/N-major — lbo one box (the next 64 columns), sbo 1024 between 8-k groups, a k16 step 2048
    constexpr unsigned A_LBO = TA ? BOX_BYTES : 16, B_LBO = TB ? 16 : BOX_BYTES, SBO = 1024;
    constexpr unsigned A_KSTEP = TA ? 2048 : 32, B_KSTEP = TB ? 32 : 2048;
    // this warpgroup's 64 rows of A: 8 groups of 8 rows on (K-major), or the next box (M-major): 8192 bytes either way
    const unsigned aRows = wg * 8192;
    const int warp = (threadIdx.x / 32) % 4, lane = threadIdx.x % 32;
    float d[BN / 2];
    int it = 0; // as the producer's
    for (int w = blockIdx.x; w < work; w += gridDim.x) {
        int z, bm, bn, kt0, tiles;
        wg_tile(w, tilesM, tilesN, z, bm, bn);
        wg_split(K, z % splits, splits, kt0, tiles);
#pragma unroll
        for (int i = 0; i < BN / 2; i++) d[i] = 0.0f; // a split with no depth stores zeros
        for (int kt = 0; kt < tiles; kt++, it++) {
            const int s = it % STAGES;
            mbar_wait(&full[s], (it / STAGES) & 1); // its tile has landed
            const unsigned sa = tc_smem_addr(smem + s * STAGE_BYTES), sb = sa + A_BYTES;
            wg_fence_operand(d);
            wg_fence();
#pragma unroll
            for (int ks = 0; ks < BK / 16; ks++) {
                wg_mma<BN, TRANS_A, TRANS_B>(d, wg_desc(sa + aRows + A_KSTEP * ks, A_LBO, SBO, SW128), wg_desc(sb + B_KSTEP * ks, B_LBO, SBO, SW128),
                                             kt > 0 || ks > 0);
            }
            wg_commit();
            wg_wait<1>(); // the previous tile's MMAs are done: its stage may be refilled
            wg_fence_operand(d);
            if (kt > 0) mbar_arrive(&empty[(it - 1) % STAGES]);
        }
        wg_wait<0>();
        wg_fence_operand(d);
        if (tiles > 0) mbar_arrive(&empty[(it - 1) % STAGES]); // the item's last stage: the producer goes on to the next item

        // C, or with splits > 1 slice z of the workspace
        float* Cz = C + (size_t) z * M * N;
        const int row = bm + 64 * wg + 16 * warp + lane / 4;
#pragma unroll
        for (int j = 0; j < BN / 8; j++) {
            const int col = bn + 8 * j + 2 * (lane % 4);
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float2* out = (float2*) &Cz[(size_t) (row + 8 * h) * N + col];
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
}

// The tensor maps (TmaMap, host-encoded) describe A and B as 2-D bf16 tensors, batches stacked along the outer
// dimension: A (batch·M rows, K) or, transposed, (batch·K rows, M); B (batch·N, K) or (batch·K, N). aBatchRows and
// bBatchRows step a batch's outer coordinate (0 for a B shared by every batch); slices is batch × splits, the C slices
// (batch-major) whose tiles the persistent blocks share out.

// C = alpha·A·Bᵀ + beta·C, A (M, K), B (N, K).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_nt(
        const __grid_constant__ TmaMap tmA, const __grid_constant__ TmaMap tmB, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, int aBatchRows, int bBatchRows, int splits, int slices) {
    wg_body<false, true>(&tmA, &tmB, C, M, N, K, alpha, beta, aBatchRows, bBatchRows, splits, slices);
}

// C = alpha·A·B + beta·C, A (M, K), B (K, N).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_nn(
        const __grid_constant__ TmaMap tmA, const __grid_constant__ TmaMap tmB, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, int aBatchRows, int bBatchRows, int splits, int slices) {
    wg_body<false, false>(&tmA, &tmB, C, M, N, K, alpha, beta, aBatchRows, bBatchRows, splits, slices);
}

// C = alpha·Aᵀ·B + beta·C, A (K, M), B (K, N).
extern "C" __global__ void __launch_bounds__(WG_THREADS, 1) gemm_wgmma_tn(
        const __grid_constant__ TmaMap tmA, const __grid_constant__ TmaMap tmB, float* __restrict__ C,
        int M, int N, int K, float alpha, float beta, int aBatchRows, int bBatchRows, int splits, int slices) {
    wg_body<true, false>(&tmA, &tmB, C, M, N, K, alpha, beta, aBatchRows, bBatchRows, splits, slices);
}

// C (batch × MN) = alpha·Σ_s parts[batch][s] + beta·C, the split-K slices summed in split order; float4 at a time
// (MN % 4 == 0: N is a multiple of a tile).
extern "C" __global__ void gemm_split_sum(const float* __restrict__ parts, float* __restrict__ C, long long mn, int splits,
                                          float alpha, float beta, int batch) {
    const long long quads = mn / 4;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < batch * quads; i += (long long) gridDim.x * blockDim.x) {
        const long long b = i / quads, q = i % quads;
        const float4* p = (const float4*) parts + b * splits * quads + q;
        float4 sum = p[0];
        for (int s = 1; s < splits; s++) {
            const float4 v = p[s * quads];
            sum.x += v.x;
            sum.y += v.y;
            sum.z += v.z;
            sum.w += v.w;
        }
        float4* out = (float4*) C + i;
        float4 r = make_float4(alpha * sum.x, alpha * sum.y, alpha * sum.z, alpha * sum.w);
        if (beta != 0.0f) {
            const float4 o = *out;
            r.x += beta * o.x;
            r.y += beta * o.y;
            r.z += beta * o.z;
            r.w += beta * o.w;
        }
        *out = r;
    }
}
