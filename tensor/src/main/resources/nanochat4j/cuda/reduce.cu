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

// The lambda mix's backward in one pass over dy: dx = a[0]*dy, dx0 = b[0]*dy, and the partial sums of dy*x and dy*x0
// (partial[blockIdx.x] and partial[gridDim.x + blockIdx.x], for reduce_final) with the grid and order of
// reduce_partial, so da and db equal dot(dy, x) and dot(dy, x0) bit for bit. x and x0 are read as the forward kept
// them, fp32 or the bf16 copy (xBf16/x0Bf16 != 0), widened in registers: no widened fp32 copy is written first.
extern "C" __global__ void lambda_mix_backward_partial(const float* __restrict__ dy, const void* __restrict__ x, int xBf16,
                                                       const void* __restrict__ x0, int x0Bf16, const float* __restrict__ a,
                                                       const float* __restrict__ b, float* __restrict__ dx,
                                                       float* __restrict__ dx0, int n, double* __restrict__ partial) {
    float av = a[0], bv = b[0];
    double accX = 0.0, accX0 = 0.0;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float g = dy[i];
        float xi = xBf16 ? bf16_to_f32(((const unsigned short*) x)[i]) : ((const float*) x)[i];
        float x0i = x0Bf16 ? bf16_to_f32(((const unsigned short*) x0)[i]) : ((const float*) x0)[i];
        accX += (double) g * (double) xi;
        accX0 += (double) g * (double) x0i;
        dx[i] = g * av;
        dx0[i] = g * bv;
    }
    accX = block_sum_d(accX);
    accX0 = block_sum_d(accX0);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = accX;
        partial[gridDim.x + blockIdx.x] = accX0;
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
