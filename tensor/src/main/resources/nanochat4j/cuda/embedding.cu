// Embedding gather and scatter-add over I32 ids; an id outside [0, V) is not read but reported:
// bad[0] = min position of a bad id (caller initializes it to INT_MAX and checks it after the launch).
#include "common.cuh"

// One block per id; threads stride over the E columns.
extern "C" __global__ void embedding_fwd(const float* __restrict__ table, const int* __restrict__ ids, int v, int e,
                                         float* __restrict__ out, int* __restrict__ bad) {
    int i = blockIdx.x;
    int id = ids[i];
    if (id < 0 || id >= v) {
        if (threadIdx.x == 0) atomicMin(bad, i);
        return;
    }
    const float* src = table + (long long) id * e;
    float* dst = out + (long long) i * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) dst[c] = src[c];
}

// Deterministic scatter-add: the ids stably sorted on the host (perm = positions in id order, segment s = the
// positions of id segIds[s], perm[segStart[s]..segStart[s+1])). One block per distinct id adds its rows in position
// order, the order the CPU backend adds them in: no atomics, so a run's gradients are the same every time (exact
// resume) and equal the CPU's.
extern "C" __global__ void embedding_bwd_sorted(const float* __restrict__ dy, const int* __restrict__ perm,
                                                const int* __restrict__ segStart, const int* __restrict__ segIds, int e,
                                                float* __restrict__ dTable) {
    int s = blockIdx.x;
    int j0 = segStart[s], j1 = segStart[s + 1];
    float* dst = dTable + (long long) segIds[s] * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) {
        float acc = dst[c];
        for (int j = j0; j < j1; j++) acc = __fadd_rn(acc, dy[(long long) perm[j] * e + c]);
        dst[c] = acc;
    }
}

// Ids out of range check alone (used before launches that must not run on bad ids).
extern "C" __global__ void check_ids(const int* __restrict__ ids, int n, int v, int* __restrict__ bad) {
    for (long long i = blockIdx.x * (long long) blockDim.x + threadIdx.x; i < n; i += (long long) gridDim.x * blockDim.x) {
        int id = ids[i];
        if (id < 0 || id >= v) atomicMin(bad, (int) i); // i < n: fits
    }
}
