// Reductions: whole-tensor sum / dot (two passes, fp64 partials like the CPU's Reduce), per-row norms, argmax.
#include "common.cuh"

#define RED_SUM 0
#define RED_DOT 1

// Pass 1: each block reduces a grid-stride share of n elements into partial[blockIdx.x].
extern "C" __global__ void reduce_partial(const float* __restrict__ a, const float* __restrict__ b, int n, int mode,
                                          double* __restrict__ partial) {
    double acc = 0.0;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x)
        acc += mode == RED_DOT ? (double) a[i] * (double) b[i] : (double) a[i];
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Pass 2 (one block): out[0] = sum(partial) * scale.
extern "C" __global__ void reduce_final(const double* __restrict__ partial, int count, double scale,
                                        float* __restrict__ out) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) out[0] = (float) (acc * scale);
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
