// Flash-style causal attention with GQA and a left window, fp32. HEAD_DIM is a compile-time constant (NVRTC -D).
// Query row i (absolute position p) sees key j iff j <= p and (window < 0 or p − j <= window); query head h reads
// kv head h / (H / KV). Layouts: q, y, dy (B, Tq, H, D); k, v (B, Tkv, KV, D); lse, dsum (B, H, Tq).
//
// Work split: a block of ROWS warps owns ROWS consecutive rows of one (b, head); K/V (or Q/dY) are staged KT = 32
// rows at a time in shared memory (rows padded by one float so lane j reading row j hits distinct banks), and
// lane j of a warp scores row j of the tile — so each tile costs one warp-wide max/sum, not one per key. Each lane
// owns output dims lane, lane+32, … (DPL of them) in registers. The forward pass keeps the online-softmax (m, l)
// per row and writes lse = m + ln l for the backward pass, which recomputes P = exp(s − lse) tile by tile:
// one kernel for dq (rows = queries), one for dk/dv (rows = keys, looping over the heads of the group), so no
// atomics. Chunked prefill is the forward kernel with Tq < Tkv and a position offset; a decode step (Tq = 1) has its
// own split-cache kernels below.
#include "common.cuh"

#ifndef HEAD_DIM
#define HEAD_DIM 128
#endif
#ifndef ROWS
#define ROWS 8
#endif
#define KT 32
#define DPL ((HEAD_DIM + 31) / 32)
#define PAD (HEAD_DIM + 1)

__device__ __forceinline__ bool visible(int p, int j, int window) {
    return j <= p && (window < 0 || p - j <= window);
}

// s·tile row dot: a (shared, broadcast to the warp) with tile row r (padded).
__device__ __forceinline__ float dot_row(const float* a, const float* tile, int r) {
    const float* t = tile + r * PAD;
    float s = 0.f;
#pragma unroll 8
    for (int d = 0; d < HEAD_DIM; d++) s += a[d] * t[d];
    return s;
}

// Loads rows [r0, r0+KT) of a (B, T, NH, D) tensor's head slice into a padded tile; rows past `last` are zero.
__device__ __forceinline__ void load_tile(float* tile, const float* __restrict__ src, long long rowBase, int r0, int last,
                                          int stride) {
    for (int e = threadIdx.x; e < KT * HEAD_DIM; e += blockDim.x) {
        int r = e / HEAD_DIM, d = e - r * HEAD_DIM, j = r0 + r;
        tile[r * PAD + d] = j <= last ? src[rowBase + (long long) j * stride + d] : 0.f;
    }
}

// Stages rows [t0, t0+KT) of two (B, T, NH, D) head slices (K and V, or Q and dY) between barriers.
__device__ __forceinline__ void stage_tiles(float* tileA, const float* __restrict__ a, float* tileB, const float* __restrict__ b,
                                            long long rowBase, int t0, int last, int stride) {
    __syncthreads();
    load_tile(tileA, a, rowBase, t0, last, stride);
    load_tile(tileB, b, rowBase, t0, last, stride);
    __syncthreads();
}

// acc[c] += Σ_jj coef_jj · tile[jj][lane + 32c], coef_jj being lane jj's coef (rows with a zero coefficient skipped).
__device__ __forceinline__ void add_weighted_rows(float (&acc)[DPL], float coef, const float* tile, int lane) {
    for (int jj = 0; jj < KT; jj++) {
        float cj = __shfl_sync(0xffffffffu, coef, jj);
        if (cj == 0.f) continue;
        const float* r = tile + jj * PAD;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < HEAD_DIM) acc[c] += cj * r[d];
        }
    }
}

