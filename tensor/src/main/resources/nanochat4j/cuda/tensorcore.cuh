// PTX wrappers of the tensor-core kernels (attention_tc_fwd.cu, attention_tc_bwd.cu, gemm.cu; on Hopper gemm_wgmma.cu
// and attention_wgmma.cu): bf16 packing, mma.sync m16n8k16, ldmatrix, cp.async, the warpgroup MMA, and Hopper's
// tensor memory accelerator (TMA) with the mbarriers it signals, with the fragment layouts of the PTX ISA. Every
// inline PTX of the kernels is here and nowhere else: the CPU simulator (tensor/src/test/cudasim) defines
// NC4J_TENSORCORE and supplies its own.
#ifndef NC4J_TENSORCORE
#define NC4J_TENSORCORE

// A TMA tensor map (the driver's opaque CUtensorMap, 128 bytes, written by cuTensorMapEncodeTiled on the host), passed
// to a kernel by value as a const __grid_constant__ parameter: TMA reads it from the kernel's parameter space.
struct __align__(64) TmaMap {
    unsigned long long opaque[16];
};

// Two floats → one register of two bf16, round to nearest even; lo in the low half (the lower k / column index).
// cvt.rn.bf16x2.f32 puts its first source in the upper half (as cuda_bf16.hpp's __floats2bfloat162_rn).
__device__ __forceinline__ unsigned tc_pack_bf16(float lo, float hi) {
    unsigned r;
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;\n" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
}

// d += a·b, m16n8k16, bf16 in, fp32 accumulate; fragment layouts per the PTX ISA (.row.col).
__device__ __forceinline__ void tc_mma(float (&d)[4], const unsigned (&a)[4], unsigned b0, unsigned b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Four 8×8 bf16 matrices; lanes 8m..8m+7 give the row addresses of matrix m, and lane L gets, of each matrix, row
// L/4, columns 2(L%4), +1 — or with .trans column L/4, rows 2(L%4), +1. "memory": the tiles are rewritten at the
// same addresses, so the reads must stay between the barriers that publish a tile and the stores that overwrite it.
__device__ __forceinline__ void tc_ldsm_x4(unsigned (&r)[4], const unsigned short* p) {
    unsigned s = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}

__device__ __forceinline__ void tc_ldsm_x4_t(unsigned (&r)[4], const unsigned short* p) {
    unsigned s = (unsigned) __cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s) : "memory");
}

// 16 bytes global → shared, asynchronously. "memory" clobbers: the compiler must not move shared-memory reads or
// writes across these (the __syncthreads beside each also orders them, but the asm should not depend on that).
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
    unsigned s = (unsigned) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" :: "r"(s), "l"(gmem) : "memory");
}

// 4 bytes global → shared, asynchronously (.ca: the only form below 16 bytes), for rows of per-row scalars whose
// tiles need not start on 16 bytes (attention's lse and dsum at any T).
__device__ __forceinline__ void cp_async4(void* smem, const void* gmem) {
    unsigned s = (unsigned) __cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" :: "r"(s), "l"(gmem) : "memory");
}

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

// cp.async.wait_group N: all but this thread's newest N committed groups of cp.async have landed.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void cp_async_wait_all_but_one() { cp_async_wait<1>(); }

__device__ __forceinline__ void cp_async_wait_all() { cp_async_wait<0>(); }

#if defined(__CUDA_ARCH_FEAT_SM90_ALL) // compute_90a (wgmma and the async proxy are sm_90a's; other targets never see them)
// ---- Hopper (sm_90a): warpgroup MMA (gemm_wgmma.cu, attention_wgmma.cu). A warpgroup is 4 consecutive warps
// (128 threads) issuing one wgmma.mma_async together: D (64×N fp32, in registers) += A (64×16) · B (16×N), A and B
// bf16 read by the tensor cores from shared memory through 64-bit descriptors (or A from registers: wg_mma_rs). The
// MMAs run asynchronously: wg_commit closes a group of them, wg_wait<n> waits until at most n groups are in flight;
// only then may the accumulators be read, A's registers reused or the shared memory they read be overwritten.

// A shared-memory address as a descriptor holds it (the shared window's byte address).
__device__ __forceinline__ unsigned tc_smem_addr(const void* p) {
    return (unsigned) __cvta_generic_to_shared(p);
}

// Shared memory written through the generic proxy (stores, cp.async) made visible to the async proxy wgmma reads with.
__device__ __forceinline__ void tc_fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Before a warpgroup's first wgmma and whenever its accumulators were touched by other instructions since the last.
__device__ __forceinline__ void wg_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}

__device__ __forceinline__ void wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}

template <int N>
__device__ __forceinline__ void wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

// Keeps the compiler from moving reads or writes of the accumulators across a wgmma or its wait (the asm statements
// above do not name them).
template <int N>
__device__ __forceinline__ void wg_fence_operand(float (&d)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(d[i])::"memory");
}

// The same for the registers of a wg_mma_rs's A: they must keep their values until the wait, so the compiler must
// neither reuse them before it nor move their writes past the wgmma.
template <int N>
__device__ __forceinline__ void wg_fence_operand(unsigned (&r)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(r[i])::"memory");
}

