// PTX wrappers of the tensor-core kernels (attention_tc_fwd.cu, attention_tc_bwd.cu, gemm.cu): bf16 packing,
// mma.sync m16n8k16, ldmatrix and cp.async, with the fragment layouts of the PTX ISA. Every inline PTX of the kernels
// is here and nowhere else: the CPU simulator (tensor/src/test/cudasim) defines NC4J_TENSORCORE and supplies its own.
#ifndef NC4J_TENSORCORE
#define NC4J_TENSORCORE

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

__device__ __forceinline__ void cp_async_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

__device__ __forceinline__ void cp_async_wait_all_but_one() {
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
}

__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");
}
#endif
