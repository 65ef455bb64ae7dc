// Tensor-core flash-attention forward: the same semantics and argument order as attention.cu's attn_fwd (causal,
// GQA, left window, position offset, NaN propagation, optional lse), with bf16 operands on mma.sync m16n8k16 and
// fp32 accumulation. HEAD_DIM is a compile-time constant (NVRTC -D), any multiple of 16 up to 128.
// Layouts: q, y (B, Tq, H, D); k, v (B, Tkv, KV, D); lse (B, H, Tq), null = not written. q, k, v and y must be
// 16-byte aligned (K/V rows are read as float4, Q and Y rows as float2).
//
// Work split: grid (ceil(Tq / 64), H, B), 128 threads. Warp w owns query rows i0 + 16w .. +15 — one m16 tile — and
// keeps them as bf16 A fragments in registers for the whole block (read once, straight from global memory). K and V
// go through shared memory KT = 32 keys at a time, as bf16 [key][dim] rows padded to D + 8 elements: a row then
// starts 16·odd bytes past the previous one, so the 8 row addresses of each ldmatrix phase hit 8 distinct 16-byte
// bank groups. S = Q·Kᵀ reads K fragments with ldmatrix (non-transposed: K's rows are the B operand's columns);
// O += P·V reads V with ldmatrix.trans (V's rows are the B operand's rows, k = key). P never leaves registers: the
// m16n8 accumulators of two adjacent 8-key S tiles, packed to bf16 pairs, are exactly the A fragment of the m16n8k16
// that multiplies them by V (FA2's trick).
//
// Pipeline: the fp32 → bf16 conversion rules out cp.async, so the next tile is prefetched through registers into
// the other half of a double buffer: next K's global loads are issued before this tile's S = Q·Kᵀ and stored
// (converted) after it, next V's are issued before P·V and stored after it — one __syncthreads a tile, and each
// load has a tile's worth of mma in flight behind it. Only D / 16 float4 (32 registers at D = 128) are held.
//
// Softmax: online, in fp32, in log2 units (scores times scale·log2 e, exp2), per-lane partial row sums reduced
// over the quad once at the end. A row's state (m, l) lives in the 4 lanes of a quad (row g and g + 8 of the
// m16 tile); the row max is reduced over the quad with shuffles. Key tiles that no row of the block sees are
// never visited (causal: past the last row's position; window: before the first row's window); a warp skips the
// mma for tiles none of its own rows see, and masks (−inf) only tiles some of its rows see partly.
// Fully masked-so-far rows use 0 as the reference max so exp2(−inf − 0) = 0 instead of NaN; a NaN score makes the
// row max NaN (nan_max), hence its P, l and O, as in attn_fwd.
// Difference from attn_fwd: a NaN or inf in V at a key that is masked but inside a tile the warp computes reaches
// rows that do not see it (0 · NaN in the mma; attn_fwd skips zero weights). Keys past the block's last visible
// key are zero-filled, so that cannot come from beyond it.
//
// nvcc 13.0 -arch=sm_90a --resource-usage (and NVRTC's PTX through ptxas the same), registers / static shared,
// 0 bytes spill at every size:
//   HEAD_DIM  16:  76 regs,  6144 B    HEAD_DIM  48: 126 regs, 14336 B    HEAD_DIM  96: 214 regs, 26624 B
//   HEAD_DIM  32:  94 regs, 10240 B    HEAD_DIM  64: 158 regs, 18432 B    HEAD_DIM 128: 242 regs, 34816 B
// (242 registers still fit two blocks an SM; __launch_bounds__(128, 3) caps them at 168 and spills at D >= 96.)
#include "common.cuh"
#include "tensorcore.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#define TC_QROWS 64                    // query rows per block: 4 warps × one m16 tile
#define TC_THREADS 128
#define TC_KT 32                       // keys per shared-memory tile
#define TC_LD (HEAD_DIM + 8)           // bf16 elements per shared row (see the padding note above)
#define TC_NLD (TC_KT * HEAD_DIM / 4 / TC_THREADS) // float4 each thread stages per K (or V) tile
#define TC_LOG2E 1.4426950408889634f
#define TC_LN2 0.6931471805599453f

static_assert(HEAD_DIM % 16 == 0 && HEAD_DIM >= 16 && HEAD_DIM <= 128, "attn_tc_fwd: HEAD_DIM must be 16, 32, …, 128");

// Global → registers: keys [t0, t0 + KT) of one kv head, fp32; keys past `hi` read as zeros. Consecutive threads
// take consecutive float4 of a row, so a warp reads 512 contiguous bytes at D = 128.
__device__ __forceinline__ void tc_load_tile(float4 (&pre)[TC_NLD], const float* __restrict__ src, long long base,
                                             int stride, int t0, int hi) {
#pragma unroll
    for (int n = 0; n < TC_NLD; n++) {
        int e = threadIdx.x + n * TC_THREADS, r = e / (HEAD_DIM / 4), c = (e % (HEAD_DIM / 4)) * 4, j = t0 + r;
        pre[n] = j <= hi ? *(const float4*) (src + base + (long long) j * stride + c) : make_float4(0.f, 0.f, 0.f, 0.f);
    }
}

