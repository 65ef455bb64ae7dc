// rms_norm (no weight, y = scale·x·rstd) forward/backward and rotary embeddings, one block per row.
#include "common.cuh"

// An activation as a backward finds it: fp32, or the bf16 copy Autograd.shelve kept (widened in registers, never whole).
__device__ __forceinline__ float as_f32(const float* v, long long i) { return v[i]; }
__device__ __forceinline__ float as_f32(const unsigned short* v, long long i) { return bf16_to_f32(v[i]); }

// inv (when given) gets each row's 1/rms, for the backward from the output (rms_norm_bwd_from_out).
template <typename X>
__device__ __forceinline__ void norm_fwd(const X* __restrict__ x, float* __restrict__ y, int d, float scale, float eps,
                                         float* __restrict__ inv) {
    long long base = (long long) blockIdx.x * d;
    float* out = y + base;
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = as_f32(x, base + i);
        ss += v * v;
    }
    ss = block_sum(ss);
    float r = rsqrtf(ss / d + eps), k = scale * r;
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[i] = as_f32(x, base + i) * k;
    if (inv && threadIdx.x == 0) inv[blockIdx.x] = r;
}

extern "C" __global__ void rms_norm_fwd(const float* __restrict__ x, float* __restrict__ y, int d, float scale, float eps,
                                        float* __restrict__ inv) {
    norm_fwd(x, y, d, scale, eps, inv);
}

// The MLP's backward recomputes its norm from the block input as shelved (bf16).
extern "C" __global__ void rms_norm_fwd_bf16x(const unsigned short* __restrict__ x, float* __restrict__ y, int d, float scale,
                                              float eps, float* __restrict__ inv) {
    norm_fwd(x, y, d, scale, eps, inv);
}

// dx = inv·(scale·dy − y·Σ(dy·y)/(d·scale)) from the output y and 1/rms: one pass over dy and y (composed of
// broadcasting ops it was six kernels and ten passes).
template <typename Y>
__device__ __forceinline__ void norm_bwd_from_out(const float* __restrict__ dy, const Y* __restrict__ y, const float* __restrict__ inv,
                                                  float* __restrict__ dx, int d, float scale) {
    long long base = (long long) blockIdx.x * d;
    float s = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) s += dy[base + i] * as_f32(y, base + i);
    s = block_sum(s);
    float coef = s * (1.f / (d * scale)), iv = inv[blockIdx.x];
    for (int i = threadIdx.x; i < d; i += blockDim.x) dx[base + i] = (scale * dy[base + i] - as_f32(y, base + i) * coef) * iv;
}

extern "C" __global__ void rms_norm_bwd_from_out(const float* __restrict__ dy, const float* __restrict__ y, const float* __restrict__ inv,
                                                 float* __restrict__ dx, int d, float scale) {
    norm_bwd_from_out(dy, y, inv, dx, d, scale);
}

extern "C" __global__ void rms_norm_bwd_from_out_bf16y(const float* __restrict__ dy, const unsigned short* __restrict__ y,
                                                       const float* __restrict__ inv, float* __restrict__ dx, int d, float scale) {
    norm_bwd_from_out(dy, y, inv, dx, d, scale);
}

// dx = a·dy + b·x with a = scale·rstd, b = −scale·rstd³·(dy·x)/d.
template <typename X>
__device__ __forceinline__ void norm_bwd(const X* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, int d,
                                         float scale, float eps) {
    long long base = (long long) blockIdx.x * d;
    float ss = 0.f, dot = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = as_f32(x, base + i);
        ss += v * v;
        dot += dy[base + i] * v;
    }
    ss = block_sum(ss);
    dot = block_sum(dot);
    float rs = rsqrtf(ss / d + eps);
    float a = scale * rs, b = -scale * rs * rs * rs * dot / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dx[base + i] = a * dy[base + i] + b * as_f32(x, base + i);
}

extern "C" __global__ void rms_norm_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                                        int d, float scale, float eps) {
    norm_bwd(x, dy, dx, d, scale, eps);
}

extern "C" __global__ void rms_norm_bwd_bf16x(const unsigned short* __restrict__ x, const float* __restrict__ dy,
                                             float* __restrict__ dx, int d, float scale, float eps) {
    norm_bwd(x, dy, dx, d, scale, eps);
}

