// Elementwise ops over flat F32 arrays: activations and their gradients, axpby, lerp, clamp, the fp32 → bf16 cast and
// broadcasting binary ops. Grid-stride loops; n fits an int (Tensor's limit).
#include "common.cuh"

#define OP_RELU2 0
#define OP_SIGMOID 1
#define OP_TANH 2
#define OP_SOFTCAP 3
#define OP_SQRT 4
#define OP_RSQRT 5
#define OP_CLAMP 6

// max(v, 0) that keeps a NaN, as the CPU's Math.max and PyTorch's relu do (fmaxf(NaN, 0) is 0: a NaN activation
// would vanish from the loss and leave its weights' gradients 0).
__device__ __forceinline__ float relu_nan(float v) {
    return v != v ? v : fmaxf(v, 0.f);
}

extern "C" __global__ void unary_f32(const float* __restrict__ x, float* __restrict__ y, int n, int op, float p0, float p1) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = x[i], r;
        switch (op) {
            case OP_RELU2: { float m = relu_nan(v); r = m * m; break; }
            case OP_SIGMOID: r = 1.f / (1.f + expf(-v)); break;
            case OP_TANH: r = tanhf(v); break;
            case OP_SOFTCAP: r = p0 * tanhf(v / p0); break;
            case OP_SQRT: r = sqrtf(v); break;
            case OP_RSQRT: r = 1.f / sqrtf(v); break;
            default: r = v != v ? v : fminf(fmaxf(v, p0), p1); break; // NaN stays NaN, as on the CPU
        }
        y[i] = r;
    }
}

// Gradients from the forward input or output a: relu2 (a = x), sigmoid (a = y), tanh (a = y), softcap (a = x, p0 = cap).
extern "C" __global__ void unary_grad_f32(const float* __restrict__ a, const float* __restrict__ dy, float* __restrict__ dx,
                                          int n, int op, float p0) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float v = a[i], g = dy[i], r;
        switch (op) {
            case OP_RELU2: r = 2.f * relu_nan(v) * g; break;
            case OP_SIGMOID: r = g * v * (1.f - v); break;
            case OP_TANH: r = g * (1.f - v * v); break;
            default: { float t = tanhf(v / p0); r = g * (1.f - t * t); break; }
        }
        dx[i] = r;
    }
}

// The MLP's hidden layer as a bf16 GEMM reads it: bf16(relu(a)²) from a in fp32, or in bf16 (the backward's saved copy),
// one pass instead of an fp32 relu² and its cast (the same bits: relu² in fp32, rounded once).
extern "C" __global__ void relu2_to_bf16(const float* __restrict__ a, unsigned short* __restrict__ u, int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float m = relu_nan(a[i]);
        u[i] = f32_to_bf16(m * m);
    }
}

extern "C" __global__ void relu2_bf16_to_bf16(const unsigned short* __restrict__ a, unsigned short* __restrict__ u, int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float m = relu_nan(bf16_to_f32(a[i]));
        u[i] = f32_to_bf16(m * m);
    }
}

// dx = 2·relu(a)·dy with a the saved bf16 copy, widened in registers (not in a widened fp32 copy first).
extern "C" __global__ void relu2_grad_bf16a(const unsigned short* __restrict__ a, const float* __restrict__ dy, float* __restrict__ dx,
                                            int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        dx[i] = 2.f * relu_nan(bf16_to_f32(a[i])) * dy[i];
    }
}

// out = a*x + b*y (y may be null when b == 0; out may alias y for axpy).
extern "C" __global__ void axpby_f32(float a, const float* __restrict__ x, float b, const float* y, float* out, int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        out[i] = y == 0 ? a * x[i] : a * x[i] + b * y[i];
    }
}

// out = a[0]*x + b[0]*x0 with a, b one-element device tensors (no host round trip for the lambdas).
extern "C" __global__ void lambda_mix_f32(const float* __restrict__ a, const float* __restrict__ x, const float* __restrict__ b,
                                          const float* __restrict__ x0, float* __restrict__ out, int n) {
    float av = a[0], bv = b[0];
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) out[i] = av * x[i] + bv * x0[i];
}

// torch.lerp's two-sided formula.
extern "C" __global__ void lerp_f32(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, int n, float w) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float d = b[i] - a[i];
        out[i] = fabsf(w) < 0.5f ? a[i] + w * d : b[i] - d * (1.f - w);
    }
}