extern "C" __global__ void __launch_bounds__(ROWS * 32) attn_fwd(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ y,
        float* __restrict__ lse, int Tq, int Tkv, int H, int KV, int qpos, int window, float scale) {
    extern __shared__ float smem[];
    float* Ks = smem;
    float* Vs = Ks + KT * PAD;
    float* Qs = Vs + KT * PAD;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / KV);
    int i0 = blockIdx.x * ROWS, i = i0 + w, p = qpos + i;
    bool rowOk = i < Tq;
    int pFirst = qpos + i0, pLast = qpos + min(Tq - 1, i0 + ROWS - 1);
    int lo = window < 0 ? 0 : max(0, pFirst - window);
    long long qOff = (((long long) b * Tq + i) * H + h) * HEAD_DIM;
    float* qs = Qs + w * HEAD_DIM;
    for (int d = lane; d < HEAD_DIM; d += 32) qs[d] = rowOk ? q[qOff + d] : 0.f;
    long long kvBase = ((long long) b * Tkv * KV + g) * HEAD_DIM;
    int kvStride = KV * HEAD_DIM;
    float m = NEG_INF, l = 0.f, acc[DPL];
#pragma unroll
    for (int c = 0; c < DPL; c++) acc[c] = 0.f;
    for (int t0 = lo; t0 <= pLast; t0 += KT) {
        stage_tiles(Ks, k, Vs, v, kvBase, t0, pLast, kvStride);
        if (!rowOk) continue;
        int j = t0 + lane;
        bool ok = visible(p, j, window);
        float s = ok ? dot_row(qs, Ks, lane) * scale : NEG_INF;
        float mNew = nan_max(m, warp_max(s)); // fmaxf(-inf, NaN) is -inf: a NaN score would skip the tile
        if (mNew == NEG_INF) continue;
        float pr = ok ? expf(s - mNew) : 0.f;
        float corr = expf(m - mNew);
        l = l * corr + warp_sum(pr);
#pragma unroll
        for (int c = 0; c < DPL; c++) acc[c] *= corr;
        add_weighted_rows(acc, pr, Vs, lane);
        m = mNew;
    }
    if (!rowOk) return;
    float inv = 1.f / l;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        if (d < HEAD_DIM) y[qOff + d] = acc[c] * inv;
    }
    if (lse != 0 && lane == 0) lse[((long long) b * H + h) * Tq + i] = m + logf(l);
}

// ---- decode: one query row per (b, head), split over the cache ("flash decoding")
// A decode step's query attends to up to the whole cache: one block per (b, head), as attn_fwd runs it, reads it all
// with one warp busy. Here the cache is cut into DCH-key chunks, a block each (grid: chunks × H × B), so a long cache
// spreads over the SMs: the block stages its chunk's keys and values in shared memory (every thread loading, many
// loads in flight), each warp scores a key at a time (lanes across the head dim) with its own online softmax, the
// warps merge, and the block leaves (max, sum, unnormalized output) of its chunk in part (B, H, chunks, 2 + D).
// attn_decode_combine merges a row's chunks. Chunks past the query's position (or before its window) only mark
// themselves empty, so the grid can be sized by the cache's capacity: a recorded step (qposAt) keeps its grid.
#define DCH 32
#define DWARPS 4

extern "C" __global__ void __launch_bounds__(DWARPS * 32) attn_decode_part(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, float* __restrict__ part,
        int Tkv, int H, int KV, int qpos, int window, float scale, const int* __restrict__ qposAt, int chunks) {
    extern __shared__ float dsm[];
    float* Ks = dsm;
    float* Vs = dsm + DCH * HEAD_DIM;
    __shared__ float wm[DWARPS], wl[DWARPS], wacc[DWARPS][HEAD_DIM];
    if (qposAt) qpos += *qposAt;
    int chunk = blockIdx.x, h = blockIdx.y, b = blockIdx.z, g = h / (H / KV);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int lo = window < 0 ? 0 : max(0, qpos - window);
    int j0 = max(chunk * DCH, lo), j1 = min(chunk * DCH + DCH, qpos + 1), n = j1 - j0; // visible keys [j0, j1)
    float* out = part + (((long long) b * H + h) * chunks + chunk) * (HEAD_DIM + 2);
    if (n <= 0) {
        if (threadIdx.x == 0) {
            out[0] = NEG_INF;
            out[1] = 0.f;
        }
        return;
    }
    long long kvBase = ((long long) b * Tkv * KV + g) * HEAD_DIM;
    int stride = KV * HEAD_DIM;
    for (int e = threadIdx.x; e < n * HEAD_DIM; e += blockDim.x) {
        int r = e / HEAD_DIM, d = e - r * HEAD_DIM;
        long long at = kvBase + (long long) (j0 + r) * stride + d;
        Ks[e] = k[at];
        Vs[e] = v[at];
    }
    const float* qrow = q + ((long long) b * H + h) * HEAD_DIM; // q (B, 1, H, D)
    float qr[DPL], acc[DPL];
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        qr[c] = d < HEAD_DIM ? qrow[d] : 0.f;
        acc[c] = 0.f;
    }
    __syncthreads();
    float m = NEG_INF, l = 0.f;
    for (int r = w; r < n; r += DWARPS) {
        float s = 0.f;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < HEAD_DIM) s += qr[c] * Ks[r * HEAD_DIM + d];
        }
        s = warp_sum(s) * scale;
        float mNew = nan_max(m, s); // a NaN score poisons the row, as in attn_fwd
        float corr = expf(m - mNew), p = expf(s - mNew);
        l = l * corr + p;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < HEAD_DIM) acc[c] = acc[c] * corr + p * Vs[r * HEAD_DIM + d];
        }
        m = mNew;
    }
    if (lane == 0) {
        wm[w] = m;
        wl[w] = l;
    }
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        if (d < HEAD_DIM) wacc[w][d] = acc[c];
    }
    __syncthreads();
    if (w != 0) return;
    float mAll = NEG_INF;
    for (int i = 0; i < DWARPS; i++) mAll = nan_max(mAll, wm[i]);
    float lAll = 0.f, o[DPL];
