// Reductions: whole-tensor sum / dot / sum of squares / max (two passes, fp64 partials like the CPU's Reduce),
// per-row norms, argmax, top-k, softmax, and the first non-finite index (checkFinite).
#include "common.cuh"

#define RED_SUM 0
#define RED_DOT 1
#define RED_SUMSQ 2
#define RED_MAX 3

// Pass 1: each block reduces a grid-stride share of n elements into partial[blockIdx.x].
extern "C" __global__ void reduce_partial(const float* __restrict__ a, const float* __restrict__ b, int n, int mode,
                                          double* __restrict__ partial) {
    double acc = mode == RED_MAX ? NEG_INF_D : 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        float v = a[i];
        if (mode == RED_MAX) acc = (v != v || acc != acc) ? (double) v + acc : fmax(acc, (double) v);
        else acc += mode == RED_SUM ? (double) v : (double) v * (double) (mode == RED_DOT ? b[i] : v);
    }
    if (mode == RED_MAX) {
        float m = block_max((float) acc);
        if (threadIdx.x == 0) partial[blockIdx.x] = m;
    } else {
        acc = block_sum_d(acc);
        if (threadIdx.x == 0) partial[blockIdx.x] = acc;
    }
}

// Pass 2 (one block): out[0] = post(reduce(partial) * scale); post = sqrt when doSqrt.
extern "C" __global__ void reduce_final(const double* __restrict__ partial, int count, int mode, double scale, int doSqrt,
                                        float* __restrict__ out) {
    double acc = mode == RED_MAX ? NEG_INF_D : 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc = mode == RED_MAX ? (partial[i] != partial[i] || acc != acc ? partial[i] + acc : fmax(acc, partial[i])) : acc + partial[i];
    if (mode == RED_MAX) {
        float m = block_max((float) acc);
        if (threadIdx.x == 0) out[0] = m;
    } else {
        acc = block_sum_d(acc);
        if (threadIdx.x == 0) {
            double r = acc * scale;
            out[0] = (float) (doSqrt ? sqrt(r) : r);
        }
    }
}

// One block per row.
extern "C" __global__ void row_norms(const float* __restrict__ x, float* __restrict__ out, int cols) {
    const float* row = x + (long long) blockIdx.x * cols;
    double acc = 0.0;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) acc += (double) row[i] * row[i];
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) out[blockIdx.x] = (float) sqrt(acc);
}

// (value, index) order of argmax/topk: larger value first, then lower index. NaN ranks above everything
// (as in PyTorch's max), the first NaN winning.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    if (bi < 0) return true;
    bool vn = v != v, bn = bv != bv;
    if (vn || bn) return vn && (!bn || i < bi);
    return v > bv || (v == bv && i < bi);
}

__device__ void block_best(float& v, int& i) {
    __shared__ float sv[32];
    __shared__ int si[32];
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && better(ov, oi, v, i)) { v = ov; i = oi; }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) { sv[w] = v; si[w] = i; }
    __syncthreads();
    v = lane < nw ? sv[lane] : 0.f;
    i = lane < nw ? si[lane] : -1;
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, v, o);
        int oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (oi >= 0 && better(ov, oi, v, i)) { v = ov; i = oi; }
    }
}

extern "C" __global__ void argmax_rows(const float* __restrict__ x, int* __restrict__ out, int cols) {
    const float* row = x + (long long) blockIdx.x * cols;
    float bv = 0.f;
    int bi = -1;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        if (better(row[i], i, bv, bi)) { bv = row[i]; bi = i; }
    }
    block_best(bv, bi);
    if (threadIdx.x == 0) out[blockIdx.x] = bi;
}

// k passes per row; pass p takes the best element strictly after pass p-1's in (value desc, index asc) order.
extern "C" __global__ void topk_rows(const float* __restrict__ x, float* __restrict__ vals, int* __restrict__ idx, int cols, int k) {
    const float* row = x + (long long) blockIdx.x * cols;
    float pv = 0.f;
    int pi = -1;
    for (int p = 0; p < k; p++) {
        float bv = 0.f;
        int bi = -1;
        for (int i = threadIdx.x; i < cols; i += blockDim.x) {
            float v = row[i];
            bool after = pi < 0 || better(pv, pi, v, i);
            if (after && better(v, i, bv, bi)) { bv = v; bi = i; }
        }
        block_best(bv, bi);
        if (threadIdx.x == 0) {
            vals[(long long) blockIdx.x * k + p] = bv;
            idx[(long long) blockIdx.x * k + p] = bi;
        }
        pv = bv;
        pi = bi;
    }
}

extern "C" __global__ void softmax_rows(const float* __restrict__ x, float* __restrict__ y, int cols) {
    const float* row = x + (long long) blockIdx.x * cols;
    float* out = y + (long long) blockIdx.x * cols;
    float m = NEG_INF;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, row[i]);
    m = block_max(m);
    float s = 0.f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += expf(row[i] - m);
    s = block_sum(s);
    float inv = 1.f / s;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) out[i] = expf(row[i] - m) * inv;
}

// first[0] = min flat index holding NaN/±inf (caller initializes it to INT_MAX).
extern "C" __global__ void first_non_finite(const float* __restrict__ x, int n, int* __restrict__ first) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        if (!finite_f(x[i])) atomicMin(first, i);
    }
}
