// cudasim: the CUDA driver API, NVRTC and cuBLAS as the CUDA backend calls them, run on the CPU — so the backend's
// Java, its launch configurations and the kernel sources themselves run in tests on a machine with no GPU. One shared
// object answers for all three libraries (scripts/cuda-sim-checks.sh links it as libcuda.so.1, libnvrtc.so and
// libcublas.so and points the backend at them).
//
// - "NVRTC" turns a kernel source into C++ (cudasim.h first; each extern "C" __global__ kernel gets a thunk that
//   unpacks cuLaunchKernel's parameters) and compiles it with g++ into a shared object, cached by a hash of the text;
//   the "PTX" it hands back is that C++ text, which cuModuleLoadData compiles again if its object is not cached.
// - A launch runs the grid one block at a time on the calling thread; each CUDA thread of a block is a fiber that
//   runs until it finishes or waits at a barrier (__syncthreads, a warp shuffle, mma.sync, ldmatrix). A warp
//   operation waits for exactly the lanes its mask names and fails the launch if one of them has exited or never
//   existed; a block none of whose threads can move is a deadlock, reported with where each thread waits. Odd blocks
//   run their threads in reverse order, so a race on a missing barrier shows whichever way it reads. A block larger
//   than the kernel's __launch_bounds__ is refused. A cp.async lands at its thread's wait_group in even blocks and at
//   issue in odd ones, the latest and the earliest a GPU may land it; a TMA copy (cp.async.bulk.tensor) lands at a
//   wait on its mbarrier in even blocks and at issue in odd ones, its bytes then counted on the mbarrier, whose phases
//   complete when their arrivals and bytes are in (a wait suspends the thread; a phase nothing completes is a
//   deadlock). A wgmma reads its operands when the last of its warpgroup's 128 threads issues it and computes at each
//   thread's wait_group; it fails the launch where a GPU would silently compute something else: a cp.async or TMA
//   copy into an operand a wgmma not yet waited for reads, an operand byte a cp.async or a store wrote that no
//   fence.proxy.async published to the async proxy, the first wgmma on accumulators with no wgmma.fence since the
//   thread's last wait that landed one, an operand changed before a wait for it, accumulators or register A fragments
//   written before the thread's own wait (the accumulators read as NaN meanwhile). Failures come back as
//   CUDA_ERROR_LAUNCH_FAILED (or _OUT_OF_RESOURCES) and
//   cuGetErrorString gives the reason; a fault in a kernel names the allocation it missed, and a misaligned load or
//   store (a GPU's CUDA_ERROR_MISALIGNED_ADDRESS: kernels are compiled with g++'s trapping alignment sanitizer) the
//   instruction.
// - Device memory is host memory filled with 0xFF bytes (NaN as fp32 and bf16) when allocated, and so is every
//   block's shared memory (dynamic and static) when the block starts, so a kernel that reads memory nothing wrote
//   shows NaN; each allocation sits between inaccessible pages; copies and memsets must lie inside one allocation.
// - cuBLAS multiplies in double from fp32 or bf16 operands (column-major, as cuBLAS), one output at a time.
// - Stream capture (CUDA graphs): a capturing stream records launches, cuBLAS calls, device copies and memsets, run
//   in order by cuGraphLaunch; a copy to or from the host or a wait for the stream inside a capture fails and
//   invalidates it, as on a GPU.
//
// Environment: NC4JSIM_CACHE (compiled kernels; default /tmp/nc4jsim-$UID), NC4JSIM_INCLUDE (cudasim.h's folder;
// default: the one this library was built from), NC4JSIM_MEMORY_MIB (the device's size, default 8192),
// NC4JSIM_DEVICES (0 simulates a machine without a GPU), NC4JSIM_CXX (default g++), NC4JSIM_TRACE (a file that gets
// a line per launch, GEMM, copy and graph launch: the work of a step counted).
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cudasim_abi.h"

#ifndef CUDASIM_INCLUDE
#define CUDASIM_INCLUDE "."
#endif

#define API extern "C" __attribute__((visibility("default")))