#pragma unroll
    for (int c = 0; c < DPL; c++) o[c] = 0.f;
    for (int i = 0; i < DWARPS && i < n; i++) { // warp i saw keys only when i < n
        float f = expf(wm[i] - mAll);
        lAll += wl[i] * f;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < HEAD_DIM) o[c] += wacc[i][d] * f;
        }
    }
    if (lane == 0) {
        out[0] = mAll;
        out[1] = lAll;
    }
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        if (d < HEAD_DIM) out[2 + d] = o[c];
    }
}

// y (B, 1, H, D) of a decode step from its chunks' (max, sum, output): one block per (head, b).
extern "C" __global__ void attn_decode_combine(const float* __restrict__ part, float* __restrict__ y, int H, int chunks) {
    int h = blockIdx.x, b = blockIdx.y;
    const float* p = part + ((long long) b * H + h) * chunks * (HEAD_DIM + 2);
    float mAll = NEG_INF;
    for (int c = 0; c < chunks; c++) mAll = nan_max(mAll, p[c * (HEAD_DIM + 2)]);
    float lAll = 0.f;
    for (int c = 0; c < chunks; c++) {
        float mc = p[c * (HEAD_DIM + 2)];
        if (mc != NEG_INF) lAll += p[c * (HEAD_DIM + 2) + 1] * expf(mc - mAll);
    }
    float* out = y + ((long long) b * H + h) * HEAD_DIM;
    for (int d = threadIdx.x; d < HEAD_DIM; d += blockDim.x) {
        float o = 0.f;
        for (int c = 0; c < chunks; c++) {
            float mc = p[c * (HEAD_DIM + 2)];
            if (mc != NEG_INF) o += p[c * (HEAD_DIM + 2) + 2 + d] * expf(mc - mAll);
        }
        out[d] = o / lAll;
    }
}

// dsum[b, h, i] = Σ_d dy·y of row (b, i, h), the softmax backward's row term, one warp a row (rows = B·T·H); with
// bf16Dy, dy rounded to bf16 first, as the tensor-core backward's dP is made (see attention_tc_bwd.cu). dyOut, unless
// null, gets that bf16 dy (attention_wgmma.cu streams it into shared memory as it is): written while dy is read
// for the sum anyway, instead of in a pass of its own.
__device__ __forceinline__ float dsum_y(const float* y, long long i) { return y[i]; }
__device__ __forceinline__ float dsum_y(const unsigned short* y, long long i) { return bf16_to_f32(y[i]); }

