// Embedding gather and scatter-add. Ids are I32 or I64 (IDS64); an id outside [0, V) is not read but reported:
// bad[0] = min position of a bad id (caller initializes it to INT_MAX and checks it after the launch).
#include "common.cuh"

__device__ __forceinline__ long long id_at(const void* ids, int i, int ids64) {
    return ids64 ? ((const long long*) ids)[i] : (long long) ((const int*) ids)[i];
}

// One block per id; threads stride over the E columns.
extern "C" __global__ void embedding_fwd(const float* __restrict__ table, const void* __restrict__ ids, int ids64, int v, int e,
                                         float* __restrict__ out, int* __restrict__ bad) {
    int i = blockIdx.x;
    long long id = id_at(ids, i, ids64);
    if (id < 0 || id >= v) {
        if (threadIdx.x == 0) atomicMin(bad, i);
        return;
    }
    const float* src = table + id * e;
    float* dst = out + (long long) i * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) dst[c] = src[c];
}

// dTable[ids[i]] += dy[i]; repeated ids meet in atomicAdd (order of the fp32 sums is not fixed).
extern "C" __global__ void embedding_bwd(const float* __restrict__ dy, const void* __restrict__ ids, int ids64, int v, int e,
                                         float* __restrict__ dTable, int* __restrict__ bad) {
    int i = blockIdx.x;
    long long id = id_at(ids, i, ids64);
    if (id < 0 || id >= v) {
        if (threadIdx.x == 0) atomicMin(bad, i);
        return;
    }
    const float* src = dy + (long long) i * e;
    float* dst = dTable + id * e;
    for (int c = threadIdx.x; c < e; c += blockDim.x) atomicAdd(dst + c, src[c]);
}

// Ids (I32 or I64) out of range check alone (used before launches that must not run on bad ids).
extern "C" __global__ void check_ids(const void* __restrict__ ids, int ids64, int n, int v, int* __restrict__ bad) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        long long id = id_at(ids, i, ids64);
        if (id < 0 || id >= v) atomicMin(bad, i);
    }
}