namespace {

enum : int {
    SUCCESS = 0, INVALID_VALUE = 1, OUT_OF_MEMORY = 2, INVALID_IMAGE = 200, INVALID_HANDLE = 400, NOT_FOUND = 500,
    INVALID_PTX = 218, LAUNCH_FAILED = 719, NO_DEVICE = 100, OUT_OF_RESOURCES = 701, ILLEGAL_STATE = 401,
    CAPTURE_UNSUPPORTED = 900, CAPTURE_INVALIDATED = 901
};

std::mutex g_lock;                 // one launch, copy or allocation at a time (the fibers' state is global)
std::string g_launchError;         // the last failed launch's reason, for cuGetErrorString(LAUNCH_FAILED)
thread_local std::string t_strings; // keeps a returned C string alive

std::string env(const char* name, const char* dflt) {
    const char* v = getenv(name);
    return v && *v ? v : dflt;
}

std::string format(const char* fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return buf;
}

// Stream capture (CUDA graphs). A capturing stream records what is queued on it — launches with their arguments
// copied, cuBLAS calls, device-to-device copies, memsets — instead of running it; a graph launch runs the record in
// order. What a GPU refuses to record fails the same way here and invalidates the capture: a copy to or from host
// memory, a wait for the capturing stream (CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED), so a caller that reads results
// inside a recorded step is caught without a GPU.
using Op = std::function<int()>;
struct Graph {
    std::vector<Op> ops;
};
struct Capture {
    std::vector<Op> ops;
    bool invalid = false;
};
std::map<void*, Capture> g_captures; // by stream, under g_lock

// The capture of stream, or null (g_lock held).
Capture* capturing(void* stream) {
    auto it = stream ? g_captures.find(stream) : g_captures.end();
    return it == g_captures.end() ? nullptr : &it->second;
}

// A call a capture cannot record: the capture is invalidated, the call fails (g_lock held).
int unsupportedInCapture(Capture* c, const char* what) {
    c->invalid = true;
    fprintf(stderr, "cudasim: %s on a capturing stream\n", what);
    return CAPTURE_UNSUPPORTED;
}

// NC4JSIM_TRACE=file: one line per launch, GEMM and copy (appended), so a caller's work per step can be counted
void trace(const char* fmt, ...) {
    static FILE* out = [] {
        std::string path = env("NC4JSIM_TRACE", "");
        return path.empty() ? nullptr : fopen(path.c_str(), "a");
    }();
    if (!out) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
    fputc('\n', out);
    fflush(out);
}

// ---------------------------------------------------------------------------------------------------- memory

// Each allocation has pages of its own with an inaccessible page on either side, its end flush with the upper one
// (its start 256-byte aligned, as cuMemAlloc's): a kernel that reads or writes past either end faults, and the fault
// handler below names the kernel, the thread and the allocation.
struct Alloc {
    size_t bytes;
    char* map;
    size_t mapBytes;
};
std::map<uintptr_t, Alloc> g_allocs;
size_t g_used = 0;
std::vector<std::pair<char*, char*>> g_sharedSections; // each loaded module's static __shared__ arrays

size_t deviceBytes() { return (size_t) std::stoull(env("NC4JSIM_MEMORY_MIB", "8192")) << 20; }
size_t pageBytes() { return (size_t) sysconf(_SC_PAGESIZE); }

// True when [p, p + n) lies inside one allocation.
bool inside(uintptr_t p, size_t n) {
    auto it = g_allocs.upper_bound(p);
    if (it == g_allocs.begin()) return false;
    --it;
    return p >= it->first && p + n <= it->first + it->second.bytes;
}

// Where address a lies, in words: in or near a device allocation, or a kernel module's static __shared__ arrays.
std::string describeAddress(uintptr_t a) {
    auto after = g_allocs.upper_bound(a);
    uintptr_t pastEnd = UINTPTR_MAX, before = UINTPTR_MAX;
    if (after != g_allocs.begin()) {
        auto it = std::prev(after);
        uintptr_t end = it->first + it->second.bytes;
        if (a < end) return format("inside the allocation of %zu bytes at 0x%lx, offset %lu", it->second.bytes, (unsigned long) it->first, (unsigned long) (a - it->first));
        pastEnd = a - end;
    }
    if (after != g_allocs.end()) before = after->first - a;
    for (auto [begin, end] : g_sharedSections) {
        if (a >= (uintptr_t) begin && a < (uintptr_t) end + pageBytes()) {
            Dl_info info;
            bool named = dladdr((void*) a, &info) && info.dli_sname;
            return format("not device memory: %s a kernel module's static __shared__ arrays (%s+%lu)", a < (uintptr_t) end ? "in" : "just past",
                          named ? info.dli_sname : "?", named ? (unsigned long) (a - (uintptr_t) info.dli_saddr) : 0ul);
        }
    }
    if (pastEnd <= before && pastEnd < (1u << 20)) {
        auto it = std::prev(after);
        return format("%lu bytes past the end of the allocation of %zu bytes at 0x%lx", (unsigned long) pastEnd, it->second.bytes, (unsigned long) it->first);
    }
    if (before < (1u << 20)) {
        return format("%lu bytes before the allocation of %zu bytes at 0x%lx", (unsigned long) before, after->second.bytes, (unsigned long) after->first);
    }
    return "not near any device allocation";
}

// ---------------------------------------------------------------------------------------------------- fibers

// A fiber's saved context. On x86-64 a switch saves the callee-saved registers on the fiber's stack and swaps stack
// pointers (ucontext's swapcontext makes a system call for the signal mask at every switch, and a block switches at
// every barrier of every thread); elsewhere it is ucontext.
#if defined(__x86_64__)
extern "C" void cudasim_switch(void** save, void* to);
asm(R"(
    .text
    .globl cudasim_switch
    .hidden cudasim_switch
    .type cudasim_switch, @function
cudasim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cudasim_switch, .-cudasim_switch
)");

struct Context {
    void* sp;
};

void switchContext(Context& save, Context& to) { cudasim_switch(&save.sp, to.sp); }

// A fresh stack whose first switch "returns" into entry, as if entry had been called (rsp ≡ 8 mod 16 on entry).
void makeContext(Context& c, char* stack, size_t bytes, void (*entry)()) {
    uintptr_t top = ((uintptr_t) stack + bytes) & ~(uintptr_t) 15;
    void** sp = (void**) top;
    *--sp = nullptr;         // entry's return address: it never returns
    *--sp = (void*) entry;   // where cudasim_switch's ret goes
    for (int i = 0; i < 6; i++) *--sp = nullptr; // r15 … rbp
    c.sp = sp;
}
#else
struct Context {
    ucontext_t uc;
};

void switchContext(Context& save, Context& to) { swapcontext(&save.uc, &to.uc); }

void makeContext(Context& c, char* stack, size_t bytes, void (*entry)()) {
    getcontext(&c.uc);
    c.uc.uc_stack.ss_sp = stack;
    c.uc.uc_stack.ss_size = bytes;
    c.uc.uc_link = nullptr;
    makecontext(&c.uc, entry, 0);
}
#endif

// An asynchronous copy (cp.async) or warpgroup MMA (wgmma.mma_async) a thread has issued and not yet waited for.
struct CopyOp {
    void* dst;
    const void* src;
    int bytes;
};
// The shared memory a warpgroup's wgmma reads, from its issue until the last of its 128 threads has waited for it:
// a cp.async into it meanwhile is a race (the GPU may land the copy before the tensor cores read). The operands are
// read when the last of the 128 threads issues it; each thread's wait checks that none changed since (a store by a
// thread that has not waited itself races with the tensor cores; the rule is as strict as the cp.async one).
struct WgmmaReads {
    int pending; // threads that have not yet waited for it
    std::vector<uint32_t> rows;   // the 16-byte core-matrix rows its operands lie in (offsets in dynamic shared memory, sorted)
    std::vector<uint16_t> a, b;   // A (64×16, empty when A is in registers) and B (N×16) as read, [row·16 + k]
    std::vector<unsigned char> bytes; // the rows' bytes as read
};
struct WgmmaOp {
    float* d;
    int n;
    unsigned long long descA, descB;
    int scaleD, transA, transB;
    std::shared_ptr<WgmmaReads> reads;
    // A from registers (wg_mma_rs): the 4 registers of each of the group's 128 threads as issued, else null
    std::shared_ptr<std::vector<unsigned>> regsA;
    const unsigned* regsAt; // where this thread's 4 are: they must keep their values until its wait
};

// Accumulators a thread's wgmmas own, from the first wgmma issued on them until the wait that lands the last: they
// hold kPoison meanwhile (a read shows as NaN, as a GPU's read of registers in flight gives garbage) and their values
// are kept here; anything but kPoison in them at the wait was written while the tensor cores owned them.
struct InFlight {
    float* d;
    int n;
    std::vector<float> values;
    int ops; // issued, not yet landed
};
const uint32_t kPoison = 0x7fc0deadu;

struct Fiber {
    Context ctx;
    SimThread t;
    bool done;
    int warp, lane;
    const char* waitingAt; // what a suspended thread waits for (for a deadlock's report)
    std::vector<std::vector<CopyOp>> copies; // committed groups, oldest first, then the open one (last)
    std::vector<std::vector<WgmmaOp>> wgmmas; // the same for wgmma
    std::vector<InFlight> inFlight;
    bool wgFenced; // a wgmma.fence since its last wgmma.wait_group that landed a group (or its start)
    std::vector<std::pair<uint32_t, int>> unfenced; // its landed cp.async copies into dynamic shared memory (offset, bytes) not fenced since
};

// The four warps of a warpgroup arriving at one wgmma.mma_async (it is .sync.aligned: all 128 threads, one operation).
struct WarpGroup {
    unsigned arrived = 0, gen = 0;
    WgmmaOp op{};
};

struct Warp {
    unsigned live;      // lanes that exist and have not exited
    unsigned mask;      // the mask of the operation lanes are arriving at
    const char* op;     // and which operation it is
    unsigned arrived;
    unsigned gen;
    unsigned long long slot[32][8];
    const void* ptr[32];
};

struct Launch {
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    std::vector<char*> stacks;
    size_t stackBytes = 0;
    Context sched;
    Fiber* cur = nullptr;
    int live = 0;
    int arrived = 0;
    unsigned gen = 0;
    int andAcc = 1, andRes[2] = {1, 1};
    unsigned long long progress = 0;
    std::string error;
    void (*thunk)(void**) = nullptr;
    void** params = nullptr;
    SimThread** curSlot = nullptr;
};

Launch g;
std::vector<WarpGroup> g_warpGroups; // of the block running
std::vector<std::shared_ptr<WgmmaReads>> g_wgmmaReads; // the block's wgmma operands not yet waited for by every thread
uintptr_t g_smemBegin, g_smemEnd; // the launch's dynamic shared memory
// The async proxy's view of dynamic shared memory (wgmma reads through it): the bytes as they were at the block's last
// fence.proxy.async. A byte a wgmma reads that differs from it was stored since by a plain store no fence published.
std::vector<unsigned char> g_asyncView;
// For each byte of dynamic shared memory, the thread (index + 1) whose cp.async landed there and which has not run
// fence.proxy.async since (0: none). A proxy fence orders its own thread's writes, so each thread fences its copies.
std::vector<int> g_unfencedBy;

// "thread (x,y,z) of block (x,y,z)", for an error's first words.
std::string threadName(const Fiber* f) {
    return format("thread (%u,%u,%u) of block (%u,%u,%u)", f->t.threadIdx.x, f->t.threadIdx.y, f->t.threadIdx.z, f->t.blockIdx.x,
                  f->t.blockIdx.y, f->t.blockIdx.z);
}

[[noreturn]] void failHere(const std::string& why) {
    Fiber* f = g.cur;
    if (g.error.empty()) g.error = threadName(f) + ": " + why;
    f->done = true;
    switchContext(f->ctx, g.sched);
    abort(); // never resumed
}

void yield(const char* what) {
    Fiber* f = g.cur;
    f->waitingAt = what;
    switchContext(f->ctx, g.sched);
    f->waitingAt = nullptr;
}

void releaseBlock() {
    g.andRes[g.gen & 1] = g.andAcc;
    g.andAcc = 1;
    g.arrived = 0;
    g.gen++;
}

int simSyncthreads(int predicate) {
    g.progress++;
    if (!predicate) g.andAcc = 0;
    unsigned gen = g.gen;
    if (++g.arrived >= g.live) releaseBlock();
    else while (g.gen == gen) yield("__syncthreads");
    return g.andRes[gen & 1];
}

// Waits until every lane of `mask` in this warp has arrived at an operation with the same mask.
void warpBarrier(unsigned mask, const char* what) {
    Fiber* f = g.cur;
    Warp& w = g.warps[f->warp];
    unsigned me = 1u << f->lane;
    if (!(mask & me)) failHere(format("%s with mask 0x%08x, which does not name the calling lane %d", what, mask, f->lane));
    if (mask & ~w.live) {
        failHere(format("%s with mask 0x%08x names lanes 0x%08x of warp %d that have exited or do not exist", what, mask,
                        mask & ~w.live, f->warp));
    }
    if (w.arrived == 0) {
        w.mask = mask;
        w.op = what;
    } else if (w.mask != mask || strcmp(w.op, what) != 0) {
        failHere(format("%s with mask 0x%08x while lanes 0x%08x wait at %s with mask 0x%08x (one pending warp operation at a time)", what,
                        mask, w.arrived, w.op, w.mask));
    }
    g.progress++;
    w.arrived |= me;
    unsigned gen = w.gen;
    if (w.arrived == w.mask) {
        w.arrived = 0;
        w.gen++;
    } else {
        while (w.gen == gen) yield(what);
    }
}

unsigned long long simShfl(unsigned mask, unsigned long long v, int arg, int mode, int width) {
    Fiber* f = g.cur;
    Warp& w = g.warps[f->warp];
    if (width <= 0 || width > 32 || (width & (width - 1))) failHere(format("shfl with width %d", width));
    w.slot[f->lane][0] = v;
    warpBarrier(mask, "__shfl_sync");
    int lane = f->lane, base = lane & ~(width - 1), src = lane;
    switch (mode) {
        case SIM_SHFL_IDX: src = base + (((arg % width) + width) % width); break;
        case SIM_SHFL_XOR: src = lane ^ (arg & 31); if (src > base + width - 1) src = lane; break; // shfl.bfly: j <= maxLane
        case SIM_SHFL_DOWN: src = lane - base + arg < width ? lane + arg : lane; break;
        case SIM_SHFL_UP: src = lane - base - arg >= 0 ? lane - arg : lane; break;
    }
    if (src < 0 || src > 31 || !(mask & (1u << src))) failHere(format("shfl reads lane %d, outside its mask 0x%08x", src, mask));
    unsigned long long r = w.slot[src][0];
    warpBarrier(mask, "__shfl_sync");
    return r;
}

float bf16(unsigned bits16) {
    unsigned u = (bits16 & 0xffffu) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, fragments per the PTX ISA: lane L = 4g + t holds A's rows g and
// g+8 at k 2t,2t+1 (a0, a1) and 8+2t,9+2t (a2, a3); B's column g at k 2t,2t+1 (b0) and 8+2t,9+2t (b1); D's rows g, g+8
// at columns 2t, 2t+1. The lower half of a register is the lower k.
void simMma(float* d, const unsigned* a, unsigned b0, unsigned b1) {
    Fiber* f = g.cur;
    Warp& w = g.warps[f->warp];
    for (int i = 0; i < 4; i++) w.slot[f->lane][i] = a[i];
    w.slot[f->lane][4] = b0;
    w.slot[f->lane][5] = b1;
    warpBarrier(0xffffffffu, "mma.sync");
    auto A = [&](int row, int k) {
        int gg = row & 7, reg = (row >= 8 ? 1 : 0) + (k >= 8 ? 2 : 0), kk = k & 7;
        unsigned r = (unsigned) w.slot[gg * 4 + kk / 2][reg];
        return bf16(kk & 1 ? r >> 16 : r);
    };
    auto B = [&](int k, int col) {
        int kk = k & 7;
        unsigned r = (unsigned) w.slot[col * 4 + kk / 2][k >= 8 ? 5 : 4];
        return bf16(kk & 1 ? r >> 16 : r);
    };
    int gq = f->lane >> 2, t = f->lane & 3;
    float out[4];
    for (int e = 0; e < 4; e++) {
        int row = gq + (e >= 2 ? 8 : 0), col = 2 * t + (e & 1);
        double s = d[e];
        for (int k = 0; k < 16; k++) s += (double) A(row, k) * (double) B(k, col);
        out[e] = (float) s;
    }
    warpBarrier(0xffffffffu, "mma.sync");
    for (int e = 0; e < 4; e++) d[e] = out[e];
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lanes 8m..8m+7 give the 16-byte rows of matrix m; lane L gets
// row L/4, columns 2(L%4), +1 of each (with .trans: column L/4, rows 2(L%4), +1).
void simLdsm(unsigned* r, const void* p, int trans) {
    Fiber* f = g.cur;
    Warp& w = g.warps[f->warp];
    if ((uintptr_t) p & 15u) failHere("ldmatrix: a row address not 16-byte aligned");
    w.ptr[f->lane] = p;
    warpBarrier(0xffffffffu, "ldmatrix");
    int L = f->lane;
    unsigned out[4];
    for (int m = 0; m < 4; m++) {
        if (!trans) {
            const uint16_t* row = (const uint16_t*) w.ptr[8 * m + L / 4];
            out[m] = row[2 * (L % 4)] | ((unsigned) row[2 * (L % 4) + 1] << 16);
        } else {
            const uint16_t* r0 = (const uint16_t*) w.ptr[8 * m + 2 * (L % 4)];
            const uint16_t* r1 = (const uint16_t*) w.ptr[8 * m + 2 * (L % 4) + 1];
            out[m] = r0[L / 4] | ((unsigned) r1[L / 4] << 16);
        }
    }
    warpBarrier(0xffffffffu, "ldmatrix");
    for (int m = 0; m < 4; m++) r[m] = out[m];
}

void simFail(const char* what) { failHere(what); }

void simSyncwarp(unsigned mask) { warpBarrier(mask, "__syncwarp"); }

template <class Op> std::vector<Op>& openGroup(std::vector<std::vector<Op>>& groups) {
    if (groups.empty()) groups.emplace_back();
    return groups.back();
}

// Lands every committed group but the newest `pending` (the open group is not committed: a wait leaves it alone).
template <class Op, class Run> void landGroups(std::vector<std::vector<Op>>& groups, int pending, Run run) {
    if (pending < 0) failHere(format("wait_group %d", pending));
    size_t committed = groups.empty() ? 0 : groups.size() - 1;
    size_t land = committed > (size_t) pending ? committed - pending : 0;
    for (size_t i = 0; i < land; i++) for (const Op& op : groups[i]) run(op);
    groups.erase(groups.begin(), groups.begin() + land);
}

// Where a block's cp.async copies land: at the issuing thread's wait_group in even blocks (as late as a GPU may: a read
// before the wait sees the old bytes), at issue in odd ones (as early as it may: a refill of a stage that another warp
// has not finished reading, for want of a barrier before it, changes what that warp reads).
bool g_landAtIssue = false;

// Lands a copy of the current thread's; in dynamic shared memory, its bytes are the thread's, unfenced.
void landCopy(const CopyOp& op) {
    memcpy(op.dst, op.src, op.bytes);
    uintptr_t a = (uintptr_t) op.dst;
    if (a < g_smemBegin || a >= g_smemEnd) return;
    uint32_t off = (uint32_t) (a - g_smemBegin);
    int me = (int) (g.cur - g.fibers.data()) + 1;
    for (int i = 0; i < op.bytes; i++) g_unfencedBy[off + i] = me;
    g.cur->unfenced.emplace_back(off, op.bytes);
}

void simCpAsync(void* dst, const void* src, int bytes) {
    uintptr_t a = (uintptr_t) dst;
    // a copy (4 or 16 bytes, aligned) lies in one 16-byte row
    uint32_t row = (uint32_t) (a - g_smemBegin) & ~15u;
    for (const auto& r : g_wgmmaReads) {
        if (a >= g_smemBegin && a < g_smemEnd && std::binary_search(r->rows.begin(), r->rows.end(), row)) {
            failHere(format("cp.async into byte %lu of dynamic shared memory, which a wgmma not yet waited for by %d threads still reads "
                            "(wait_group first)", (unsigned long) (a - g_smemBegin), r->pending));
        }
    }
    if (g_landAtIssue) {
        landCopy(CopyOp{dst, src, bytes});
        openGroup(g.cur->copies); // the group still counts for wait_group
    } else {
        openGroup(g.cur->copies).push_back(CopyOp{dst, src, bytes});
    }
}
void simCpCommit() {
    std::vector<std::vector<CopyOp>>& c = g.cur->copies;
    openGroup(c);
    c.emplace_back();
}
void simCpWait(int pending) {
    landGroups(g.cur->copies, pending, landCopy);
}

void simFenceProxyAsync() {
    Fiber* f = g.cur;
    int me = (int) (f - g.fibers.data()) + 1;
    for (auto [off, bytes] : f->unfenced) {
        for (int i = 0; i < bytes; i++) if (g_unfencedBy[off + i] == me) g_unfencedBy[off + i] = 0;
    }
    f->unfenced.clear();
    if (!g_asyncView.empty()) memcpy(g_asyncView.data(), (const void*) g_smemBegin, g_asyncView.size());
}

void simWgFence() { g.cur->wgFenced = true; }

unsigned simSmemOffset(const void* p) {
    uintptr_t a = (uintptr_t) p;
    if (a < g_smemBegin || a >= g_smemEnd) failHere("a wgmma descriptor's address outside the block's dynamic shared memory (the simulator reads descriptors there only)");
    return (unsigned) (a - g_smemBegin);
}

// The 128-byte swizzle (TMA's CU_TENSOR_MAP_SWIZZLE_128B, a wgmma descriptor's layout type 1), a function of the shared
// memory address: in each 128-byte row, 16-byte chunk c is stored at chunk c ^ (row % 8), rows counted in 128 bytes.
uint32_t swizzle128(uint32_t off) { return off ^ (((off >> 7) & 7) << 4); }

// A wgmma operand as its descriptor gives it, in the canonical layouts of the PTX ISA (CUTLASS's make_gmma_desc):
// - no swizzle (layout type 0, "interleaved"), 8×16-byte core matrices: K-major (transpose 0), a core matrix's 16-byte
//   rows run along K, and MN-major (transpose 1), along M or N; in both the leading byte offset steps between core
//   matrices along K and the stride byte offset between them along M or N;
// - 128-byte swizzle (layout type 1): K-major, rows of 128 bytes along K, 8-row groups a stride byte offset apart (the
//   leading one unused); MN-major, 128-byte rows of 64 M/N elements, one a k, 8-k groups a stride byte offset apart and
//   the next 64 M/N a leading byte offset on. The address so computed is then swizzled (swizzle128).
struct WgmmaOperand {
    size_t start, lbo, sbo;
    int trans, swizzle;
    const char* which;

    WgmmaOperand(unsigned long long desc, int transpose, const char* name) : trans(transpose), which(name) {
        start = (desc & 0x3fff) << 4;
        lbo = ((desc >> 16) & 0x3fff) << 4;
        sbo = ((desc >> 32) & 0x3fff) << 4;
        int baseOffset = (int) ((desc >> 49) & 7);
        swizzle = (int) (desc >> 62);
        if ((swizzle != 0 && swizzle != 1) || baseOffset != 0) {
            failHere(format("wgmma: %s's descriptor asks for layout type %d, base offset %d; the simulator reads the no-swizzle and "
                            "128-byte swizzle layouts (1) with base offset 0 only", which, swizzle, baseOffset));
        }
    }

    // The byte offset of element (mn, k) in dynamic shared memory.
    uint32_t at(int mn, int k) const {
        size_t off;
        if (swizzle == 0) off = start + (size_t) (mn / 8) * sbo + (size_t) (k / 8) * lbo + (trans ? (k % 8) * 16 + (mn % 8) * 2 : (mn % 8) * 16 + (k % 8) * 2);
        else if (!trans) off = start + (size_t) (mn / 8) * sbo + (mn % 8) * 128 + k * 2;
        else off = start + (size_t) (mn / 64) * lbo + (mn % 64) * 2 + (size_t) (k / 8) * sbo + (k % 8) * 128;
        if (swizzle == 1) off = swizzle128((uint32_t) off);
        if (off + 2 > g_smemEnd - g_smemBegin) {
            failHere(format("wgmma: %s(%d, %d) at byte %zu of %zu bytes of dynamic shared memory", which, mn, k, off,
                            (size_t) (g_smemEnd - g_smemBegin)));
        }
        return (uint32_t) off;
    }

    // Adds the 16-byte rows that rows × 16 elements lie in to `out`.
    void rowsOf(int rows, std::vector<uint32_t>& out) const {
        for (int mn = 0; mn < rows; mn++) {
            for (int k = 0; k < 16; k++) out.push_back(at(mn, k) & ~15u); // the caller sorts them and drops repeats
        }
    }

    // Reads rows × 16 elements as the tensor cores do at issue, through the async proxy: each byte must have been
    // published to it (a cp.async by a fence.proxy.async of its own thread; a store by one since it).
    void read(int rows, std::vector<uint16_t>& v) const {
        v.resize(16 * rows);
        const unsigned char* live = (const unsigned char*) g_smemBegin;
        for (int mn = 0; mn < rows; mn++) {
            for (int k = 0; k < 16; k++) {
                uint32_t off = at(mn, k);
                for (uint32_t b = off; b < off + 2; b++) {
                    if (g_unfencedBy[b]) {
                        const Fiber& w = g.fibers[g_unfencedBy[b] - 1];
                        failHere(format("wgmma: %s(%d, %d) at byte %u of dynamic shared memory was written by a cp.async of %s, which has "
                                        "not run fence.proxy.async since it landed (the tensor cores read through the async proxy: "
                                        "wait_group, then the fence, then the barrier)",
                                        which, mn, k, b, threadName(&w).c_str()));
                    }
                    if (live[b] != g_asyncView[b]) {
                        failHere(format("wgmma: %s(%d, %d) at byte %u of dynamic shared memory was stored to after the block's last "
                                        "fence.proxy.async (the tensor cores read through the async proxy: store, fence, barrier)",
                                        which, mn, k, b));
                    }
                }
                memcpy(&v[16 * mn + k], live + off, 2);
            }
        }
    }
};

// Keeps the bytes of the 16-byte rows a wgmma reads, as it reads them.
void keepRows(WgmmaReads& r) {
    r.bytes.resize(16 * r.rows.size());
    for (size_t i = 0; i < r.rows.size(); i++) memcpy(&r.bytes[16 * i], (const char*) g_smemBegin + r.rows[i], 16);
}

// A thread's wait for a wgmma: the shared memory it read at issue must be as it was (a store or a copy into it while
// the tensor cores may still be reading is a race the GPU resolves either way).
void checkUnchanged(const WgmmaReads& r) {
    const unsigned char* live = (const unsigned char*) g_smemBegin;
    for (size_t i = 0; i < r.rows.size(); i++) {
        if (memcmp(live + r.rows[i], &r.bytes[16 * i], 16) != 0) {
            failHere(format("wgmma: the operand bytes %u…%u of dynamic shared memory changed between the wgmma's issue and this "
                            "thread's wait_group for it (a store or copy into an operand the tensor cores may still read)",
                            r.rows[i], r.rows[i] + 15));
        }
    }
}

InFlight* findInFlight(Fiber* f, const float* d) {
    for (InFlight& x : f->inFlight) if (x.d == d) return &x;
    return nullptr;
}

void poison(float* d, int count) {
    for (int e = 0; e < count; e++) memcpy(&d[e], &kPoison, 4);
}

// D (64×N, fp32) = A (64×16) · B (16×N) [+ D]. Each thread owns N/2 of D's elements, as mma.sync's accumulators per
// warp: warp w of the group holds rows 16w…16w+15; lane L = 4g + t holds, for each 8 columns j, rows g and g+8 at
// columns 8j + 2t, +1 (d[4j … 4j+3]).
void runWgmma(const WgmmaOp& op) {
    checkUnchanged(*op.reads);
    if (--op.reads->pending == 0) {
        for (size_t i = 0; i < g_wgmmaReads.size(); i++) {
            if (g_wgmmaReads[i] == op.reads) {
                g_wgmmaReads.erase(g_wgmmaReads.begin() + i);
                break;
            }
        }
    }
    Fiber* f = g.cur;
    int w = f->warp % 4, gq = f->lane >> 2, t = f->lane & 3;
    float a[2][16]; // this thread's two rows of A
    if (op.regsA) {
        const unsigned* issued = op.regsA->data() + 4 * (32 * w + f->lane);
        if (memcmp(op.regsAt, issued, 4 * sizeof(unsigned)) != 0) {
            failHere("wgmma: its A registers (wg_mma_rs) changed between its issue and this thread's wait_group (the tensor cores "
                     "read them until the wait)");
        }
        // row 16w + gq + 8h, k: in lane 4gq + (k % 8) / 2 of warp w, register h + 2(k / 8), the half k % 2
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 16; k++) {
                unsigned r = (*op.regsA)[4 * (32 * w + 4 * gq + (k % 8) / 2) + h + 2 * (k / 8)];
                a[h][k] = bf16((uint16_t) (r >> (16 * (k % 2))));
            }
        }
    } else {
        for (int h = 0; h < 2; h++) {
            for (int k = 0; k < 16; k++) a[h][k] = bf16(op.reads->a[16 * (16 * w + gq + 8 * h) + k]);
        }
    }
    InFlight* acc = findInFlight(f, op.d);
    for (int e = 0; e < op.n / 2; e++) {
        uint32_t bits;
        memcpy(&bits, &op.d[e], 4);
        if (bits != kPoison) {
            failHere(format("wgmma: accumulator %d (of %d) was written between the wgmma's issue and this thread's wait_group "
                            "(the tensor cores own the accumulators until the wait)", e, op.n / 2));
        }
    }
    const std::vector<uint16_t>& b = op.reads->b;
    for (int e = 0; e < op.n / 2; e++) {
        int h = (e >> 1) & 1, col = 8 * (e >> 2) + 2 * t + (e & 1);
        double s = op.scaleD ? acc->values[e] : 0.0;
        for (int k = 0; k < 16; k++) s += (double) a[h][k] * (double) bf16(b[16 * col + k]);
        acc->values[e] = (float) s;
    }
    if (--acc->ops > 0) return; // the accumulators stay the tensor cores' (poisoned) until the last wgmma on them lands
    memcpy(op.d, acc->values.data(), 4 * (size_t) (op.n / 2));
    f->inFlight.erase(f->inFlight.begin() + (acc - f->inFlight.data()));
}

// Issues a wgmma (regsA: this thread's 4 registers of A, or null when A is in shared memory).
void issueWgmma(float* d, int n, unsigned long long descA, const unsigned* regsA, unsigned long long descB, int scaleD, int transA,
                int transB) {
    Fiber* f = g.cur;
    int q = f->warp / 4;
    if (n < 8 || n > 256 || n % 8) failHere(format("wgmma m64n%dk16: N must be a multiple of 8 in 8…256", n));
    for (int w = 4 * q; w < 4 * q + 4; w++) {
        if (w >= (int) g.warps.size() || g.warps[w].live != 0xffffffffu) {
            failHere(format("wgmma needs all 128 threads of warpgroup %d (warps %d…%d); warp %d has lanes 0x%08x", q, 4 * q, 4 * q + 3, w,
                            w < (int) g.warps.size() ? g.warps[w].live : 0u));
        }
    }
    // The accumulators: the same as a wgmma in flight's (its shape too: the hardware orders those), or new ones, which
    // need a wgmma.fence after this thread's last access of its registers (the simulator takes its last wait that
    // landed a group as where those begin: it reads or writes the accumulators that wait finished).
    InFlight* acc = findInFlight(f, d);
    if (acc && acc->n != n) failHere(format("wgmma m64n%dk16 on accumulators an m64n%dk16 in flight owns", n, acc->n));
    if (!acc) {
        for (const InFlight& x : f->inFlight) {
            if (d < x.d + x.n / 2 && x.d < d + n / 2) failHere("wgmma on accumulators that overlap another wgmma's in flight");
        }
        if (!f->wgFenced) {
            failHere("wgmma without a wgmma.fence (wg_fence) since this thread's last wgmma.wait_group that landed a group, or "
                     "its start: the tensor cores may read its registers before the writes to them land");
        }
    }
    WgmmaOp op{d, n, descA, descB, scaleD, transA, transB, nullptr, nullptr, regsA};
    WarpGroup& wg = g_warpGroups[q];
    if (wg.arrived == 0) {
        // the rows of shared memory it reads, from the first thread's issue on (every thread gives the same descriptors)
        auto reads = std::make_shared<WgmmaReads>();
        WgmmaOperand(descB, transB, "B").rowsOf(n, reads->rows);
        if (!regsA) WgmmaOperand(descA, transA, "A").rowsOf(64, reads->rows);
        std::sort(reads->rows.begin(), reads->rows.end());
        reads->rows.erase(std::unique(reads->rows.begin(), reads->rows.end()), reads->rows.end());
        reads->pending = 128;
        g_wgmmaReads.push_back(reads);
        wg.op = op;
        wg.op.reads = reads;
        if (regsA) wg.op.regsA = std::make_shared<std::vector<unsigned>>(512);
    } else if (wg.op.n != n || wg.op.descA != descA || wg.op.descB != descB || wg.op.scaleD != scaleD || wg.op.transA != transA
               || wg.op.transB != transB || (wg.op.regsA != nullptr) != (regsA != nullptr)) {
        failHere(format("wgmma: the threads of warpgroup %d disagree (n %d/%d, A 0x%llx/0x%llx, B 0x%llx/0x%llx, scale-d %d/%d)", q, n,
                        wg.op.n, descA, wg.op.descA, descB, wg.op.descB, scaleD, wg.op.scaleD));
    }
    op.reads = wg.op.reads; // now: once released, the first thread on may issue the next wgmma, which replaces wg.op
    op.regsA = wg.op.regsA;
    if (regsA) memcpy(op.regsA->data() + 4 * (32 * (f->warp % 4) + f->lane), regsA, 4 * sizeof(unsigned));
    g.progress++;
    unsigned gen = wg.gen;
    if (++wg.arrived == 128) {
        // every thread of the warpgroup has issued it: the tensor cores read the operands now
        WgmmaOperand(descB, transB, "B").read(n, op.reads->b);
        if (!regsA) WgmmaOperand(descA, transA, "A").read(64, op.reads->a);
        keepRows(*op.reads);
        wg.arrived = 0;
        wg.gen++;
    } else {
        while (wg.gen == gen) yield("wgmma.mma_async");
    }
    acc = findInFlight(f, d);
    if (acc) {
        acc->ops++;
    } else {
        f->inFlight.push_back(InFlight{d, n, std::vector<float>(d, d + n / 2), 1});
        poison(d, n / 2);
    }
    openGroup(f->wgmmas).push_back(op);
}
void simWgmma(float* d, int n, unsigned long long descA, unsigned long long descB, int scaleD, int transA, int transB) {
    issueWgmma(d, n, descA, nullptr, descB, scaleD, transA, transB);
}
void simWgmmaRs(float* d, int n, const unsigned* a, unsigned long long descB, int scaleD, int transB) {
    issueWgmma(d, n, 0, a, descB, scaleD, 0, transB);
}
void simWgCommit() {
    std::vector<std::vector<WgmmaOp>>& c = g.cur->wgmmas;
    openGroup(c);
    c.emplace_back();
}
void simWgWait(int pending) {
    size_t groups = g.cur->wgmmas.size();
    landGroups(g.cur->wgmmas, pending, runWgmma);
    if (g.cur->wgmmas.size() < groups) g.cur->wgFenced = false; // it reads or writes what the landed wgmmas wrote next
}

// ---- TMA and mbarriers

// What cuTensorMapEncodeTiled writes into the 128 opaque bytes of a CUtensorMap here (a GPU's encoding is its own).
struct SimTensorMap {
    uint64_t magic;
    uint64_t address;
    uint64_t dims[2];   // elements: inner, outer
    uint64_t stride;    // bytes between outer rows
    uint32_t box[2];    // elements: inner, outer
    uint32_t elemBytes;
    uint32_t swizzle;   // CUtensorMapSwizzle: 0 none, 3 128-byte
};
static_assert(sizeof(SimTensorMap) <= 128, "a CUtensorMap is 128 bytes");
const uint64_t kTensorMapMagic = 0x70616d726f736e74ull; // "tnsormap"

// A TMA copy issued and not yet landed: the box, whose bytes its mbarrier counts when it lands.
struct TmaOp {
    unsigned char* dst;
    SimTensorMap map;
    int x, y;
};

// An mbarrier: the arrivals a phase expects and those still missing, the TMA bytes still expected (the arrivals'
// expect_tx minus what landed), the phase (completed phases so far), and the copies that count on it not yet landed.
struct MBar {
    unsigned expected, pending;
    long long tx;
    unsigned phase;
    std::vector<TmaOp> queued;
};
std::map<uintptr_t, MBar> g_mbars; // the block's, by address

MBar& mbarAt(void* bar, const char* op) {
    auto it = g_mbars.find((uintptr_t) bar);
    if (it == g_mbars.end()) {
        failHere(format("%s on %s, which is no initialized mbarrier (mbarrier.init first, and a barrier before other threads use it)", op,
                        describeAddress((uintptr_t) bar).c_str()));
    }
    return it->second;
}

// A phase completes when every expected arrival has come and every expected byte has landed.
void mbarMaybeComplete(MBar& b) {
    if (b.pending == 0 && b.tx == 0) {
        b.phase++;
        b.pending = b.expected;
        g.progress++;
    }
}

void simMbarInit(void* bar, unsigned arrivals) {
    uintptr_t a = (uintptr_t) bar;
    if (a < g_smemBegin || a + 8 > g_smemEnd || (a & 7)) {
        failHere(format("mbarrier.init at %s: the simulator keeps mbarriers in dynamic shared memory, 8-byte aligned",
                        describeAddress(a).c_str()));
    }
    if (arrivals == 0 || arrivals >= (1u << 20)) failHere(format("mbarrier.init with %u arrivals (1 … 2^20-1)", arrivals));
    auto it = g_mbars.find(a);
    if (it != g_mbars.end() && !it->second.queued.empty()) failHere("mbarrier.init on an mbarrier TMA copies still count on");
    g_mbars[a] = MBar{arrivals, arrivals, 0, 0, {}};
}

void simMbarArrive(void* bar, unsigned expectBytes) {
    MBar& b = mbarAt(bar, expectBytes ? "mbarrier.arrive.expect_tx" : "mbarrier.arrive");
    g.progress++;
    b.tx += expectBytes;
    if (b.pending == 0) failHere(format("mbarrier.arrive: more arrivals than the %u a phase of this mbarrier expects", b.expected));
    b.pending--;
    mbarMaybeComplete(b);
}

// Lands a TMA copy: the box (zeros outside the tensor, as TMA fills them) into shared memory, row after row of the box
// inner·element bytes, swizzled if the map says so. The swizzle moves whole 16-byte chunks (box rows are 16-byte
// multiples), so a chunk is checked and copied at once. The async proxy writes it, so no proxy fence is needed before
// a wgmma reads it; a write into rows that a wgmma not yet waited for reads is a race.
void landTma(const TmaOp& op, MBar& b) {
    const SimTensorMap& m = op.map;
    uint32_t rowBytes = m.box[0] * m.elemBytes, bytes = rowBytes * m.box[1], perChunk = 16 / m.elemBytes;
    uint32_t base = (uint32_t) ((uintptr_t) op.dst - g_smemBegin);
    unsigned char* live = (unsigned char*) g_smemBegin;
    for (uint32_t r = 0; r < m.box[1]; r++) {
        for (uint32_t c = 0; c < rowBytes / 16; c++) {
            uint32_t off = base + r * rowBytes + 16 * c;
            if (m.swizzle == 3) off = swizzle128(off);
            for (const auto& w : g_wgmmaReads) {
                if (std::binary_search(w->rows.begin(), w->rows.end(), off)) {
                    failHere(format("TMA copy into byte %u of dynamic shared memory, which a wgmma not yet waited for by %d threads still "
                                    "reads (the stage was refilled before every consumer released it)", off, w->pending));
                }
            }
            for (uint32_t e = 0; e < perChunk; e++) {
                long long gx = (long long) op.x + c * perChunk + e, gy = (long long) op.y + r;
                unsigned char* to = live + off + e * m.elemBytes;
                if (gx < 0 || gy < 0 || (uint64_t) gx >= m.dims[0] || (uint64_t) gy >= m.dims[1]) {
                    memset(to, 0, m.elemBytes);
                    continue;
                }
                const char* src = (const char*) m.address + gy * m.stride + gx * m.elemBytes;
                if (!inside((uintptr_t) src, m.elemBytes)) {
                    failHere(format("TMA copy reads element (%lld, %lld) of its tensor map at %s", gx, gy, describeAddress((uintptr_t) src).c_str()));
                }
                memcpy(to, src, m.elemBytes);
            }
            memcpy(g_asyncView.data() + off, live + off, 16);
            memset(&g_unfencedBy[off], 0, 16 * sizeof(int));
        }
    }
    g.progress++;
    b.tx -= bytes;
    mbarMaybeComplete(b);
}

void simTmaLoad2d(void* dst, const void* mapPtr, int x, int y, void* bar) {
    SimTensorMap m;
    memcpy(&m, mapPtr, sizeof m);
    if (m.magic != kTensorMapMagic) failHere("cp.async.bulk.tensor: its tensor map was not written by cuTensorMapEncodeTiled");
    MBar& b = mbarAt(bar, "cp.async.bulk.tensor");
    uintptr_t a = (uintptr_t) dst;
    uint32_t bytes = m.box[0] * m.box[1] * m.elemBytes;
    uint32_t align = m.swizzle == 3 ? 1024 : 128;
    if (a < g_smemBegin || a + bytes > g_smemEnd || (a - g_smemBegin) % align) {
        failHere(format("cp.async.bulk.tensor: its %u-byte box at byte %lld of the block's %lu bytes of dynamic shared memory (it must "
                        "lie inside, %u-byte aligned)", bytes, (long long) (a - g_smemBegin), (unsigned long) (g_smemEnd - g_smemBegin), align));
    }
    TmaOp op{(unsigned char*) dst, m, x, y};
    if (g_landAtIssue) landTma(op, b);
    else b.queued.push_back(op);
}

void simMbarWait(void* bar, unsigned parity) {
    for (;;) {
        MBar& b = mbarAt(bar, "mbarrier.try_wait");
        if ((b.phase & 1) != (parity & 1)) return; // the phase of that parity has completed
        if (!b.queued.empty()) {
            std::vector<TmaOp> q;
            q.swap(b.queued);
            for (const TmaOp& op : q) landTma(op, b);
            continue;
        }
        yield("mbarrier.try_wait");
    }
}

const SimApi g_api = {simSyncthreads, simShfl, simMma, simLdsm, simFail, simSyncwarp, simCpAsync, simCpCommit, simCpWait,
                      simWgmma, simWgCommit, simWgWait, simSmemOffset, simWgmmaRs, simFenceProxyAsync, simWgFence,
                      simMbarInit, simMbarArrive, simMbarWait, simTmaLoad2d};

void fiberMain() {
    Fiber* f = g.cur;
    g.thunk(g.params);
    f->done = true;
    g.progress++;
    g.live--;
    Warp& w = g.warps[f->warp];
    w.live &= ~(1u << f->lane);
    if (g.arrived > 0 && g.arrived >= g.live) releaseBlock();
    switchContext(f->ctx, g.sched); // never resumed
    abort();
}

// A fault on the thread running a launch ends the launch with a description of the address (SIGILL: a misaligned
// access, trapped by the kernels' -fsanitize=alignment); any other fault goes to the handler that was there before
// (the JVM's: it uses SIGSEGV itself). The handler runs on its own stack, so a
// fiber's stack overflow is reported too.
// The thread running a launch (under g_lock), read by the handler without thread-local storage (a dlopened
// library's TLS may allocate on first use, which a signal handler must not).
volatile bool g_launching = false;
pthread_t g_launchThread;
struct sigaction g_prevSegv, g_prevBus, g_prevIll;
char g_altStack[1 << 16];
sigset_t g_launchMask; // the launching thread's signal mask, put back after a fault abandons the handler

void onFault(int sig, siginfo_t* si, void* uc) {
    if (g_launching && pthread_equal(pthread_self(), g_launchThread) && g.cur && !g.cur->done) {
        uintptr_t a = (uintptr_t) si->si_addr;
        bool stack = false;
        for (char* s : g.stacks) if (a >= (uintptr_t) s - pageBytes() && a < (uintptr_t) s) stack = true;
        if (g.error.empty()) {
            Fiber* f = g.cur;
#if defined(__x86_64__)
            uintptr_t pc = (uintptr_t) ((ucontext_t*) uc)->uc_mcontext.gregs[REG_RIP];
#elif defined(__aarch64__)
            uintptr_t pc = (uintptr_t) ((ucontext_t*) uc)->uc_mcontext.pc;
#else
            uintptr_t pc = 0;
#endif
            Dl_info info;
            std::string where = dladdr((void*) pc, &info) && info.dli_fname
                    ? format("%s+0x%lx (%s; addr2line -Cfe on it gives the line)", info.dli_sname ? info.dli_sname : "?",
                             (unsigned long) (pc - (uintptr_t) info.dli_fbase), info.dli_fname)
                    : format("0x%lx", (unsigned long) pc);
            if (sig == SIGILL) { // ud2 of -fsanitize=alignment: the only trap in a kernel's code
                g.error = threadName(f) + format(": misaligned access (a load or store of a type at an address not a multiple of its "
                                                 "alignment: CUDA_ERROR_MISALIGNED_ADDRESS on a GPU); in %s", where.c_str());
            } else {
                g.error = threadName(f) + format(": %s at 0x%lx, %s; in %s", sig == SIGBUS ? "bus error" : "invalid memory access",
                             (unsigned long) a, stack ? "the end of its stack (NC4JSIM_STACK_KIB)"
                             : a >= g_smemEnd && a < g_smemEnd + pageBytes()
                                     ? format("%lu bytes past the end of the block's %lu bytes of dynamic shared memory",
                                              (unsigned long) (a - g_smemEnd), (unsigned long) (g_smemEnd - g_smemBegin)).c_str()
                                     : describeAddress(a).c_str(), where.c_str());
            }
        }
        g.cur->done = true;
        Context dead;
        switchContext(dead, g.sched); // the scheduler abandons the launch; this signal frame is never returned to
    }
    struct sigaction& prev = sig == SIGBUS ? g_prevBus : sig == SIGILL ? g_prevIll : g_prevSegv;
    if (prev.sa_flags & SA_SIGINFO) {
        prev.sa_sigaction(sig, si, uc);
    } else if (prev.sa_handler == SIG_DFL || prev.sa_handler == SIG_IGN) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        prev.sa_handler(sig);
    }
}

