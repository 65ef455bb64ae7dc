// CUDA C on the CPU, for the simulator (cudasim.cpp): what a kernel source needs from nvcc/NVRTC, as plain C++.
// The simulated NVRTC puts this header before a kernel source and compiles the result with g++ into a shared object;
// each CUDA thread then runs as a fiber (cudasim.cpp), one block at a time, so __shared__ arrays are function statics,
// atomics are plain read-modify-writes, and warp and block operations go through the driver (SimApi), which
// suspends a thread until the others it waits for arrive. Rounding follows the GPU where the kernels ask for it
// (__fadd_rn and friends, bf16 round-to-nearest-even); the compiler does not fuse a*b+c here (-ffp-contract=off)
// where nvcc would, so results agree with a GPU's to within fp32 rounding, not bit for bit.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <type_traits>
#include <utility>

#include "cudasim_abi.h"

extern "C" {
__attribute__((visibility("default"))) SimThread* __sim_cur = nullptr;
__attribute__((visibility("default"))) const SimApi* __sim_api = nullptr;
extern char __start_nc4jsim_shared[] __attribute__((weak)), __stop_nc4jsim_shared[] __attribute__((weak));
__attribute__((visibility("default"))) char* __sim_shared_bounds(int end) { return end ? __stop_nc4jsim_shared : __start_nc4jsim_shared; }
}

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __grid_constant__
// Every __shared__ array in one section, whose bounds the linker exports: the driver fills it with 0xFF (NaN) before
// each block, so a read of shared memory the block did not write shows, as it would be garbage on a GPU.
#define __shared__ static __attribute__((section("nc4jsim_shared")))
#define __align__(n) __attribute__((aligned(n)))
#define threadIdx (__sim_cur->threadIdx)
#define blockIdx (__sim_cur->blockIdx)
#define blockDim (__sim_cur->blockDim)
#define gridDim (__sim_cur->gridDim)
#define warpSize 32

struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) int2 { int x, y; };
struct __attribute__((aligned(16))) int4 { int x, y, z, w; };
struct __attribute__((aligned(8))) uint2 { unsigned x, y; };
struct __attribute__((aligned(16))) uint4 { unsigned x, y, z, w; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }

template <class To, class From> inline To __sim_bits(From f) {
    static_assert(sizeof(To) == sizeof(From), "bit cast of different sizes");
    To t;
    memcpy(&t, &f, sizeof t);
    return t;
}
inline unsigned __float_as_uint(float f) { return __sim_bits<unsigned>(f); }
inline float __uint_as_float(unsigned u) { return __sim_bits<float>(u); }
inline int __float_as_int(float f) { return __sim_bits<int>(f); }
inline float __int_as_float(int i) { return __sim_bits<float>(i); }
inline long long __double_as_longlong(double d) { return __sim_bits<long long>(d); }
inline double __longlong_as_double(long long l) { return __sim_bits<double>(l); }

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float rsqrtf(float a) { return 1.0f / sqrtf(a); }
inline float __expf(float a) { return expf(a); }
inline float __logf(float a) { return logf(a); }
inline float __saturatef(float a) { return a != a ? 0.0f : fminf(fmaxf(a, 0.0f), 1.0f); }

inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }

template <class T> inline T __sim_shfl(unsigned mask, T v, int arg, int mode, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of more than 8 bytes");
    unsigned long long bits = 0;
    memcpy(&bits, &v, sizeof(T));
    bits = __sim_api->shfl(mask, bits, arg, mode, width);
    T r;
    memcpy(&r, &bits, sizeof(T));
    return r;
}
template <class T> inline T __shfl_sync(unsigned m, T v, int src, int w = 32) { return __sim_shfl(m, v, src, SIM_SHFL_IDX, w); }
template <class T> inline T __shfl_xor_sync(unsigned m, T v, int x, int w = 32) { return __sim_shfl(m, v, x, SIM_SHFL_XOR, w); }
template <class T> inline T __shfl_down_sync(unsigned m, T v, int d, int w = 32) { return __sim_shfl(m, v, d, SIM_SHFL_DOWN, w); }
template <class T> inline T __shfl_up_sync(unsigned m, T v, int d, int w = 32) { return __sim_shfl(m, v, d, SIM_SHFL_UP, w); }
inline void __syncwarp(unsigned m = 0xffffffffu) { __sim_api->syncwarp(m); }
inline void __syncthreads() { __sim_api->syncthreads(1); }
inline int __syncthreads_and(int p) { return __sim_api->syncthreads(p); }

// One CUDA thread runs at a time and only a barrier switches threads: a read-modify-write is atomic as written.
template <class T> inline T atomicAdd(T* p, T v) { T o = *p; *p = o + v; return o; }
template <class T> inline T atomicSub(T* p, T v) { T o = *p; *p = o - v; return o; }
template <class T> inline T atomicMin(T* p, T v) { T o = *p; *p = v < o ? v : o; return o; }
template <class T> inline T atomicMax(T* p, T v) { T o = *p; *p = v > o ? v : o; return o; }
template <class T> inline T atomicExch(T* p, T v) { T o = *p; *p = v; return o; }
template <class T> inline T atomicCAS(T* p, T cmp, T v) { T o = *p; if (o == cmp) *p = v; return o; }
template <class T> inline T __ldg(const T* p) { return *p; }
inline size_t __cvta_generic_to_shared(const void* p) { return (size_t) p; }

