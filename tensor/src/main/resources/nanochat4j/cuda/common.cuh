// Shared helpers for every nanochat4j kernel source (prepended by the loader: NVRTC sees one translation unit).
// No CUDA headers: NVRTC compiles these without an include path, so bf16 conversions are written out in bits.
#ifndef NC4J_COMMON
#define NC4J_COMMON
#ifndef BLOCK
#define BLOCK 256
#endif
#define WARP 32
#define NEG_INF (__int_as_float(0xff800000))

// Not NaN and not ±inf (spelled out: NVRTC has no <cmath>).
__device__ __forceinline__ bool finite_f(float x) {
    return (__float_as_uint(x) & 0x7f800000u) != 0x7f800000u;
}

struct SumOp {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};

// max that propagates NaN (as PyTorch's max does; fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) {
    return (a != a || b != b) ? __int_as_float(0x7fc00000) : fmaxf(a, b);
}

struct NanMaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return nan_max(a, b); }
};

template <typename T, typename Op> __device__ __forceinline__ T warp_reduce(T v, Op op) {
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Reduction over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. Each
// (T, Op) instantiation has its own shared scratch.
template <typename T, typename Op> __device__ T block_reduce(T v, T identity, Op op) {
    __shared__ T part[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) part[w] = v;
    __syncthreads();
    v = lane < nw ? part[lane] : identity;
    return warp_reduce(v, op);
}

__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, NanMaxOp()); }
__device__ float block_sum(float v) { return block_reduce(v, 0.f, SumOp()); }
__device__ double block_sum_d(double v) { return block_reduce(v, 0.0, SumOp()); }
__device__ float block_max(float v) { return block_reduce(v, NEG_INF, NanMaxOp()); }

// fp32 -> bf16 bits, round to nearest even, NaN kept quiet (matches DType.toBf16 on the CPU).
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
    unsigned int b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short) ((b >> 16) | 0x40u);
    return (unsigned short) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

__device__ __forceinline__ float bf16_to_f32(unsigned short h) {
    return __uint_as_float(((unsigned int) h) << 16);
}

// Flash attention's online softmax (attention_tc_fwd.cu, attention_wgmma.cu) for the two rows a lane holds of an m16
// accumulator tile, each shared by the 4 lanes of a quad, scores in log2 units: reduces this tile's row maxima mx
// (this lane's so far, NaN-propagating) over the quad and moves the running max m and the lane's partial sum l on.
// mUse: the max to subtract (0 for a row that has seen nothing yet, so exp2(−inf − 0) = 0 rather than NaN); corr:
// the factor the row's output so far is rescaled by.
__device__ __forceinline__ void online_softmax_step(float (&m)[2], float (&l)[2], float (&mx)[2], float (&mUse)[2], float (&corr)[2]) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        mx[rr] = nan_max(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
        mx[rr] = nan_max(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
        mUse[rr] = mx[rr] == NEG_INF ? 0.f : mx[rr];
        corr[rr] = exp2f(m[rr] - mUse[rr]);
        m[rr] = mx[rr];
        l[rr] *= corr[rr];
    }
}

// The end of the online softmax: each lane's partial row sums l, over its own columns, summed over its quad.
__device__ __forceinline__ void online_softmax_total(float (&l)[2]) {
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 1);
        l[rr] += __shfl_xor_sync(0xffffffffu, l[rr], 2);
    }
}

// A wgmma shared-memory descriptor (attention_wgmma.cu, gemm_wgmma.cu): start address, leading and stride byte
// offsets, each in 16-byte units, and the layout type in bits 62-63: 0 the no-swizzle layout (leading: between core
// matrices along K, stride: along M or N), 1 the 128-byte swizzle (see gemm_wgmma.cu). Plain bit arithmetic, so it
// lives here and not among tensorcore.cuh's PTX wrappers, which the simulator replaces.
__device__ __forceinline__ unsigned long long wg_desc(unsigned addr, unsigned lbo, unsigned sbo, unsigned layout = 0) {
    return (unsigned long long) ((addr & 0x3ffffu) >> 4) | ((unsigned long long) (lbo >> 4) << 16)
           | ((unsigned long long) (sbo >> 4) << 32) | ((unsigned long long) layout << 62);
}
#endif
