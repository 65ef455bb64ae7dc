// Optimizer updates on the device. adamw_f32 is nanochat's adamw_step_fused, written to round exactly as the CPU
// kernel (train/…/optim/AdamW.java) rounds: every product, quotient and sum in its own IEEE operation (_rn
// intrinsics, so nvcc cannot contract them into FMAs) and torch's two-branch lerp as one explicit fmaf. The device
// update therefore equals the CPU one bit for bit, which keeps a run resumable across devices.
#include "common.cuh"

// torch.lerp(a, b, w): a + w·(b−a) for |w| < 0.5, else b − (b−a)·(1−w), fused as AdamW.lerp is.
__device__ __forceinline__ float lerp_t(float a, float b, float w) {
    float d = __fsub_rn(b, a);
    return fabsf(w) < 0.5f ? fmaf(w, d, a) : fmaf(__fsub_rn(w, 1.0f), d, b);
}

// p ← p·decay; m ← lerp(m, g, w1); v ← lerp(v, g², w2); p ← p − (m / (sqrt(v/bias2) + eps))·stepSize.
// decay = 1 − lr·wd, w1 = 1 − β1, w2 = 1 − β2, bias2 = 1 − β2^t, stepSize = lr/(1 − β1^t) (fp32 scalars made on the host).
extern "C" __global__ void adamw_f32(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                     float* __restrict__ v, int n, float decay, float w1, float w2, float bias2,
                                     float eps, float stepSize) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float gi = g[i];
        float pi = __fmul_rn(p[i], decay);
        float mi = lerp_t(m[i], gi, w1);
        float vi = lerp_t(v[i], __fmul_rn(gi, gi), w2);
        float denom = __fadd_rn(__fsqrt_rn(__fdiv_rn(vi, bias2)), eps);
        p[i] = __fsub_rn(pi, __fmul_rn(__fdiv_rn(mi, denom), stepSize));
        m[i] = mi;
        v[i] = vi;
    }
}

// Muon's cautious update of one matrix, u the NorMuon-scaled orthogonalised update:
// p ← p − (lr·u + [u·p ≥ 0]·lrWd·p), rounded as Muon.update on the CPU.
extern "C" __global__ void muon_cautious_f32(float* __restrict__ p, const float* __restrict__ u, int n, float lr, float lrWd) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        float pi = p[i], ui = u[i];
        float decay = __fmul_rn(ui, pi) >= 0.0f ? __fmul_rn(lrWd, pi) : 0.0f;
        p[i] = __fsub_rn(pi, __fadd_rn(__fmul_rn(lr, ui), decay));
    }
}