// x (B,T,H,D) halves layout; one thread per (b,t,h,i<D/2). sign +1 forward (rotation by −θ), −1 backward.
extern "C" __global__ void rotary(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ cosT,
                                  const float* __restrict__ sinT, int t, int h, int d, int offset, float sign, int n) {
    int half = d / 2;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        int e = (int) i, j = e % half, bth = e / half, bt = bth / h; // i < n: 32-bit division
        int pos = offset + bt % t;
        float c = cosT[pos * half + j], s = sign * sinT[pos * half + j];
        long long base = (long long) bth * d;
        float a = x[base + j], b = x[base + half + j];
        y[base + j] = a * c + b * s;
        y[base + half + j] = b * c - a * s;
    }
}

// QK-norm after RoPE in one pass, one block per head row (b,t,h) of x (B,T,H,D): r = rotary(x) at position
// offset (+ *offsetAt when given: a recorded decode step reads the position of the moment it runs) + t (sign +1, as
// rotary), y = scale·r·rstd(r), inv (when given) = rstd. The rotated row is recomputed for the write instead of kept
// (it costs two loads from cache, not a round trip through memory).
extern "C" __global__ void rotary_rms_norm(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ inv,
                                           const float* __restrict__ cosT, const float* __restrict__ sinT, int t, int h, int d,
                                           int offset, float scale, float eps, const int* __restrict__ offsetAt) {
    if (offsetAt) offset += *offsetAt;
    int row = blockIdx.x, half = d / 2, pos = offset + (row / h) % t;
    long long base = (long long) row * d;
    const float* c = cosT + (long long) pos * half;
    const float* s = sinT + (long long) pos * half;
    float ss = 0.f;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float a = x[base + j], b = x[base + half + j];
        float r1 = a * c[j] + b * s[j], r2 = b * c[j] - a * s[j];
        ss += r1 * r1 + r2 * r2;
    }
    ss = block_sum(ss);
    float rs = rsqrtf(ss / d + eps), k = scale * rs;
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float a = x[base + j], b = x[base + half + j];
        y[base + j] = (a * c[j] + b * s[j]) * k;
        y[base + half + j] = (b * c[j] - a * s[j]) * k;
    }
    if (inv && threadIdx.x == 0) inv[row] = rs;
}

// dx of rotary_rms_norm from its output y (fp32 or its saved bf16 copy) and inv: dr = inv·(scale·dy −
// y·Σ(dy·y)/(d·scale)), then dr rotated by +θ.
template <typename Y>
__device__ __forceinline__ void rotary_norm_bwd(const float* __restrict__ dy, const Y* __restrict__ y, const float* __restrict__ inv,
                                                const float* __restrict__ cosT, const float* __restrict__ sinT, float* __restrict__ dx,
                                                int t, int h, int d, int offset, float scale) {
    int row = blockIdx.x, half = d / 2, pos = offset + (row / h) % t;
    long long base = (long long) row * d;
    const float* c = cosT + (long long) pos * half;
    const float* s = sinT + (long long) pos * half;
    float dot = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dot += dy[base + i] * as_f32(y, base + i);
    dot = block_sum(dot);
    float coef = dot * (1.f / (d * scale)), iv = inv[row];
    for (int j = threadIdx.x; j < half; j += blockDim.x) {
        float g1 = (scale * dy[base + j] - as_f32(y, base + j) * coef) * iv;
        float g2 = (scale * dy[base + half + j] - as_f32(y, base + half + j) * coef) * iv;
        dx[base + j] = g1 * c[j] - g2 * s[j];
        dx[base + half + j] = g2 * c[j] + g1 * s[j];
    }
}

extern "C" __global__ void rotary_rms_norm_bwd(const float* __restrict__ dy, const float* __restrict__ y, const float* __restrict__ inv,
                                               const float* __restrict__ cosT, const float* __restrict__ sinT, float* __restrict__ dx,
                                               int t, int h, int d, int offset, float scale) {
    rotary_norm_bwd(dy, y, inv, cosT, sinT, dx, t, h, d, offset, scale);
}

extern "C" __global__ void rotary_rms_norm_bwd_bf16y(const float* __restrict__ dy, const unsigned short* __restrict__ y,
                                                     const float* __restrict__ inv, const float* __restrict__ cosT,
                                                     const float* __restrict__ sinT, float* __restrict__ dx, int t, int h, int d,
                                                     int offset, float scale) {
    rotary_norm_bwd(dy, y, inv, cosT, sinT, dx, t, h, d, offset, scale);
}
