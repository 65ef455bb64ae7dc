// What the simulated driver (cudasim.cpp) and a simulated kernel module (cudasim.h + a kernel source) share.
// A module is its own shared object, opened RTLD_LOCAL; it reaches the driver only through the SimApi the driver
// stores into it, and the driver points its __sim_cur at the CUDA thread it is about to run.
#pragma once

struct uint3 {
    unsigned x, y, z;
};

struct dim3 {
    unsigned x, y, z;
};

// One CUDA thread as a kernel sees it.
struct SimThread {
    uint3 threadIdx, blockIdx;
    dim3 blockDim, gridDim;
    unsigned char* dynamicShared; // this block's extern __shared__ memory
};

// Warp-wide and block-wide operations: each suspends the calling CUDA thread until the others it waits for arrive.
struct SimApi {
    int (*syncthreads)(int predicate);                                           // __syncthreads(_and)
    unsigned long long (*shfl)(unsigned mask, unsigned long long v, int arg, int mode, int width);
    void (*mma)(float* d, const unsigned* a, unsigned b0, unsigned b1);         // mma.sync m16n8k16 bf16 → f32
    void (*ldsm)(unsigned* r, const void* rowAddress, int trans);                // ldmatrix m8n8.x4(.trans) b16
    void (*fail)(const char* what);                                              // a kernel error: the launch fails
    void (*syncwarp)(unsigned mask);                                             // __syncwarp
    // cp.async: queued in the calling thread's open group; commit closes it; wait_group(n) lands every group but the
    // newest n (the latest a GPU may land them, so a read before its wait sees the old contents)
    void (*cpAsync)(void* dst, const void* src, int bytes);
    void (*cpCommit)();
    void (*cpWait)(int pending);
    // wgmma.mma_async m64nNk16 bf16 → f32 (d: the thread's N/2 accumulators), from descriptors of no-swizzle layouts
    // in dynamic shared memory; queued like cp.async and run at wgmma.wait_group (commit closes a group)
    void (*wgmma)(float* d, int n, unsigned long long descA, unsigned long long descB, int scaleD, int transA, int transB);
    void (*wgCommit)();
    void (*wgWait)(int pending);
    unsigned (*smemOffset)(const void* p);                                       // a descriptor's address: dynamic shared only
    // the same with A from registers: a, this thread's 4 registers of its warp's 16 rows (mma.sync's A fragment)
    void (*wgmmaRs)(float* d, int n, const unsigned* a, unsigned long long descB, int scaleD, int transB);
    // fence.proxy.async: this thread's shared-memory writes (stores, landed cp.async) made visible to wgmma's reads
    void (*fenceProxyAsync)();
    // wgmma.fence: this thread's register writes ordered before the wgmmas it issues next
    void (*wgFence)();
    // mbarriers (8 bytes of shared memory): init with the arrivals a phase expects; an arrival, with TMA bytes to
    // expect first (0: none); a wait until the phase of `parity` has completed (it suspends the thread meanwhile)
    void (*mbarInit)(void* bar, unsigned arrivals);
    void (*mbarArrive)(void* bar, unsigned expectBytes);
    void (*mbarWait)(void* bar, unsigned parity);
    // cp.async.bulk.tensor.2d: the box of the tensor map (cuTensorMapEncodeTiled's) at (x inner, y outer) into shared
    // memory at dst, its bytes counted on bar when they land (at issue in odd blocks, at a wait on bar in even ones)
    void (*tmaLoad2d)(void* dst, const void* map, int x, int y, void* bar);
};

enum { SIM_SHFL_IDX = 0, SIM_SHFL_XOR = 1, SIM_SHFL_DOWN = 2, SIM_SHFL_UP = 3 };