void installFaultHandler() {
    static bool done = false;
    if (done) return;
    done = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = onFault;
    // SA_NODEFER: a fault in a kernel leaves the handler by a stack switch, not a return, so SIGSEGV must not stay
    // blocked; the signals the JVM's handler blocks stay blocked while it runs behind this one.
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigaction(SIGSEGV, nullptr, &g_prevSegv);
    sa.sa_mask = g_prevSegv.sa_mask;
    sigdelset(&sa.sa_mask, SIGSEGV);
    sigdelset(&sa.sa_mask, SIGBUS);
    sigdelset(&sa.sa_mask, SIGILL);
    sigaction(SIGSEGV, &sa, &g_prevSegv);
    sigaction(SIGBUS, &sa, &g_prevBus);
    sigaction(SIGILL, &sa, &g_prevIll);
}

void ensureStacks(size_t n) {
    size_t page = (size_t) sysconf(_SC_PAGESIZE);
    if (g.stackBytes == 0) g.stackBytes = (size_t) std::stoul(env("NC4JSIM_STACK_KIB", "256")) << 10;
    while (g.stacks.size() < n) {
        char* s = (char*) mmap(nullptr, g.stackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (s == MAP_FAILED) {
            perror("cudasim: mmap of a fiber stack");
            abort();
        }
        mprotect(s, page, PROT_NONE); // a stack overflow faults instead of writing over the next stack
        g.stacks.push_back(s + page);
    }
}

// Runs one block; false (g.error set) when a thread failed or the block deadlocked.
bool runBlock(uint3 block, dim3 grid, dim3 dims, unsigned char* smem) {
    int n = (int) (dims.x * dims.y * dims.z), nw = (n + 31) / 32;
    g.fibers.assign(n, Fiber{});
    g.warps.assign(nw, Warp{});
    g_warpGroups.assign((nw + 3) / 4, WarpGroup{});
    g_wgmmaReads.clear();
    g_mbars.clear();
    g_asyncView.assign(g_smemEnd - g_smemBegin, 0xff); // as the block's shared memory starts
    g_unfencedBy.assign(g_smemEnd - g_smemBegin, 0);
    for (int i = 0; i < nw; i++) g.warps[i].live = i < n / 32 ? 0xffffffffu : (1u << (n % 32)) - 1u;
    g.live = n;
    g.arrived = 0;
    g.andAcc = 1;
    for (int i = 0; i < n; i++) {
        Fiber& f = g.fibers[i];
        f.t.threadIdx = {(unsigned) i % dims.x, ((unsigned) i / dims.x) % dims.y, (unsigned) i / (dims.x * dims.y)};
        f.t.blockIdx = block;
        f.t.blockDim = dims;
        f.t.gridDim = grid;
        f.t.dynamicShared = smem;
        f.warp = i / 32;
        f.lane = i % 32;
        makeContext(f.ctx, g.stacks[i], g.stackBytes, fiberMain);
    }
    // Between two barriers each thread runs to its next one before the next thread starts, so a read of what another
    // thread writes in the same interval (a missing __syncthreads or __syncwarp) sees the old value if the writer runs
    // later and the new one if it ran earlier. Odd blocks run their threads in reverse order: a race then gives wrong
    // values in one block or the other, whichever way it reads.
    bool reverse = ((block.z * grid.y + block.y) * grid.x + block.x) & 1;
    g_landAtIssue = reverse;
    for (;;) {
        bool any = false;
        unsigned long long before = g.progress;
        for (int k = 0; k < n; k++) {
            Fiber& f = g.fibers[reverse ? n - 1 - k : k];
            if (f.done) continue;
            any = true;
            g.cur = &f;
            *g.curSlot = &f.t;
            switchContext(g.sched, f.ctx);
            if (!g.error.empty()) return false;
        }
        if (!any) return true;
        if (g.progress == before) {
            std::map<std::string, int> where;
            for (Fiber& f : g.fibers) if (!f.done) where[f.waitingAt ? f.waitingAt : "?"]++;
            std::string s = format("deadlock in block (%u,%u,%u): %d of %d threads wait (", block.x, block.y, block.z, g.live, n);
            bool first = true;
            for (auto& [what, count] : where) {
                s += format("%s%d at %s", first ? "" : ", ", count, what.c_str());
                first = false;
            }
            g.error = s + "), none can move";
            return false;
        }
    }
}

// ---------------------------------------------------------------------------------------------------- modules

struct Module {
    void* handle;
    SimThread** curSlot;
    char* sharedBegin; // the module's static __shared__ arrays (cudasim.h puts them in one section)
    char* sharedEnd;
};

struct Function {
    Module* module;
    std::string name;
    void (*thunk)(void**);
    const int* argSizes; // each parameter's bytes, 0-terminated
    int maxDynamicShared = 48 * 1024;
    int maxThreads = 1024; // __launch_bounds__: a GPU refuses a larger block (the kernel's registers were sized for it)
};

uint64_t fnv(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string includeDir() { return env("NC4JSIM_INCLUDE", CUDASIM_INCLUDE); }

std::string cacheDir() {
    std::string d = env("NC4JSIM_CACHE", ("/tmp/nc4jsim-" + std::to_string(getuid())).c_str());
    mkdir(d.c_str(), 0755);
    return d;
}

const char* MARK = "//cudasim C++\n";

// The kernel source as C++: the -D options as #defines, cudasim.h, the source with its extern __shared__ arrays
// pointed at the block's dynamic shared memory, and a thunk per extern "C" __global__ kernel.
std::string translate(const std::string& src, const std::vector<std::string>& options) {
    std::string out = MARK;
    for (const std::string& o : options) {
        if (o.rfind("-D", 0) != 0) continue;
        std::string def = o.substr(2);
        size_t eq = def.find('=');
        out += "#define " + (eq == std::string::npos ? def + " 1" : def.substr(0, eq) + " " + def.substr(eq + 1)) + "\n";
    }
    out += "#include \"cudasim.h\"\n";
    static const std::regex dyn(R"(extern\s+__shared__\s+(?:__align__\s*\(\s*\d+\s*\)\s*)?([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]\s*;)");
    out += std::regex_replace(src, dyn, "$1* $2 = ($1*) __sim_cur->dynamicShared;");
    out += "\n";
    // extern "C" __global__ void [__launch_bounds__(...)] name(
    size_t at = 0;
    while ((at = src.find("__global__", at)) != std::string::npos) {
        size_t i = at + 10;
        auto skipSpace = [&] { while (i < src.size() && isspace((unsigned char) src[i])) i++; };
        skipSpace();
        if (src.compare(i, 4, "void") != 0) { at = i; continue; }
        i += 4;
        skipSpace();
        std::string maxThreads; // __launch_bounds__'s first argument, evaluated by the compiler below
        if (src.compare(i, 17, "__launch_bounds__") == 0) {
            i += 17;
            skipSpace();
            int depth = 0;
            size_t open = i;
            do {
                if (src[i] == '(') depth++;
                if (src[i] == ')') depth--;
                if (src[i] == ',' && depth == 1 && maxThreads.empty()) maxThreads = src.substr(open + 1, i - open - 1);
                i++;
            } while (i < src.size() && depth > 0);
            if (maxThreads.empty()) maxThreads = src.substr(open + 1, i - open - 2);
            skipSpace();
        }
        size_t s = i;
        while (i < src.size() && (isalnum((unsigned char) src[i]) || src[i] == '_')) i++;
        std::string name = src.substr(s, i - s);
        at = i;
        if (name.empty()) continue;
        out += "extern \"C\" __attribute__((visibility(\"default\"))) void __sim_thunk_" + name + "(void** p) { __sim_invoke(" + name + ", p); }\n";
        out += "extern \"C\" __attribute__((visibility(\"default\"))) const int* __sim_sizes_" + name + "() { return __sim_arg_sizes(" + name + "); }\n";
        if (!maxThreads.empty()) {
            out += "extern \"C\" __attribute__((visibility(\"default\"))) const int __sim_bounds_" + name + " = (" + maxThreads + ");\n";
        }
    }
    return out;
}

// Compiles translated C++ into a cached shared object; returns its path, or "" with the compiler's output in log.
std::string build(const std::string& cpp, std::string& log) {
    std::string header = readFile(includeDir() + "/cudasim.h") + readFile(includeDir() + "/cudasim_abi.h");
    if (header.empty()) {
        log = "cudasim: no cudasim.h in " + includeDir() + " (set NC4JSIM_INCLUDE)";
        return "";
    }
    char key[17];
    snprintf(key, sizeof key, "%016llx", (unsigned long long) fnv(header + cpp));
    std::string dir = cacheDir(), so = dir + "/" + key + ".so";
    struct stat st;
    if (stat(so.c_str(), &st) == 0) return so;
    std::string pid = std::to_string(getpid()), src = dir + "/" + key + ".cpp", tmp = so + ".tmp" + pid;
    {
        std::ofstream o(src + ".tmp" + pid, std::ios::binary);
        o << cpp;
    }
    rename((src + ".tmp" + pid).c_str(), src.c_str());
    // -fsanitize=alignment (trapping, no runtime): a load or store of a type at an address its size does not divide
    // faults on a GPU (CUDA_ERROR_MISALIGNED_ADDRESS); here it executes ud2, which the fault handler reports
    std::string cmd = env("NC4JSIM_CXX", "g++") + " -std=c++17 -O2 -g -fPIC -shared -fno-gnu-unique -Wl,-Bsymbolic -w -ffp-contract=off -fno-strict-aliasing"
                      " -fsanitize=alignment -fsanitize-undefined-trap-on-error -I'" +
                      includeDir() + "' -o '" + tmp + "' '" + src + "' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
        log = "cudasim: cannot run " + cmd;
        return "";
    }
    char buf[4096];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) log.append(buf, k);
    int rc = pclose(p);
    if (rc != 0) {
        unlink(tmp.c_str());
        log = "cudasim: g++ failed on " + src + "\n" + log;
        return "";
    }
    rename(tmp.c_str(), so.c_str());
    return so;
}

