// Shared helpers for every nanochat4j kernel source (prepended by the loader: NVRTC sees one translation unit).
// No CUDA headers: NVRTC compiles these without an include path, so bf16 conversions are written out in bits.
#ifndef NC4J_COMMON
#define NC4J_COMMON
#ifndef BLOCK
#define BLOCK 256
#endif
#define WARP 32
#define NEG_INF (__int_as_float(0xff800000))
#define NEG_INF_D (__longlong_as_double(0xfff0000000000000LL))

// Not NaN and not ±inf (spelled out: NVRTC has no <cmath>).
__device__ __forceinline__ bool finite_f(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// max that propagates NaN (as PyTorch's max does; fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) {
    return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
__device__ float block_sum(float v) {
    __shared__ float part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) part[w] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : 0.f;
    return warp_sum(v);
}

__device__ double block_sum_d(double v) {
    __shared__ double partd[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) partd[w] = v;
    __syncthreads();
    v = lane < nw ? partd[lane] : 0.0;
    return warp_sum_d(v);
}

__device__ float block_max(float v) {
    __shared__ float partm[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) partm[w] = v;
    __syncthreads();
    v = lane < nw ? partm[lane] : NEG_INF;
    return warp_max(v);
}

// fp32 -> bf16 bits, round to nearest even, NaN kept quiet (matches DType.toBf16 on the CPU).
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned int b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short) ((b >> 16) | 0x40u);
    return (unsigned short) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int) h) << 16);
}
#endif