// Registers → shared, as bf16 (the same element split as tc_load_tile): one 8-byte store per float4.
__device__ __forceinline__ void tc_store_tile(unsigned short* s, const float4 (&pre)[TC_NLD]) {
#pragma unroll
    for (int n = 0; n < TC_NLD; n++) {
        int e = threadIdx.x + n * TC_THREADS, r = e / (HEAD_DIM / 4), c = (e % (HEAD_DIM / 4)) * 4;
        *(uint2*) &s[r * TC_LD + c] = make_uint2(tc_pack_bf16(pre[n].x, pre[n].y), tc_pack_bf16(pre[n].z, pre[n].w));
    }
}

extern "C" __global__ void __launch_bounds__(TC_THREADS) attn_tc_fwd(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ y,
        float* __restrict__ lse, int Tq, int Tkv, int H, int KV, int pos, int window, float scale) {
    __shared__ __align__(16) unsigned short Ks[2][TC_KT * TC_LD];
    __shared__ __align__(16) unsigned short Vs[2][TC_KT * TC_LD];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int h = blockIdx.y, b = blockIdx.z, kvh = h / (H / KV);
    // Keys [lo, hi] are the union of what the block's rows see.
    int i0 = blockIdx.x * TC_QROWS;
    int pFirst = pos + i0, pLast = pos + min(Tq - 1, i0 + TC_QROWS - 1);
    int lo = window < 0 ? 0 : max(0, pFirst - window);
    int hi = min(pLast, Tkv - 1);
    int nTiles = hi >= lo ? (hi - lo) / TC_KT + 1 : 0;
    // This warp's rows: accumulator elements 0, 1 are row r0 (= i0 + 16w + g), elements 2, 3 row r0 + 8.
    int wi0 = i0 + 16 * w;
    bool warpOk = wi0 < Tq;
    int wpFirst = pos + wi0, wpLast = pos + min(Tq - 1, wi0 + 15);
    int row[2] = {wi0 + g, wi0 + g + 8};
    int p[2] = {pos + row[0], pos + row[1]};
    int lim[2] = {min(p[0], Tkv - 1), min(p[1], Tkv - 1)}; // causal limit, never past the keys that exist

    // Q as A fragments: a0 (row g, k 2t..2t+1), a1 (row g+8), a2 (row g, k 2t+8..), a3 (row g+8, k 2t+8..).
    unsigned qf[HEAD_DIM / 16][4];
    const float* qr[2] = {q + (((long long) b * Tq + row[0]) * H + h) * HEAD_DIM,
                          q + (((long long) b * Tq + row[1]) * H + h) * HEAD_DIM};
#pragma unroll
    for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
#pragma unroll
        for (int a = 0; a < 4; a++) {
            int rr = a & 1, c = kk * 16 + 2 * t + (a >> 1) * 8;
            float2 x = row[rr] < Tq ? *(const float2*) (qr[rr] + c) : make_float2(0.f, 0.f);
            qf[kk][a] = tc_pack_bf16(x.x, x.y);
        }
    }

    long long kvBase = ((long long) b * Tkv * KV + kvh) * HEAD_DIM;
    int kvStride = KV * HEAD_DIM;
    float sl2 = scale * TC_LOG2E;
    float o[HEAD_DIM / 8][4];
#pragma unroll
    for (int dn = 0; dn < HEAD_DIM / 8; dn++)
#pragma unroll
        for (int e = 0; e < 4; e++) o[dn][e] = 0.f;
    float m[2] = {NEG_INF, NEG_INF}, l[2] = {0.f, 0.f}; // l: this lane's partial sum over its own columns

    float4 pre[TC_NLD];
    if (nTiles > 0) {
        tc_load_tile(pre, k, kvBase, kvStride, lo, hi);
        tc_store_tile(Ks[0], pre);
        tc_load_tile(pre, v, kvBase, kvStride, lo, hi);
        tc_store_tile(Vs[0], pre);
    }
    __syncthreads();