// d (this thread's N/2 accumulators) = A·B + (scaleD ? d : 0), m64nNk16, bf16 in, fp32 accumulate. TA/TB = 0: the
// operand is K-major in shared memory (A (M, K), B (N, K) rows); 1: M- or N-major (transposed). Each thread's
// accumulators: warp w of the group holds rows 16w…16w+15; lane 4g + t, for each 8 columns j, rows g and g+8 at
// columns 8j + 2t, +1 (d[4j … 4j+3]), as mma.sync's.
template <int N, int TA, int TB>
__device__ __forceinline__ void wg_mma(float (&d)[N / 2], unsigned long long descA, unsigned long long descB, int scaleD) {
    static_assert(N == 64 || N == 128 || N == 256, "wg_mma: N is 64, 128 or 256");
    if constexpr (N == 64) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
                     "%32, %33, p, 1, 1, %35, %36;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                     : "l"(descA), "l"(descB), "r"(scaleD), "n"(TA), "n"(TB));
    }
    if constexpr (N == 128) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                     "%64, %65, p, 1, 1, %67, %68;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                     : "l"(descA), "l"(descB), "r"(scaleD), "n"(TA), "n"(TB));
    }
    if constexpr (N == 256) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63,"
                     "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79,"
                     "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95,"
                     "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111,"
                     "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
                     "%128, %129, p, 1, 1, %131, %132;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
                       "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
                       "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
                       "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
                       "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
                       "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
                       "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
                       "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
                       "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
                     : "l"(descA), "l"(descB), "r"(scaleD), "n"(TA), "n"(TB));
    }
}
// The same with A (64×16) from registers instead of shared memory: each warp of the group gives its 16 rows as
// mma.sync m16n8k16's A fragment (a[0] row g, k 2t and 2t+1; a[1] row g+8; a[2] row g, k 2t+8, +9; a[3] row g+8),
// so an accumulator tile of this or an earlier wgmma, rounded to bf16 pairs, feeds the next one without a trip
// through shared memory (flash attention's P and dS). Only B has a transpose bit.
template <int N, int TB>
__device__ __forceinline__ void wg_mma_rs(float (&d)[N / 2], const unsigned (&a)[4], unsigned long long descB, int scaleD) {
    static_assert(N == 128, "wg_mma_rs: N is 128");
    if constexpr (N == 128) {
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                     "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {"
                     "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
                     "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
                     "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
                     "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
                     "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                       "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                       "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                       "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
                       "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
                       "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
                       "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
                       "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(descB), "r"(scaleD), "n"(TB));
    }
}

// ---- Hopper: the tensor memory accelerator and mbarriers. An mbarrier (8 bytes of shared memory) completes a phase
// when its expected arrivals have arrived and the bytes of the TMA copies it was told to expect have landed; waiting
// names the phase by its parity (0, 1, 0, …), so a waiter never confuses one phase with the next.
__device__ __forceinline__ void mbar_init(unsigned long long* bar, unsigned arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(tc_smem_addr(bar)), "r"(arrivals) : "memory");
}

// After a block's mbar_inits, before the barrier that publishes them: the TMA unit (async proxy) sees them initialized.
__device__ __forceinline__ void mbar_init_fence() {
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

__device__ __forceinline__ void mbar_arrive(unsigned long long* bar) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.shared::cta.b64 st, [%0];\n}\n" ::"r"(tc_smem_addr(bar)) : "memory");
}

// One arrival that also tells the barrier to expect `bytes` more from TMA copies before the phase completes.
__device__ __forceinline__ void mbar_arrive_expect_tx(unsigned long long* bar, unsigned bytes) {
    asm volatile("{\n.reg .b64 st;\nmbarrier.arrive.expect_tx.shared::cta.b64 st, [%0], %1;\n}\n" ::"r"(tc_smem_addr(bar)), "r"(bytes)
                 : "memory");
}

// Waits until the phase of parity `parity` has completed. A wait that outlasts any kernel of ours (2^36 cycles, about
// half a minute) traps: the launch fails with an error instead of hanging the process on a barrier nothing will arrive at.
__device__ __forceinline__ void mbar_wait(unsigned long long* bar, unsigned parity) {
    const unsigned a = tc_smem_addr(bar);
    const long long start = clock64();
    for (;;) {
        unsigned done;
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(a), "r"(parity) : "memory");
        if (done) return;
        if (clock64() - start > (1LL << 36)) __trap();
    }
}

// TMA: the box of the tensor map at element coordinates (x inner, y outer) into shared memory at dst (laid out as the
// map's swizzle says; dst 1024-byte aligned for the 128-byte swizzle), its bytes counted on bar when they land.
__device__ __forceinline__ void tma_load_2d(void* dst, const TmaMap* map, int x, int y, unsigned long long* bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 ::"r"(tc_smem_addr(dst)), "l"(map), "r"(x), "r"(y), "r"(tc_smem_addr(bar)) : "memory");
}

// Moves registers between a block's warpgroups (all 128 threads of one run it together): a warpgroup that only
// issues copies gives some back, the ones holding accumulators take them.
template <int N>
__device__ __forceinline__ void wg_regs_release() {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
}

template <int N>
__device__ __forceinline__ void wg_regs_claim() {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
}
#endif // __CUDA_ARCH_FEAT_SM90_ALL
#endif