// ---------------------------------------------------------------------------------------------------- cuBLAS

struct Matrix {
    const void* p;
    int type; // 0 CUDA_R_32F, 14 CUDA_R_16BF
    int ld;
    bool trans;
    double at(long long r, long long c) const { // op(M)[r][c], column-major storage
        long long i = trans ? c + r * (long long) ld : r + c * (long long) ld;
        return type == 14 ? (double) bf16(((const uint16_t*) p)[i]) : (double) ((const float*) p)[i];
    }
};

unsigned short toBf16(float f) {
    unsigned b;
    memcpy(&b, &f, 4);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (unsigned short) ((b >> 16) | 0x40u);
    return (unsigned short) ((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

size_t typeBytes(int t) { return t == 14 ? 2 : 4; }

// C_i = alpha·op(A_i)·op(B_i) + beta·C_i for i < batch, column-major, fp32 or bf16 (type 0 or 14) operands and output,
// summed in double; C is not read where beta is 0 (as BLAS). Strides count elements. Every cuBLAS entry point is this.
int gemm(int ta, int tb, int m, int n, int k, float alpha, const void* a, int at, int lda, long long sa, const void* b, int bt,
         int ldb, long long sb, float beta, void* c, int ct, int ldc, long long sc, int batch) {
    if (m < 0 || n < 0 || k < 0 || batch < 0 || ldc < std::max(1, m)) return 7; // CUBLAS_STATUS_INVALID_VALUE
    if ((ct != 0 && ct != 14) || (at != 0 && at != 14) || (bt != 0 && bt != 14)) return 15; // NOT_SUPPORTED
    std::lock_guard<std::mutex> l(g_lock);
    trace("gemm %d %d %d x%d", m, n, k, batch);
    for (int z = 0; z < batch; z++) {
        Matrix A{(const char*) a + z * sa * typeBytes(at), at, lda, ta != 0}, B{(const char*) b + z * sb * typeBytes(bt), bt, ldb, tb != 0};
        char* C = (char*) c + z * sc * typeBytes(ct);
        for (int j = 0; j < n; j++) {
            for (int i = 0; i < m; i++) {
                double sum = 0;
                for (int l = 0; l < k; l++) sum += A.at(i, l) * B.at(l, j);
                long long ci = i + (long long) j * ldc;
                float v = alpha * (float) sum;
                if (beta != 0) v += beta * (ct == 14 ? bf16(((uint16_t*) C)[ci]) : ((float*) C)[ci]);
                if (ct == 14) ((uint16_t*) C)[ci] = toBf16(v);
                else ((float*) C)[ci] = v;
            }
        }
    }
    return 0;
}

} // namespace

// ======================================================================================================== driver

API int cuGetErrorString(int e, const char** s) {
    switch (e) {
        case SUCCESS: *s = "no error"; break;
        case INVALID_VALUE: *s = "invalid argument"; break;
        case OUT_OF_MEMORY: *s = "out of memory"; break;
        case NO_DEVICE: *s = "no CUDA-capable device is detected (cudasim: NC4JSIM_DEVICES=0)"; break;
        case INVALID_IMAGE: *s = "device kernel image is invalid"; break;
        case INVALID_PTX: *s = "a PTX JIT compilation failed (cudasim: not an image of the simulator)"; break;
        case INVALID_HANDLE: *s = "invalid resource handle"; break;
        case NOT_FOUND: *s = "named symbol not found"; break;
        case ILLEGAL_STATE: *s = "the operation cannot be performed in the present state"; break;
        case CAPTURE_UNSUPPORTED: *s = "operation not permitted when stream is capturing"; break;
        case CAPTURE_INVALIDATED: *s = "operation failed due to a previous error during capture"; break;
        case LAUNCH_FAILED:
            t_strings = "unspecified launch failure (cudasim: " + g_launchError + ")";
            *s = t_strings.c_str();
            break;
        case OUT_OF_RESOURCES:
            t_strings = "too many resources requested for launch (cudasim: " + g_launchError + ")";
            *s = t_strings.c_str();
            break;
        default: *s = nullptr; return INVALID_VALUE;
    }
    return SUCCESS;
}

API int cuGetErrorName(int e, const char** s) {
    switch (e) {
        case SUCCESS: *s = "CUDA_SUCCESS"; break;
        case INVALID_VALUE: *s = "CUDA_ERROR_INVALID_VALUE"; break;
        case OUT_OF_MEMORY: *s = "CUDA_ERROR_OUT_OF_MEMORY"; break;
        case NO_DEVICE: *s = "CUDA_ERROR_NO_DEVICE"; break;
        case INVALID_IMAGE: *s = "CUDA_ERROR_INVALID_IMAGE"; break;
        case INVALID_PTX: *s = "CUDA_ERROR_INVALID_PTX"; break;
        case INVALID_HANDLE: *s = "CUDA_ERROR_INVALID_HANDLE"; break;
        case NOT_FOUND: *s = "CUDA_ERROR_NOT_FOUND"; break;
        case ILLEGAL_STATE: *s = "CUDA_ERROR_ILLEGAL_STATE"; break;
        case CAPTURE_UNSUPPORTED: *s = "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED"; break;
        case CAPTURE_INVALIDATED: *s = "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED"; break;
        case LAUNCH_FAILED: *s = "CUDA_ERROR_LAUNCH_FAILED"; break;
        case OUT_OF_RESOURCES: *s = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"; break;
        default: *s = nullptr; return INVALID_VALUE;
    }
    return SUCCESS;
}

API int cuInit(unsigned) { return std::stoi(env("NC4JSIM_DEVICES", "1")) > 0 ? SUCCESS : NO_DEVICE; }
API int cuDriverGetVersion(int* v) { *v = 13000; return SUCCESS; }
API int cuDeviceGetCount(int* n) { *n = std::stoi(env("NC4JSIM_DEVICES", "1")); return SUCCESS; }
API int cuDeviceGet(int* d, int ordinal) {
    if (ordinal < 0 || ordinal >= std::stoi(env("NC4JSIM_DEVICES", "1"))) return INVALID_VALUE;
    *d = ordinal;
    return SUCCESS;
}
API int cuDeviceGetName(char* name, int len, int) {
    snprintf(name, (size_t) len, "cudasim (CPU simulation of an sm_90 GPU)");
    return SUCCESS;
}
API int cuDeviceGetAttribute(int* v, int attr, int) {
    switch (attr) {
        case 1: *v = 1024; break;           // max threads per block
        case 2: case 3: *v = 1024; break;   // max block dims x, y
        case 4: *v = 64; break;             // max block dim z
        case 5: *v = 2147483647; break;     // max grid dim x
        case 6: case 7: *v = 65535; break;  // max grid dims y, z
        case 8: *v = 49152; break;          // shared memory per block
        case 10: *v = 32; break;            // warp size
        case 13: *v = 1980000; break;       // clock rate, kHz
        case 16: *v = 132; break;           // multiprocessors
        case 36: *v = 2619000; break;       // memory clock, kHz
        case 37: *v = 5120; break;          // memory bus width, bits
        case 38: *v = 50 << 20; break;      // L2 bytes
        case 39: *v = 2048; break;          // max threads per multiprocessor
        case 75: *v = 9; break;             // compute capability
        case 76: *v = 0; break;
        case 81: *v = 233472; break;        // shared memory per multiprocessor
        case 82: *v = 65536; break;         // registers per multiprocessor
        case 97: *v = 232448; break;        // shared memory per block, opt-in
        default: *v = 0;
    }
    return SUCCESS;
}
// The map is checked as the driver checks it (the rules TMA needs: 16-byte aligned address and row stride, boxes of at
// most 256 and 16-byte rows, a swizzled box row within the swizzle's span); the simulator models 2-byte and 4-byte
// elements, rank 2, no interleave, unit element strides, and the 128-byte swizzle with 128-byte box rows.
API int cuTensorMapEncodeTiled(void* out, int dataType, unsigned rank, void* address, const uint64_t* dims, const uint64_t* strides,
                               const uint32_t* box, const uint32_t* elementStrides, int interleave, int swizzle, int, int) {
    uint32_t elem = dataType == 1 || dataType == 6 || dataType == 9 ? 2 : dataType == 2 || dataType == 3 || dataType == 7 ? 4 : 0;
    if (!out || ((uintptr_t) out & 63) || elem == 0 || rank != 2 || ((uintptr_t) address & 15) || interleave != 0) return INVALID_VALUE;
    if (swizzle != 0 && swizzle != 3) return INVALID_VALUE;
    for (int i = 0; i < 2; i++) {
        if (dims[i] == 0 || dims[i] > (1ull << 32) || box[i] == 0 || box[i] > 256 || elementStrides[i] != 1) return INVALID_VALUE;
    }
    if (strides[0] % 16 || strides[0] < dims[0] * elem || strides[0] >= (1ull << 40) || (box[0] * elem) % 16) return INVALID_VALUE;
    if (swizzle == 3 && box[0] * elem != 128) return INVALID_VALUE;
    SimTensorMap m{kTensorMapMagic, (uint64_t) (uintptr_t) address, {dims[0], dims[1]}, strides[0], {box[0], box[1]}, elem, (uint32_t) swizzle};
    memset(out, 0, 128);
    memcpy(out, &m, sizeof m);
    return SUCCESS;
}

API int cuDevicePrimaryCtxRetain(void** ctx, int) { static int c; *ctx = &c; return SUCCESS; }
API int cuCtxSetCurrent(void*) { return SUCCESS; }

API int cuMemAlloc_v2(uintptr_t* p, size_t bytes) {
    std::lock_guard<std::mutex> l(g_lock);
    if (bytes == 0) return INVALID_VALUE;
    if (g_used + bytes > deviceBytes()) return OUT_OF_MEMORY;
    size_t page = pageBytes(), rounded = (bytes + 255) & ~(size_t) 255, span = (rounded + page - 1) & ~(page - 1);
    char* m = (char*) mmap(nullptr, span + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return OUT_OF_MEMORY;
    mprotect(m, page, PROT_NONE);
    mprotect(m + page + span, page, PROT_NONE);
    char* user = m + page + span - rounded;
    memset(user, 0xff, rounded);
    g_allocs[(uintptr_t) user] = Alloc{bytes, m, span + 2 * page};
    g_used += bytes;
    *p = (uintptr_t) user;
    return SUCCESS;
}
API int cuMemFree_v2(uintptr_t p) {
    std::lock_guard<std::mutex> l(g_lock);
    auto it = g_allocs.find(p);
    if (it == g_allocs.end()) return INVALID_VALUE;
    g_used -= it->second.bytes;
    munmap(it->second.map, it->second.mapBytes);
    g_allocs.erase(it);
    return SUCCESS;
}
API int cuMemGetInfo_v2(size_t* freeBytes, size_t* total) {
    std::lock_guard<std::mutex> l(g_lock);
    *total = deviceBytes();
    *freeBytes = *total - g_used;
    return SUCCESS;
}
API int cuMemcpyHtoDAsync_v2(uintptr_t dst, const void* src, size_t n, void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) return unsupportedInCapture(c, "a copy from the host");
    trace("copy htod %zu", n);
    if (n && !inside(dst, n)) return INVALID_VALUE;
    memcpy((void*) dst, src, n);
    return SUCCESS;
}
API int cuMemcpyDtoHAsync_v2(void* dst, uintptr_t src, size_t n, void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) return unsupportedInCapture(c, "a copy to the host");
    trace("copy dtoh %zu", n);
    if (n && !inside(src, n)) return INVALID_VALUE;
    memcpy(dst, (const void*) src, n);
    return SUCCESS;
}
API int cuMemcpyDtoDAsync_v2(uintptr_t dst, uintptr_t src, size_t n, void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) {
        c->ops.push_back([=] { return cuMemcpyDtoDAsync_v2(dst, src, n, nullptr); });
        return SUCCESS;
    }
    trace("copy dtod %zu", n);
    if (n && (!inside(dst, n) || !inside(src, n))) return INVALID_VALUE;
    memmove((void*) dst, (const void*) src, n);
    return SUCCESS;
}
API int cuMemsetD8Async(uintptr_t dst, unsigned char v, size_t n, void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) {
        c->ops.push_back([=] { return cuMemsetD8Async(dst, v, n, nullptr); });
        return SUCCESS;
    }
    if (n && !inside(dst, n)) return INVALID_VALUE;
    memset((void*) dst, v, n);
    return SUCCESS;
}
API int cuMemsetD32Async(uintptr_t dst, unsigned v, size_t n, void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) {
        c->ops.push_back([=] { return cuMemsetD32Async(dst, v, n, nullptr); });
        return SUCCESS;
    }
    if ((dst & 3) || (n && !inside(dst, n * 4))) return INVALID_VALUE;
    for (size_t i = 0; i < n; i++) ((unsigned*) dst)[i] = v;
    return SUCCESS;
}