#pragma unroll 1
    for (int it = 0; it < nTiles; it++) {
        int t0 = lo + it * TC_KT, cur = it & 1;
        bool more = it + 1 < nTiles;
        if (more) tc_load_tile(pre, k, kvBase, kvStride, t0 + TC_KT, hi);
        // Warp-uniform: does any of this warp's rows see a key of the tile; does every row see every key.
        bool active = warpOk && t0 <= wpLast && (window < 0 || t0 + TC_KT - 1 >= wpFirst - window);
        bool full = t0 + TC_KT - 1 <= min(wpFirst, hi) && (window < 0 || wpLast - t0 <= window);
        float s[TC_KT / 8][4];
        if (active) {
#pragma unroll
            for (int jn = 0; jn < TC_KT / 8; jn++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[jn][e] = 0.f;
            const unsigned short* kt = Ks[cur];
            // One ldmatrix.x4 = the B fragments (b0, b1) of two 8-key tiles at one 16-dim step: matrices are
            // (keys +0..7, dims +0..7), (keys +0..7, dims +8..15), (keys +8..15, dims +0..7), (keys +8..15, dims +8..15).
            int kRow = (lane & 7) + ((lane >> 4) << 3), kCol = ((lane >> 3) & 1) * 8;
#pragma unroll
            for (int kk = 0; kk < HEAD_DIM / 16; kk++) {
#pragma unroll
                for (int jp = 0; jp < TC_KT / 16; jp++) {
                    unsigned bk[4];
                    tc_ldsm_x4(bk, &kt[(jp * 16 + kRow) * TC_LD + kk * 16 + kCol]);
                    tc_mma(s[2 * jp], qf[kk], bk[0], bk[1]);
                    tc_mma(s[2 * jp + 1], qf[kk], bk[2], bk[3]);
                }
            }
            // Element e of tile jn is key t0 + 8jn + 2t + (e & 1), row r0 + 8(e >> 1).
            float mx[2] = {m[0], m[1]};
#pragma unroll
            for (int jn = 0; jn < TC_KT / 8; jn++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    int rr = e >> 1;
                    float x = s[jn][e] * sl2;
                    if (!full) {
                        int j = t0 + jn * 8 + 2 * t + (e & 1);
                        bool vis = j <= lim[rr] && (window < 0 || p[rr] - j <= window);
                        x = vis ? x : NEG_INF;
                    }
                    s[jn][e] = x;
                    mx[rr] = nan_max(mx[rr], x);
                }
            }
            float corr[2], mUse[2];
            online_softmax_step(m, l, mx, mUse, corr);
#pragma unroll
            for (int jn = 0; jn < TC_KT / 8; jn++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float pr = exp2f(s[jn][e] - mUse[e >> 1]);
                    s[jn][e] = pr;
                    l[e >> 1] += pr;
                }
            }
#pragma unroll
            for (int dn = 0; dn < HEAD_DIM / 8; dn++)
#pragma unroll
                for (int e = 0; e < 4; e++) o[dn][e] *= corr[e >> 1];
        }
        if (more) {
            tc_store_tile(Ks[cur ^ 1], pre); // that buffer was last read before the previous tile's barrier
            tc_load_tile(pre, v, kvBase, kvStride, t0 + TC_KT, hi);
        }
        if (active) {
            const unsigned short* vt = Vs[cur];
            // ldmatrix.x4.trans = (b0, b1) of two 8-dim tiles at one 16-key step: matrices (keys +0..7, dims +0..7),
            // (keys +8..15, dims +0..7), (keys +0..7, dims +8..15), (keys +8..15, dims +8..15).
            int vRow = (lane & 7) + ((lane >> 3) & 1) * 8, vCol = (lane >> 4) * 8;
#pragma unroll
            for (int ks = 0; ks < TC_KT / 16; ks++) {
                unsigned pa[4] = {tc_pack_bf16(s[2 * ks][0], s[2 * ks][1]), tc_pack_bf16(s[2 * ks][2], s[2 * ks][3]),
                                  tc_pack_bf16(s[2 * ks + 1][0], s[2 * ks + 1][1]),
                                  tc_pack_bf16(s[2 * ks + 1][2], s[2 * ks + 1][3])};
#pragma unroll
                for (int dp = 0; dp < HEAD_DIM / 16; dp++) {
                    unsigned bv[4];
                    tc_ldsm_x4_t(bv, &vt[(ks * 16 + vRow) * TC_LD + dp * 16 + vCol]);
                    tc_mma(o[2 * dp], pa, bv[0], bv[1]);
                    tc_mma(o[2 * dp + 1], pa, bv[2], bv[3]);
                }
            }
        }
        if (more) tc_store_tile(Vs[cur ^ 1], pre);
        __syncthreads();
    }

    if (!warpOk) return; // warp-uniform, after the last barrier
    online_softmax_total(l);
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        if (row[rr] >= Tq) continue;
        float inv = 1.f / l[rr];
        float* yr = y + (((long long) b * Tq + row[rr]) * H + h) * HEAD_DIM;
#pragma unroll
        for (int dn = 0; dn < HEAD_DIM / 8; dn++)
            *(float2*) (yr + dn * 8 + 2 * t) = make_float2(o[dn][2 * rr] * inv, o[dn][2 * rr + 1] * inv);
        if (lse != 0 && t == 0) lse[((long long) b * H + h) * Tq + row[rr]] = m[rr] * TC_LN2 + logf(l[rr]);
    }
}
