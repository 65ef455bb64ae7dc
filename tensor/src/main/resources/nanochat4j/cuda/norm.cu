// rms_norm (no weight, y = scale·x·rstd) forward/backward and rotary embeddings, one block per row.
#include "common.cuh"

extern "C" __global__ void rms_norm_fwd(const float* __restrict__ x, float* __restrict__ y, int d, float scale, float eps) {
    const float* row = x + (long long) blockIdx.x * d;
    float* out = y + (long long) blockIdx.x * d;
    float ss = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += row[i] * row[i];
    ss = block_sum(ss);
    float k = scale * rsqrtf(ss / d + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) out[i] = row[i] * k;
}

// dx = a·dy + b·x with a = scale·rstd, b = −scale·rstd³·(dy·x)/d.
extern "C" __global__ void rms_norm_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx,
                                        int d, float scale, float eps) {
    long long base = (long long) blockIdx.x * d;
    float ss = 0.f, dot = 0.f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) {
        float v = x[base + i];
        ss += v * v;
        dot += dy[base + i] * v;
    }
    ss = block_sum(ss);
    dot = block_sum(dot);
    float rs = rsqrtf(ss / d + eps);
    float a = scale * rs, b = -scale * rs * rs * rs * dot / d;
    for (int i = threadIdx.x; i < d; i += blockDim.x) dx[base + i] = a * dy[base + i] + b * x[base + i];
}

// x (B,T,H,D) halves layout; one thread per (b,t,h,i<D/2). sign +1 forward (rotation by −θ), −1 backward.
// Positions offset + *offsetAt (when given: a recorded decode step reads the position of the moment it runs) + t.
extern "C" __global__ void rotary(const float* __restrict__ x, float* __restrict__ y, const float* __restrict__ cosT,
                                  const float* __restrict__ sinT, int t, int h, int d, int offset, float sign, int n,
                                  const int* __restrict__ offsetAt) {
    if (offsetAt) offset += *offsetAt;
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