// tensorcore.cuh's PTX wrappers, by the same names (its own definitions are skipped: NC4J_TENSORCORE).
#define NC4J_TENSORCORE
inline unsigned __sim_bf16_rn(float f) { // cvt.rn.bf16.f32: round to nearest even, NaN → canonical 0x7fff
    unsigned b = __float_as_uint(f);
    if ((b & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}
inline unsigned tc_pack_bf16(float lo, float hi) { return __sim_bf16_rn(lo) | (__sim_bf16_rn(hi) << 16); }
inline void tc_mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) { __sim_api->mma(d, a, b0, b1); }
inline void tc_ldsm_x4(unsigned (&r)[4], const unsigned short* p) { __sim_api->ldsm(r, p, 0); }
inline void tc_ldsm_x4_t(unsigned (&r)[4], const unsigned short* p) { __sim_api->ldsm(r, p, 1); }
// cp.async lands at the thread's wait_group in even blocks, as late as a GPU may land it: a kernel that reads a tile
// before its wait (or waits for too few groups) reads what was there before, NaN or the previous tile, and its results
// show it. In odd blocks it lands at issue, as early as a GPU may: a refill of a stage another warp still reads shows.
inline void cp_async16(void* smem, const void* gmem) {
    if ((((uintptr_t) smem) | ((uintptr_t) gmem)) & 15u) __sim_api->fail("cp.async.cg 16: an address not 16-byte aligned");
    __sim_api->cpAsync(smem, gmem, 16);
}
inline void cp_async4(void* smem, const void* gmem) {
    if ((((uintptr_t) smem) | ((uintptr_t) gmem)) & 3u) __sim_api->fail("cp.async.ca 4: an address not 4-byte aligned");
    __sim_api->cpAsync(smem, gmem, 4);
}
inline void cp_async_commit() { __sim_api->cpCommit(); }
template <int N> inline void cp_async_wait() { __sim_api->cpWait(N); }
inline void cp_async_wait_all_but_one() { cp_async_wait<1>(); }
inline void cp_async_wait_all() { cp_async_wait<0>(); }
// wgmma: its operands are read at issue and must not change until every thread of its warpgroup has waited for it;
// its accumulators (and A registers) belong to it until the thread's own wait: the accumulators read as NaN meanwhile,
// and a write to either fails the launch. The fences are checked: a wgmma reading shared memory that a cp.async or a
// store wrote with no fence.proxy.async since fails, and so does one that starts on accumulators with no wgmma.fence
// since the thread's last wait that landed a group. wg_fence_operand only keeps nvcc from moving register accesses;
// here it does nothing.
inline unsigned tc_smem_addr(const void* p) { return __sim_api->smemOffset(p); }
inline void tc_fence_proxy_async() { __sim_api->fenceProxyAsync(); }
inline void wg_fence() { __sim_api->wgFence(); }
inline void wg_commit() { __sim_api->wgCommit(); }
template <int N> inline void wg_wait() { __sim_api->wgWait(N); }
template <int N> inline void wg_fence_operand(float (&)[N]) {}
template <int N> inline void wg_fence_operand(unsigned (&)[N]) {}
template <int N, int TA, int TB> inline void wg_mma(float (&d)[N / 2], unsigned long long descA, unsigned long long descB, int scaleD) {
    __sim_api->wgmma(d, N, descA, descB, scaleD, TA, TB);
}
template <int N, int TB> inline void wg_mma_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long descB, int scaleD) {
    __sim_api->wgmmaRs(d, N, a, descB, scaleD, TB);
}

// TMA and mbarriers. A TMA copy lands at issue in odd blocks and, in even ones, when a thread waits on its mbarrier
// (as early and as late as a GPU may): a kernel that reads a stage before waiting for it, or refills one a wgmma still
// reads, shows it. mbarrier state lives in the driver, keyed by the barrier's address; waits suspend the thread, so a
// phase nothing will complete is reported as a deadlock.
struct __attribute__((aligned(64))) TmaMap {
    unsigned long long opaque[16];
};
inline void mbar_init(unsigned long long* bar, unsigned arrivals) { __sim_api->mbarInit(bar, arrivals); }
inline void mbar_init_fence() {}
inline void mbar_arrive(unsigned long long* bar) { __sim_api->mbarArrive(bar, 0); }
inline void mbar_arrive_expect_tx(unsigned long long* bar, unsigned bytes) { __sim_api->mbarArrive(bar, bytes); }
inline void mbar_wait(unsigned long long* bar, unsigned parity) { __sim_api->mbarWait(bar, parity); }
inline void tma_load_2d(void* dst, const TmaMap* map, int x, int y, unsigned long long* bar) { __sim_api->tmaLoad2d(dst, map, x, y, bar); }
// setmaxnreg: a register budget has no meaning here; ptxas's rule on the count is kept (a multiple of 8 in 24…256)
template <int N> inline void wg_regs_release() { static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg: 24…256, a multiple of 8"); }
template <int N> inline void wg_regs_claim() { static_assert(N % 8 == 0 && N >= 24 && N <= 256, "setmaxnreg: 24…256, a multiple of 8"); }

// Calls kernel f with the arguments cuLaunchKernel's kernelParams point to, converted to f's parameter types.
template <class... A, size_t... I> inline void __sim_call(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*(std::remove_cv_t<std::remove_reference_t<A>>*) p[I]...);
}
template <class... A> inline void __sim_invoke(void (*f)(A...), void** p) { __sim_call(f, p, std::index_sequence_for<A...>{}); }
// each parameter's size, then 0: a launch recorded into a graph copies its arguments by these
template <class... A> struct __sim_sizes { static constexpr int v[] = {(int) sizeof(std::remove_cv_t<std::remove_reference_t<A>>)..., 0}; };
template <class... A> inline const int* __sim_arg_sizes(void (*)(A...)) { return __sim_sizes<A...>::v; }