extern "C" __global__ void f32_to_bf16(const float* __restrict__ x, unsigned short* __restrict__ y, int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) y[i] = f32_to_bf16(x[i]);
}

// An activation kept in bf16 for a backward pass, back to fp32 (exact: bf16 is the top half of an fp32).
extern "C" __global__ void bf16_to_f32(const unsigned short* __restrict__ x, float* __restrict__ y, int n) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) y[i] = bf16_to_f32(x[i]);
}

// Broadcast shapes: the output's dims right-aligned, with each operand's element stride per output dim
// (0 where the operand broadcasts). Passed by value.
#define MAX_RANK 8
struct Bcast {
    int rank;
    int shape[MAX_RANK];
    int sa[MAX_RANK];
    int sb[MAX_RANK];
};

#define BIN_ADD 0
#define BIN_SUB 1
#define BIN_MUL 2
#define BIN_DIV 3

extern "C" __global__ void binary_bcast_f32(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ c,
                                            int n, int op, const __grid_constant__ Bcast s) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        int rem = (int) i, ia = 0, ib = 0; // i < n: fits
        for (int d = s.rank - 1; d >= 0; d--) {
            int q = rem / s.shape[d], idx = rem - q * s.shape[d];
            rem = q;
            ia += idx * s.sa[d];
            ib += idx * s.sb[d];
        }
        float x = a[ia], y = b[ib], r;
        switch (op) {
            case BIN_ADD: r = x + y; break;
            case BIN_SUB: r = x - y; break;
            case BIN_MUL: r = x * y; break;
            default: r = x / y; break;
        }
        c[i] = r;
    }
}

// Sum of x down to a broadcast shape: one block per output element; shape = the kept dims' layout of out
// (stride in x per out dim in sa), the reduced dims' sizes and x strides in red/sb (rank redRank).
struct SumTo {
    int outRank;
    int outShape[MAX_RANK];
    int outStride[MAX_RANK];
    int redRank;
    int redShape[MAX_RANK];
    int redStride[MAX_RANK];
};

extern "C" __global__ void sum_to_f32(const float* __restrict__ x, float* __restrict__ out, int redCount, const __grid_constant__ SumTo s) {
    int o = blockIdx.x, rem = o, base = 0;
    for (int d = s.outRank - 1; d >= 0; d--) {
        int q = rem / s.outShape[d];
        base += (rem - q * s.outShape[d]) * s.outStride[d];
        rem = q;
    }
    double acc = 0.0;
    for (int r = threadIdx.x; r < redCount; r += blockDim.x) {
        int rr = r, off = base;
        for (int d = s.redRank - 1; d >= 0; d--) {
            int q = rr / s.redShape[d];
            off += (rr - q * s.redShape[d]) * s.redStride[d];
            rr = q;
        }
        acc += x[off];
    }
    acc = block_sum_d(acc);
    if (threadIdx.x == 0) out[o] = (float) acc;
}

// Copies len runs of `inner` elements: dst[o][dstStart + j][:] = src[o][srcStart + j][:] for o < outer, j < len,
// where the narrowed dim has srcSize / dstSize entries. narrow, narrowBackward (into zeros), concat, narrowAssign.
// dst runs start at dstStart + *dstStartAt when given (a recorded decode step's KV-cache write at the position of the moment).
extern "C" __global__ void copy_runs_f32(const float* __restrict__ src, int srcSize, int srcStart, float* __restrict__ dst,
                                         int dstSize, int dstStart, int len, int outer, int inner, const int* __restrict__ dstStartAt) {
    if (dstStartAt) dstStart += *dstStartAt;
    long long total = (long long) outer * len * inner;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < total; i += (long long) gridDim.x * blockDim.x) {
        long long o = i / ((long long) len * inner);
        int rest = (int) (i - o * len * inner), j = rest / inner, e = rest - j * inner;
        dst[(o * dstSize + dstStart + j) * inner + e] = src[(o * srcSize + srcStart + j) * inner + e];
    }
}

// *counter += by: a recorded decode step moves its own position on (one thread).
extern "C" __global__ void add_to_int(int* counter, int by) {
    if (threadIdx.x == 0 && blockIdx.x == 0) *counter += by;
}