API int cuStreamCreate(void** s, unsigned) { *s = new int(0); return SUCCESS; }
API int cuStreamSynchronize(void* stream) {
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) return unsupportedInCapture(c, "cuStreamSynchronize");
    return SUCCESS;
}
API int cuStreamBeginCapture_v2(void* stream, int mode) {
    std::lock_guard<std::mutex> l(g_lock);
    if (!stream) return CAPTURE_UNSUPPORTED; // the legacy stream cannot be captured
    if (mode < 0 || mode > 2) return INVALID_VALUE;
    if (capturing(stream)) return ILLEGAL_STATE;
    g_captures[stream];
    return SUCCESS;
}
API int cuStreamEndCapture(void* stream, void** graph) {
    std::lock_guard<std::mutex> l(g_lock);
    Capture* c = capturing(stream);
    if (!c) return ILLEGAL_STATE;
    bool invalid = c->invalid;
    *graph = invalid ? nullptr : new Graph{std::move(c->ops)};
    g_captures.erase(stream);
    return invalid ? CAPTURE_INVALIDATED : SUCCESS;
}
API int cuGraphInstantiateWithFlags(void** exec, void* graph, unsigned long long) {
    if (!graph) return INVALID_VALUE;
    *exec = new Graph(*(Graph*) graph);
    return SUCCESS;
}
API int cuGraphLaunch(void* exec, void* stream) {
    {
        std::lock_guard<std::mutex> l(g_lock);
        if (Capture* c = capturing(stream)) return unsupportedInCapture(c, "cuGraphLaunch"); // (a GPU nests it; we never do)
        trace("graph %zu", ((Graph*) exec)->ops.size());
    }
    for (const Op& op : ((Graph*) exec)->ops) {
        if (int r = op()) return r;
    }
    return SUCCESS;
}
API int cuGraphExecDestroy(void* exec) { delete (Graph*) exec; return SUCCESS; }
API int cuGraphDestroy(void* graph) { delete (Graph*) graph; return SUCCESS; }
API int cuStreamDestroy_v2(void* s) { delete (int*) s; return SUCCESS; }

