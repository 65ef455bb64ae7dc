// Softcap + cross-entropy, one block per row, streaming over the vocabulary in BLOCK-wide chunks (online
// max/sum, so a row of any width costs two reads). z = cap·tanh(l/cap) (cap <= 0: z = l). Ignored rows
// (target −1) get loss 0 and zero gradient. Logits rows are `ld` apart (ld >= v: the lm_head's padded width).
//   loss[r]   = logsumexp(z) − z[t]                          (unweighted)
//   dl[r][c]  = w_r·(softmax(z)[c] − [c == t])·dz/dl          (w_r = rowWeight[r] when given, else uniformW)
// Columns v..ld−1 of dl are zeroed. A non-finite logit sets bad[0] = min row, a target outside [0, v) bad[1], as rowBase
// + r (a chunked caller's rows counted from its first chunk, so it checks the flags once after the last).
#include "common.cuh"

__device__ __forceinline__ float capz(float l, float cap) {
    return cap > 0.f ? cap * tanhf(l / cap) : l;
}

// logits and dl are not __restrict__: the fused lm_head loss writes the gradient over its logits chunk.
extern "C" __global__ void softcap_ce(const float* logits, int ld, int v, const int* __restrict__ targets,
                                      float cap, float uniformW, const float* __restrict__ rowWeight,
                                      float* __restrict__ loss, float* dl, int* __restrict__ bad, int rowBase) {
    int r = blockIdx.x;
    const float* row = logits + (long long) r * ld;
    int tg = targets[r];
    bool ignored = tg == -1;
    float m = NEG_INF, s = 0.f;
    int finite = 1;
    for (int c = threadIdx.x; c < v; c += blockDim.x) {
        float l = row[c];
        if (!finite_f(l) && !ignored) finite = 0; // an ignored row's logits are not read, as on the CPU
        float z = capz(l, cap);
        if (z > m) {
            s = s * expf(m - z) + 1.f;
            m = z;
        } else {
            s += expf(z - m);
        }
    }
    // combine the per-thread (m, s) pairs
    float gm = block_max(m);
    float gs = block_sum(m == NEG_INF ? 0.f : s * expf(m - gm));
    int allFinite = __syncthreads_and(finite);
    if (!allFinite) {
        if (threadIdx.x == 0) atomicMin(bad, rowBase + r);
        return;
    }
    float lse = gm + logf(gs);
    if (threadIdx.x == 0) {
        if (!ignored && (tg < 0 || tg >= v)) atomicMin(bad + 1, rowBase + r);
        loss[r] = ignored || tg < 0 || tg >= v ? 0.f : lse - capz(row[tg], cap);
    }
    if (dl == 0) return;
    __syncthreads(); // dl may alias logits: thread 0 read row[tg] above
    float* grow = dl + (long long) r * ld;
    float w = ignored ? 0.f : (rowWeight != 0 ? rowWeight[r] : uniformW);
    for (int c = threadIdx.x; c < ld; c += blockDim.x) {
        float g = 0.f;
        if (c < v && w != 0.f) {
            float l = row[c];
            float p = expf(capz(l, cap) - lse) - (c == tg ? 1.f : 0.f);
            float dz = 1.f;
            if (cap > 0.f) {
                float th = tanhf(l / cap);
                dz = 1.f - th * th;
            }
            g = w * p * dz;
        }
        grow[c] = g;
    }
}

// count[0] += number of targets != −1 (MEAN's divisor).
extern "C" __global__ void count_valid(const int* __restrict__ targets, int n, int* __restrict__ count) {
    int c = 0;
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        c += targets[i] != -1;
    }
    c = (int) block_sum((float) c);
    if (threadIdx.x == 0 && c != 0) atomicAdd(count, c);
}