template <typename Y>
__device__ __forceinline__ void dsum_rows(const float* __restrict__ dy, const Y* __restrict__ y, float* __restrict__ dsum, int T, int H,
                                          int rows, int bf16Dy, unsigned short* __restrict__ dyOut) {
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (r >= rows) return;
    const float* a = dy + (long long) r * HEAD_DIM;
    long long c = (long long) r * HEAD_DIM;
    float s = 0.f;
    for (int d = lane; d < HEAD_DIM; d += 32) {
        float x = a[d];
        if (bf16Dy || dyOut != 0) { // the fp32 backward's pass asks for neither and pays no rounding
            unsigned short hb = f32_to_bf16(x);
            if (dyOut != 0) dyOut[c + d] = hb;
            if (bf16Dy) x = bf16_to_f32(hb);
        }
        s += x * dsum_y(y, c + d);
    }
    s = warp_sum(s);
    int h = r % H, bi = r / H, i = bi % T, b = bi / T;
    if (lane == 0) dsum[((long long) b * H + h) * T + i] = s;
}

extern "C" __global__ void attn_bwd_dsum(const float* __restrict__ dy, const float* __restrict__ y, float* __restrict__ dsum,
                                         int T, int H, int rows, int bf16Dy, unsigned short* __restrict__ dyOut) {
    dsum_rows(dy, y, dsum, T, H, rows, bf16Dy, dyOut);
}

// The same with y as the bf16 copy a training step keeps of it (Autograd.shelve): the same sum of the same values.
extern "C" __global__ void attn_bwd_dsum_bf16y(const float* __restrict__ dy, const unsigned short* __restrict__ y,
                                               float* __restrict__ dsum, int T, int H, int rows, int bf16Dy,
                                               unsigned short* __restrict__ dyOut) {
    dsum_rows(dy, y, dsum, T, H, rows, bf16Dy, dyOut);
}

// dq_i = scale · Σ_j P_ij (dP_ij − dsum_i) k_j with P = exp(s − lse), dP = dy_i·v_j. Grid (ceil(T/ROWS), H, B).
extern "C" __global__ void __launch_bounds__(ROWS * 32) attn_bwd_dq(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dy,
        const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dq,
        int T, int H, int KV, int window, float scale) {
    extern __shared__ float smem[];
    float* Ks = smem;
    float* Vs = Ks + KT * PAD;
    float* Qs = Vs + KT * PAD;
    float* Gs = Qs + ROWS * HEAD_DIM;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int h = blockIdx.y, b = blockIdx.z, g = h / (H / KV);
    int i0 = blockIdx.x * ROWS, i = i0 + w;
    bool rowOk = i < T;
    int iLast = min(T - 1, i0 + ROWS - 1);
    int lo = window < 0 ? 0 : max(0, i0 - window);
    long long qOff = (((long long) b * T + i) * H + h) * HEAD_DIM;
    float* qs = Qs + w * HEAD_DIM;
    float* gs = Gs + w * HEAD_DIM;
    for (int d = lane; d < HEAD_DIM; d += 32) {
        qs[d] = rowOk ? q[qOff + d] : 0.f;
        gs[d] = rowOk ? dy[qOff + d] : 0.f;
    }
    float rowLse = 0.f, rowD = 0.f;
    if (rowOk) {
        rowLse = lse[((long long) b * H + h) * T + i];
        rowD = dsum[((long long) b * H + h) * T + i];
    }
    long long kvBase = ((long long) b * T * KV + g) * HEAD_DIM;
    int kvStride = KV * HEAD_DIM;
    float acc[DPL];
#pragma unroll
    for (int c = 0; c < DPL; c++) acc[c] = 0.f;
    for (int t0 = lo; t0 <= iLast; t0 += KT) {
        stage_tiles(Ks, k, Vs, v, kvBase, t0, iLast, kvStride);
        if (!rowOk) continue;
        int j = t0 + lane;
        bool ok = visible(i, j, window);
        float ds = 0.f;
        if (ok) {
            float pr = expf(dot_row(qs, Ks, lane) * scale - rowLse);
            ds = pr * (dot_row(gs, Vs, lane) - rowD);
        }
        add_weighted_rows(acc, ds, Ks, lane);
    }
    if (!rowOk) return;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        if (d < HEAD_DIM) dq[qOff + d] = acc[c] * scale;
    }
}