using Clock = std::chrono::steady_clock;
API int cuEventCreate(void** e, unsigned) { *e = new Clock::time_point(Clock::now()); return SUCCESS; }
API int cuEventRecord(void* e, void*) { *(Clock::time_point*) e = Clock::now(); return SUCCESS; }
API int cuEventSynchronize(void*) { return SUCCESS; }
API int cuEventElapsedTime_v2(float* ms, void* a, void* b) {
    *ms = std::chrono::duration<float, std::milli>(*(Clock::time_point*) b - *(Clock::time_point*) a).count();
    return SUCCESS;
}
API int cuEventElapsedTime(float* ms, void* a, void* b) { return cuEventElapsedTime_v2(ms, a, b); }
API int cuEventDestroy_v2(void* e) { delete (Clock::time_point*) e; return SUCCESS; }

API int cuModuleLoadData(void** module, const void* image) {
    std::string text = (const char*) image;
    if (text.rfind(MARK, 0) != 0) return INVALID_PTX;
    std::string log, so = build(text, log);
    if (so.empty()) {
        fprintf(stderr, "%s\n", log.c_str());
        return INVALID_IMAGE;
    }
    void* h = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "cudasim: dlopen %s: %s\n", so.c_str(), dlerror());
        return INVALID_IMAGE;
    }
    auto api = (const SimApi**) dlsym(h, "__sim_api");
    auto cur = (SimThread**) dlsym(h, "__sim_cur");
    auto bounds = (char* (*)(int)) dlsym(h, "__sim_shared_bounds");
    if (!api || !cur || !bounds) return INVALID_IMAGE;
    *api = &g_api;
    *module = new Module{h, cur, bounds(0), bounds(1)};
    if (bounds(0)) {
        std::lock_guard<std::mutex> l(g_lock);
        g_sharedSections.emplace_back(bounds(0), bounds(1));
    }
    return SUCCESS;
}

// With the JIT's logs, as the backend asks for them (CUjit_option: 3/4 the info log and its size, 5/6 the error log and
// its size, 12 verbose). No ptxas runs here, so the info log stays empty (size 0 written back, as the driver writes what it
// filled); a failed build's compiler output goes to the error log, truncated to its buffer.
API int cuModuleLoadDataEx(void** module, const void* image, unsigned numOptions, int* options, void** values) {
    char* errorLog = nullptr;
    size_t errorSize = 0;
    for (unsigned i = 0; i < numOptions; i++) {
        if (options[i] == 3 && values[i]) ((char*) values[i])[0] = 0;
        if (options[i] == 4) values[i] = (void*) (uintptr_t) 0;
        if (options[i] == 5) errorLog = (char*) values[i];
        if (options[i] == 6) errorSize = (size_t) (uintptr_t) values[i];
    }
    std::string text = (const char*) image;
    if (errorLog && errorSize > 0 && text.rfind(MARK, 0) == 0) {
        std::string log, so = build(text, log);
        if (so.empty()) {
            size_t n = std::min(log.size(), errorSize - 1);
            memcpy(errorLog, log.data(), n);
            errorLog[n] = 0;
            for (unsigned i = 0; i < numOptions; i++) if (options[i] == 6) values[i] = (void*) (uintptr_t) n;
            return INVALID_IMAGE;
        }
    }
    return cuModuleLoadData(module, image);
}