// dk_j = scale · Σ_{h in group, i} P_ij (dP_ij − dsum_i) q_i, dv_j = Σ P_ij dy_i. Grid (ceil(T/ROWS), KV, B);
// warp w owns key j; lane l scores query row i0 + l of the staged tile.
// The bound promises 1024 resident threads per SM (64 registers a thread): with the bare thread bound ptxas aimed
// at 2048 and squeezed ROWS = 4 into 32 registers, spilling; shared memory caps residency near 1024 threads anyway.
extern "C" __global__ void __launch_bounds__(ROWS * 32, 1024 / (ROWS * 32)) attn_bwd_dkv(
        const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v, const float* __restrict__ dy,
        const float* __restrict__ lse, const float* __restrict__ dsum, float* __restrict__ dk, float* __restrict__ dv,
        int T, int H, int KV, int window, float scale) {
    extern __shared__ float smem[];
    float* Qs = smem;
    float* Gs = Qs + KT * PAD;
    float* Kw = Gs + KT * PAD;
    float* Vw = Kw + ROWS * HEAD_DIM;
    float* Ls = Vw + ROWS * HEAD_DIM;
    float* Ds = Ls + KT;
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    int g = blockIdx.y, b = blockIdx.z, G = H / KV;
    int j0 = blockIdx.x * ROWS, j = j0 + w;
    bool rowOk = j < T;
    int jLast = min(T - 1, j0 + ROWS - 1);
    int hi = window < 0 ? T - 1 : min(T - 1, jLast + window);
    long long kOff = (((long long) b * T + j) * KV + g) * HEAD_DIM;
    float* ks = Kw + w * HEAD_DIM;
    float* vs = Vw + w * HEAD_DIM;
    for (int d = lane; d < HEAD_DIM; d += 32) {
        ks[d] = rowOk ? k[kOff + d] : 0.f;
        vs[d] = rowOk ? v[kOff + d] : 0.f;
    }
    float accK[DPL], accV[DPL];
#pragma unroll
    for (int c = 0; c < DPL; c++) { accK[c] = 0.f; accV[c] = 0.f; }
    int qStride = H * HEAD_DIM;
#pragma unroll 1
    for (int hh = g * G; hh < (g + 1) * G; hh++) {
        long long qBase = ((long long) b * T * H + hh) * HEAD_DIM;
        long long lBase = ((long long) b * H + hh) * T;
        for (int t0 = j0; t0 <= hi; t0 += KT) {
            __syncthreads();
            load_tile(Qs, q, qBase, t0, hi, qStride);
            load_tile(Gs, dy, qBase, t0, hi, qStride);
            if (threadIdx.x < KT) {
                int r = t0 + threadIdx.x;
                Ls[threadIdx.x] = r <= hi ? lse[lBase + r] : 0.f;
                Ds[threadIdx.x] = r <= hi ? dsum[lBase + r] : 0.f;
            }
            __syncthreads();
            if (!rowOk) continue;
            int i = t0 + lane;
            bool ok = i <= hi && visible(i, j, window);
            float pr = 0.f, ds = 0.f;
            if (ok) {
                pr = expf(dot_row(ks, Qs, lane) * scale - Ls[lane]);
                ds = pr * (dot_row(vs, Gs, lane) - Ds[lane]);
            }
#pragma unroll 4  // fully unrolled, ptxas spilled 12 bytes at HEAD_DIM 128
            for (int ii = 0; ii < KT; ii++) {
                float pi = __shfl_sync(0xffffffffu, pr, ii), di = __shfl_sync(0xffffffffu, ds, ii);
                if (pi == 0.f && di == 0.f) continue;
                const float* qr = Qs + ii * PAD;
                const float* gr = Gs + ii * PAD;
#pragma unroll
                for (int c = 0; c < DPL; c++) {
                    int d = lane + 32 * c;
                    if (d < HEAD_DIM) {
                        accV[c] += pi * gr[d];
                        accK[c] += di * qr[d];
                    }
                }
            }
        }
    }
    if (!rowOk) return;
#pragma unroll
    for (int c = 0; c < DPL; c++) {
        int d = lane + 32 * c;
        if (d < HEAD_DIM) {
            dk[kOff + d] = accK[c] * scale;
            dv[kOff + d] = accV[c];
        }
    }
}