API int cuModuleGetFunction(void** f, void* module, const char* name) {
    Module* m = (Module*) module;
    auto thunk = (void (*)(void**)) dlsym(m->handle, ("__sim_thunk_" + std::string(name)).c_str());
    if (!thunk) return NOT_FOUND;
    auto bounds = (const int*) dlsym(m->handle, ("__sim_bounds_" + std::string(name)).c_str());
    auto sizes = (const int* (*)()) dlsym(m->handle, ("__sim_sizes_" + std::string(name)).c_str());
    if (!sizes) return NOT_FOUND;
    *f = new Function{m, name, thunk, sizes(), 48 * 1024, bounds ? *bounds : 1024};
    return SUCCESS;
}

API int cuFuncSetAttribute(void* f, int attr, int value) {
    if (attr == 8) { // CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES
        if (value < 0 || value > 232448) return INVALID_VALUE;
        ((Function*) f)->maxDynamicShared = value;
    }
    return SUCCESS;
}

API int cuLaunchKernel(void* fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                       void* stream, void** params, void** extra) {
    Function* f = (Function*) fn;
    if (extra) return INVALID_VALUE;
    unsigned long long threads = (unsigned long long) bx * by * bz;
    if (threads == 0 || threads > 1024 || bz > 64 || gx == 0 || gy == 0 || gz == 0 || gy > 65535 || gz > 65535) return INVALID_VALUE;
    if ((int) shared > f->maxDynamicShared) return INVALID_VALUE; // above 48 KiB without the opt-in attribute
    if (threads > (unsigned long long) f->maxThreads) {
        std::lock_guard<std::mutex> l(g_lock);
        g_launchError = f->name + format(": a block of %llu threads, __launch_bounds__ allows %d", threads, f->maxThreads);
        fprintf(stderr, "cudasim: %s\n", g_launchError.c_str());
        return OUT_OF_RESOURCES;
    }
    std::lock_guard<std::mutex> l(g_lock);
    if (Capture* c = capturing(stream)) { // the arguments as they are now, copied by the kernel's parameter sizes
        std::vector<std::vector<char>> args;
        for (int i = 0; f->argSizes[i]; i++) args.emplace_back((char*) params[i], (char*) params[i] + f->argSizes[i]);
        c->ops.push_back([=]() mutable {
            std::vector<void*> p;
            for (auto& a : args) p.push_back(a.data());
            return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shared, nullptr, p.data(), nullptr);
        });
        return SUCCESS;
    }
    trace("launch %s %u %u %u %u %u %u %u", f->name.c_str(), gx, gy, gz, bx, by, bz, shared);
    installFaultHandler();
    ensureStacks(threads);
    stack_t alt{}, oldAlt{};
    alt.ss_sp = g_altStack;
    alt.ss_size = sizeof g_altStack;
    sigaltstack(&alt, &oldAlt);
    pthread_sigmask(SIG_SETMASK, nullptr, &g_launchMask);
    // dynamic shared memory between inaccessible pages, its end flush with the upper one
    size_t page = pageBytes(), span = (shared + 15 + page - 1) & ~(page - 1), smemBytes = (shared + 15) & ~(size_t) 15;
    char* smemMap = (char*) mmap(nullptr, span + 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (smemMap == MAP_FAILED) return OUT_OF_MEMORY;
    mprotect(smemMap, page, PROT_NONE);
    mprotect(smemMap + page + span, page, PROT_NONE);
    unsigned char* smem = (unsigned char*) smemMap + page + span - smemBytes;
    g_smemBegin = (uintptr_t) smem;
    g_smemEnd = g_smemBegin + smemBytes;
    struct Restore {
        stack_t old;
        char* map;
        size_t bytes;
        ~Restore() {
            g_launching = false;
            sigaltstack(&old, nullptr);
            munmap(map, bytes);
        }
    } restore{oldAlt, smemMap, span + 2 * page};
    g_launchThread = pthread_self();
    g_launching = true;
    g.thunk = f->thunk;
    g.params = params;
    g.curSlot = f->module->curSlot;
    g.error.clear();
    dim3 grid{gx, gy, gz}, dims{bx, by, bz};
    for (unsigned z = 0; z < gz; z++) {
        for (unsigned y = 0; y < gy; y++) {
            for (unsigned x = 0; x < gx; x++) {
                memset(smem, 0xff, smemBytes); // a block's shared memory starts as garbage (NaN)
                if (f->module->sharedBegin) memset(f->module->sharedBegin, 0xff, f->module->sharedEnd - f->module->sharedBegin);
                if (!runBlock(uint3{x, y, z}, grid, dims, smem)) {
                    pthread_sigmask(SIG_SETMASK, &g_launchMask, nullptr); // a fault left its handler's mask behind
                    g_launchError = f->name + format(" (grid %u×%u×%u, block %u×%u×%u, %u bytes shared): ", gx, gy, gz, bx, by, bz, shared) + g.error;
                    fprintf(stderr, "cudasim: %s\n", g_launchError.c_str());
                    return LAUNCH_FAILED;
                }
            }
        }
    }
    return SUCCESS;
}

// ======================================================================================================== NVRTC

namespace {
struct Program {
    std::string source, name, log, image;
};
} // namespace

API const char* nvrtcGetErrorString(int r) {
    switch (r) {
        case 0: return "NVRTC_SUCCESS";
        case 3: return "NVRTC_ERROR_INVALID_INPUT";
        case 5: return "NVRTC_ERROR_INVALID_OPTION";
        case 6: return "NVRTC_ERROR_COMPILATION";
        default: return "NVRTC_ERROR (cudasim)";
    }
}
API int nvrtcVersion(int* major, int* minor) {
    *major = 13;
    *minor = 0;
    return 0;
}
API int nvrtcCreateProgram(void** prog, const char* src, const char* name, int headers, const char**, const char**) {
    if (!src || headers != 0) return 3;
    *prog = new Program{src, name ? name : "default_program", "", ""};
    return 0;
}
API int nvrtcCompileProgram(void* prog, int n, const char** options) {
    Program* p = (Program*) prog;
    std::vector<std::string> opts(options, options + n);
    p->image = translate(p->source, opts);
    std::string so = build(p->image, p->log);
    return so.empty() ? 6 : 0;
}
API int nvrtcGetProgramLogSize(void* prog, size_t* n) { *n = ((Program*) prog)->log.size() + 1; return 0; }
API int nvrtcGetProgramLog(void* prog, char* out) {
    const std::string& s = ((Program*) prog)->log;
    memcpy(out, s.c_str(), s.size() + 1);
    return 0;
}
API int nvrtcGetPTXSize(void* prog, size_t* n) { *n = ((Program*) prog)->image.size() + 1; return 0; }
API int nvrtcGetPTX(void* prog, char* out) {
    const std::string& s = ((Program*) prog)->image;
    memcpy(out, s.c_str(), s.size() + 1);
    return 0;
}
API int nvrtcGetCUBINSize(void* prog, size_t* n) { return nvrtcGetPTXSize(prog, n); }
API int nvrtcGetCUBIN(void* prog, char* out) { return nvrtcGetPTX(prog, out); }
API int nvrtcDestroyProgram(void** prog) {
    delete (Program*) *prog;
    *prog = nullptr;
    return 0;
}

// ======================================================================================================== cuBLAS

namespace {
struct Blas {
    void* stream = nullptr;
};

// Runs a cuBLAS call now, or records it when the handle's stream is capturing.
int blasCall(void* h, const Op& call) {
    {
        std::lock_guard<std::mutex> l(g_lock);
        if (Capture* c = capturing(((Blas*) h)->stream)) {
            c->ops.push_back(call);
            return 0;
        }
    }
    return call();
}
} // namespace

API int cublasCreate_v2(void** h) { *h = new Blas(); return 0; }
API int cublasDestroy_v2(void* h) { delete (Blas*) h; return 0; }
API int cublasSetStream_v2(void* h, void* stream) { ((Blas*) h)->stream = stream; return 0; }
API const char* cublasGetStatusString(int s) {
    switch (s) {
        case 0: return "CUBLAS_STATUS_SUCCESS";
        case 3: return "CUBLAS_STATUS_ALLOC_FAILED";
        case 7: return "CUBLAS_STATUS_INVALID_VALUE";
        case 15: return "CUBLAS_STATUS_NOT_SUPPORTED";
        default: return "CUBLAS_STATUS (cudasim)";
    }
}

API int cublasSgemm_v2(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda, const float* b, int ldb,
                       const float* beta, float* c, int ldc) {
    float al = *alpha, be = *beta;
    return blasCall(h, [=] { return gemm(ta, tb, m, n, k, al, a, 0, lda, 0, b, 0, ldb, 0, be, c, 0, ldc, 0, 1); });
}

API int cublasSgemmStridedBatched(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const float* a, int lda, long long sa,
                                  const float* b, int ldb, long long sb, const float* beta, float* c, int ldc, long long sc, int batch) {
    float al = *alpha, be = *beta;
    return blasCall(h, [=] { return gemm(ta, tb, m, n, k, al, a, 0, lda, sa, b, 0, ldb, sb, be, c, 0, ldc, sc, batch); });
}

// compute: CUBLAS_COMPUTE_32F (68), or the legacy CUDA_R_32F (0)
API int cublasGemmEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* a, int at, int lda, const void* b, int bt,
                     int ldb, const float* beta, void* c, int ct, int ldc, int compute, int) {
    if (compute != 68 && compute != 0) return 15;
    float al = *alpha, be = *beta;
    return blasCall(h, [=] { return gemm(ta, tb, m, n, k, al, a, at, lda, 0, b, bt, ldb, 0, be, c, ct, ldc, 0, 1); });
}

API int cublasGemmStridedBatchedEx(void* h, int ta, int tb, int m, int n, int k, const float* alpha, const void* a, int at, int lda, long long sa,
                                   const void* b, int bt, int ldb, long long sb, const float* beta, void* c, int ct, int ldc, long long sc,
                                   int batch, int compute, int) {
    if (compute != 68 && compute != 0) return 15;
    float al = *alpha, be = *beta;
    return blasCall(h, [=] { return gemm(ta, tb, m, n, k, al, a, at, lda, sa, b, bt, ldb, sb, be, c, ct, ldc, sc, batch); });
}
