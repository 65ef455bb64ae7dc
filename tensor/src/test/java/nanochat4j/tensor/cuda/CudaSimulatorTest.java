package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The CPU simulator's checks (tensor/src/test/cudasim, run by scripts/cuda-sim-checks.sh) catch what they promise, and
 * the tensor-core fragment layouts it implements are the hardware's: the mma test runs on any CUDA device, a real GPU
 * included, so the same assertions hold the simulator to the GPU.
 */
class CudaSimulatorTest {
    private CudaContext ctx;

    @BeforeEach
    void device() {
        CudaTesting.assumeGpu("CUDA tests");
        ctx = CudaContext.get();
    }

    private void assumeSimulator() {
        Assumptions.assumeTrue(ctx.describe().startsWith("cudasim"), "runs on the CPU simulator only (scripts/cuda-sim-checks.sh)");
    }

    private MemorySegment function(String source, String name) {
        return function(source, name, "compute_80");
    }

    private MemorySegment function(String source, String name, String arch) {
        byte[] ptx = Nvrtc.load().compile(name + ".cu", source, List.of("--gpu-architecture=" + arch, "--std=c++17", "-default-device"), false);
        Driver.Loaded module;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment img = a.allocate(ptx.length + 1L);
            MemorySegment.copy(ptx, 0, img, ValueLayout.JAVA_BYTE, 0, ptx.length);
            module = ctx.driver().moduleLoad(img);
            ctx.driver().check("cuModuleLoadData(" + name + ")", module.result());
        }
        return ctx.driver().function(module.module(), name);
    }

    /** Launches {@code fn} on one block of {@code threads} with 64-bit pointer arguments. */
    private void launch(MemorySegment fn, String name, int threads, long... pointers) {
        launchBlocks(fn, name, 1, threads, pointers);
    }

    /** Launches {@code fn} on {@code blocks} blocks (along x) of {@code threads}, with 64-bit pointer arguments. */
    private void launchBlocks(MemorySegment fn, String name, int blocks, int threads, long... pointers) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = a.allocate(ValueLayout.ADDRESS, Math.max(1, pointers.length));
            for (int i = 0; i < pointers.length; i++) params.setAtIndex(ValueLayout.ADDRESS, i, a.allocateFrom(ValueLayout.JAVA_LONG, pointers[i]));
            ctx.driver().launch(name, fn, blocks, 1, 1, threads, 1, 1, 0, ctx.stream(), params);
        }
        ctx.synchronize();
    }

    private long upload(float[] x) {
        long p = ctx.driver().allocOrZero(4L * x.length);
        try (Arena a = Arena.ofConfined()) {
            ctx.driver().copyHtoDAsync(p, a.allocateFrom(ValueLayout.JAVA_FLOAT, x), 4L * x.length, ctx.stream());
            ctx.synchronize();
        }
        return p;
    }

    private float[] download(long p, int n) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(4L * n);
            ctx.driver().copyDtoHAsync(host, p, 4L * n, ctx.stream());
            ctx.synchronize();
            return host.toArray(ValueLayout.JAVA_FLOAT);
        }
    }

    /** Launches {@code fn(a, b, d, mode)} on one warpgroup (128 threads) with {@code shared} bytes of dynamic shared memory. */
    private void launchWarpgroup(MemorySegment fn, String name, int shared, long a, long b, long d, int mode) {
        try (Arena ar = Arena.ofConfined()) {
            MemorySegment params = ar.allocate(ValueLayout.ADDRESS, 4);
            long[] ptrs = {a, b, d};
            for (int i = 0; i < 3; i++) params.setAtIndex(ValueLayout.ADDRESS, i, ar.allocateFrom(ValueLayout.JAVA_LONG, ptrs[i]));
            params.setAtIndex(ValueLayout.ADDRESS, 3, ar.allocateFrom(ValueLayout.JAVA_INT, mode));
            ctx.driver().launch(name, fn, 1, 1, 1, 128, 1, 1, shared, ctx.stream(), params);
        }
        ctx.synchronize();
    }

    /** {@code x} as bf16 in device memory (truncated: the tests' values are exact in bf16). */
    private long uploadBf16(float[] x) {
        short[] h = new short[x.length];
        for (int i = 0; i < x.length; i++) h[i] = (short) (Float.floatToRawIntBits(x[i]) >>> 16);
        long p = ctx.driver().allocOrZero(2L * h.length);
        try (Arena a = Arena.ofConfined()) {
            ctx.driver().copyHtoDAsync(p, a.allocateFrom(ValueLayout.JAVA_SHORT, h), 2L * h.length, ctx.stream());
            ctx.synchronize();
        }
        return p;
    }

    /** One m16n8k16 bf16 mma with its operands loaded straight from the PTX ISA's fragment layout. */
    @Test
    void mmaFragmentsFollowThePtxLayout() {
        String src = """
                extern "C" __global__ void mma_once(const unsigned short* A, const unsigned short* B, float* D) {
                    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
                    // A 16x16 row-major; B 16x8 stored as B[k][n] row-major; D 16x8 row-major
                    unsigned a[4], b[2];
                    a[0] = A[g * 16 + 2 * t] | (A[g * 16 + 2 * t + 1] << 16);
                    a[1] = A[(g + 8) * 16 + 2 * t] | (A[(g + 8) * 16 + 2 * t + 1] << 16);
                    a[2] = A[g * 16 + 8 + 2 * t] | (A[g * 16 + 9 + 2 * t] << 16);
                    a[3] = A[(g + 8) * 16 + 8 + 2 * t] | (A[(g + 8) * 16 + 9 + 2 * t] << 16);
                    b[0] = B[(2 * t) * 8 + g] | (B[(2 * t + 1) * 8 + g] << 16);
                    b[1] = B[(2 * t + 8) * 8 + g] | (B[(2 * t + 9) * 8 + g] << 16);
                    float d[4] = {0.f, 0.f, 0.f, 0.f};
                    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n"
                                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
                    D[g * 8 + 2 * t] = d[0];
                    D[g * 8 + 2 * t + 1] = d[1];
                    D[(g + 8) * 8 + 2 * t] = d[2];
                    D[(g + 8) * 8 + 2 * t + 1] = d[3];
                }
                """;
        // the simulator's NVRTC runs no inline PTX: it gets the wrapper tensorcore.cuh's kernels use
        String sim = src.replace("""
                    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\\n"
                                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
                """, "    tc_mma(d, a, b[0], b[1]);\n");
        boolean simulated = ctx.describe().startsWith("cudasim");
        MemorySegment fn = function(simulated ? sim : src, "mma_once");
        Random r = new Random(7);
        float[] a = new float[16 * 16], b = new float[16 * 8];
        for (int i = 0; i < a.length; i++) a[i] = r.nextInt(17) - 8; // small integers: every product and sum exact
        for (int i = 0; i < b.length; i++) b[i] = r.nextInt(17) - 8;
        long pa = uploadBf16(a), pb = uploadBf16(b), pd = ctx.driver().allocOrZero(4L * 128);
        launch(fn, "mma_once", 32, pa, pb, pd);
        float[] d = download(pd, 128);
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 8; j++) {
                float want = 0;
                for (int k = 0; k < 16; k++) want += a[i * 16 + k] * b[k * 8 + j];
                assertEquals(want, d[i * 8 + j], "D[" + i + "][" + j + "]");
            }
        }
        for (long p : new long[] {pa, pb, pd}) ctx.driver().free(p);
    }

    /**
     * One m64n128k16 wgmma (Hopper) per operand layout: A and B K-major and M/N-major, in the no-swizzle core-matrix
     * layouts gemm_wgmma.cu fills, the accumulators read back by the layout it stores; then A from registers (as
     * mma.sync's A fragment, attention_wgmma.cu's P and dS) against B K-major and N-major, and one m64n64k16 (its
     * scores). On a real H100/H200 this holds the simulator's reading of descriptors and fragments to the hardware's
     * (the GEMM is checked against cuBLAS and the attention against the fp32 kernels, but this names what is wrong).
     */
    @Test
    void wgmmaDescriptorsAndAccumulatorsFollowThePtxLayout() {
        Assumptions.assumeTrue(ctx.hopper(), "wgmma needs a Hopper GPU (sm_90a): " + ctx.describe());
        String src = KernelSources.raw("tensorcore.cuh") + """
                // B 16x128 into shared memory in core matrices of 8 rows x 16 bytes (offsets in elements): K-major, LBO
                // 128 B along K, SBO 256 B along N; N-major, SBO 128 B along N, LBO 2048 B along K. Returns its descriptor.
                template <int TB>
                __device__ unsigned long long fill_b(const unsigned short* B, unsigned short* sb) {
                    for (int i = threadIdx.x; i < 16 * 128; i += 128) {
                        int k = i / 128, n = i % 128;
                        sb[TB ? (n / 8) * 64 + (k / 8) * 1024 + (k % 8) * 8 + n % 8 : (n / 8) * 128 + (k / 8) * 64 + (n % 8) * 8 + k % 8] = B[i];
                    }
                    tc_fence_proxy_async();
                    __syncthreads();
                    unsigned b = tc_smem_addr(sb);
                    return ((b & 0x3ffffu) >> 4) | ((unsigned long long) ((TB ? 2048 : 128) >> 4) << 16) | ((unsigned long long) ((TB ? 128 : 256) >> 4) << 32);
                }
                // D (64 x 128 floats) from a warpgroup's accumulators of an m64n(2N)k16: warp w rows 16w…, lane 4g + t
                // rows g and g + 8 at columns 8j + 2t, +1; columns past 2N zero
                template <int N>
                __device__ void store_d(float* D, const float (&d)[N]) {
                    int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
                    for (int j = 0; j < 16; j++)
                        for (int e = 0; e < 4; e++) D[(16 * warp + lane / 4 + 8 * (e / 2)) * 128 + 8 * j + 2 * (lane % 4) + e % 2] = 4 * j < N ? d[4 * j + e] : 0.0f;
                }
                template <int TA, int TB>
                __device__ void once(const unsigned short* A, const unsigned short* B, float* D) {
                    extern __shared__ __align__(128) unsigned char sm[];
                    unsigned short* sa = (unsigned short*) sm;          // A 64x16: 2 KiB
                    unsigned short* sb = (unsigned short*) (sm + 2048); // B 16x128: 4 KiB
                    // core matrices of 8 rows x 16 bytes (offsets in elements): K-major, LBO 128 B along K, SBO 256 B
                    // along M/N; M/N-major, SBO 128 B along M/N, LBO (rows / 8) x 128 B along K
                    for (int i = threadIdx.x; i < 64 * 16; i += 128) {
                        int m = i / 16, k = i % 16;
                        sa[TA ? (m / 8) * 64 + (k / 8) * 512 + (k % 8) * 8 + m % 8 : (m / 8) * 128 + (k / 8) * 64 + (m % 8) * 8 + k % 8] = A[i];
                    }
                    unsigned long long db = fill_b<TB>(B, sb);
                    unsigned a = tc_smem_addr(sa);
                    unsigned long long da = ((a & 0x3ffffu) >> 4) | ((unsigned long long) ((TA ? 1024 : 128) >> 4) << 16) | ((unsigned long long) ((TA ? 128 : 256) >> 4) << 32);
                    float d[64];
                    for (int i = 0; i < 64; i++) d[i] = 1000.0f; // scale-d 0 ignores them
                    wg_fence();
                    wg_mma<128, TA, TB>(d, da, db, 0);
                    wg_commit();
                    wg_wait<0>();
                    wg_fence_operand(d);
                    store_d<64>(D, d);
                }
                // A from registers: each warp's 16 rows as mma.sync's A fragment
                template <int TB>
                __device__ void once_rs(const unsigned short* A, const unsigned short* B, float* D) {
                    extern __shared__ __align__(128) unsigned char sm[];
                    unsigned long long db = fill_b<TB>(B, (unsigned short*) (sm + 2048));
                    int warp = threadIdx.x / 32, g = threadIdx.x % 32 / 4, t = threadIdx.x % 4;
                    unsigned a[4];
                    for (int i = 0; i < 4; i++) {
                        int m = 16 * warp + g + 8 * (i % 2), k = 2 * t + 8 * (i / 2);
                        a[i] = A[m * 16 + k] | ((unsigned) A[m * 16 + k + 1] << 16);
                    }
                    float d[64];
                    for (int i = 0; i < 64; i++) d[i] = 1000.0f;
                    wg_fence();
                    wg_mma_rs<128, TB>(d, a, db, 0);
                    wg_commit();
                    wg_wait<0>();
                    wg_fence_operand(d);
                    wg_fence_operand(a);
                    store_d<64>(D, d);
                }
                // m64n64k16, both K-major: B's first 64 columns (the other 64 of D written as zeros)
                __device__ void once64(const unsigned short* A, const unsigned short* B, float* D) {
                    extern __shared__ __align__(128) unsigned char sm[];
                    unsigned short* sa = (unsigned short*) sm;
                    for (int i = threadIdx.x; i < 64 * 16; i += 128) sa[(i / 16 / 8) * 128 + (i % 16 / 8) * 64 + (i / 16 % 8) * 8 + i % 8] = A[i];
                    unsigned long long db = fill_b<0>(B, (unsigned short*) (sm + 2048));
                    unsigned a = tc_smem_addr(sa);
                    unsigned long long da = ((a & 0x3ffffu) >> 4) | ((unsigned long long) (128 >> 4) << 16) | ((unsigned long long) (256 >> 4) << 32);
                    float d[32];
                    for (int i = 0; i < 32; i++) d[i] = 1000.0f;
                    wg_fence();
                    wg_mma<64, 0, 0>(d, da, db, 0);
                    wg_commit();
                    wg_wait<0>();
                    wg_fence_operand(d);
                    store_d<32>(D, d);
                }
                extern "C" __global__ void wgmma_once(const unsigned short* A, const unsigned short* B, float* D, int layout) {
                    switch (layout) {
                        case 0: once<0, 0>(A, B, D); break;
                        case 1: once<1, 0>(A, B, D); break;
                        case 2: once<0, 1>(A, B, D); break;
                        case 3: once<1, 1>(A, B, D); break;
                        case 4: once_rs<0>(A, B, D); break;
                        case 5: once_rs<1>(A, B, D); break;
                        default: once64(A, B, D); break;
                    }
                }
                """;
        MemorySegment fn = function(src, "wgmma_once", "compute_90a");
        Random r = new Random(11);
        float[] a = new float[64 * 16], b = new float[16 * 128];
        for (int i = 0; i < a.length; i++) a[i] = r.nextInt(17) - 8; // small integers: every product and sum exact
        for (int i = 0; i < b.length; i++) b[i] = r.nextInt(17) - 8;
        long pa = uploadBf16(a), pb = uploadBf16(b), pd = ctx.driver().allocOrZero(4L * 64 * 128);
        String[] names = {"A K-major, B K-major", "A M-major, B K-major", "A K-major, B N-major", "A M-major, B N-major",
            "A in registers, B K-major", "A in registers, B N-major", "m64n64k16, A and B K-major"};
        for (int layout = 0; layout < names.length; layout++) {
            launchWarpgroup(fn, "wgmma_once", 6144, pa, pb, pd, layout);
            float[] d = download(pd, 64 * 128);
            for (int i = 0; i < 64; i++) {
                for (int j = 0; j < 128; j++) {
                    float want = 0;
                    for (int k = 0; k < 16; k++) want += a[i * 16 + k] * b[k * 128 + j];
                    if (layout == 6 && j >= 64) want = 0;
                    assertEquals(want, d[i * 128 + j], names[layout] + ": D[" + i + "][" + j + "]");
                }
            }
        }
        for (long p : new long[] {pa, pb, pd}) ctx.driver().free(p);
    }

    /**
     * The wgmma hazards a GPU would not report, only compute wrong: operands a cp.async or a store wrote that no
     * fence.proxy.async published to the tensor cores; the first wgmma on accumulators with no wgmma.fence before it;
     * an operand in shared memory, an accumulator or a register A fragment changed between the wgmma's issue and its
     * wait (a cp.async into it, at once); an accumulator read meanwhile (NaN). One kernel, one hazard a mode; mode 0 (none) computes A·B exactly,
     * and so does mode 8, a second chain issued after a wait that landed nothing (its fence still holds).
     */
    @Test
    void wgmmaHazardsFailTheLaunchOrReadAsNan() {
        assumeSimulator();
        Assumptions.assumeTrue(ctx.hopper(), "wgmma needs sm_90a: " + ctx.describe());
        MemorySegment fn = function(KernelSources.raw("tensorcore.cuh") + """
                // D (64x64) = A (64x16) · B, B given as Bt (64x16, row n = column n of B); both K-major in shared
                // memory (core matrices of 8 rows x 16 bytes, LBO 128 B along K, SBO 256 B along M/N), a cp.async a row
                extern "C" __global__ void hazard(const unsigned short* A, const unsigned short* Bt, float* D, int mode) {
                    extern __shared__ __align__(128) unsigned char sm[];
                    unsigned short* sb = (unsigned short*) (sm + 2048);
                    int t = threadIdx.x, r = t / 2, h = t % 2, warp = t / 32, g = t % 32 / 4, q = t % 4;
                    cp_async16(sm + (r / 8) * 256 + h * 128 + (r % 8) * 16, A + r * 16 + 8 * h);
                    cp_async16(sm + 2048 + (r / 8) * 256 + h * 128 + (r % 8) * 16, Bt + r * 16 + 8 * h);
                    cp_async_commit();
                    cp_async_wait_all();
                    if (mode != 1) tc_fence_proxy_async();
                    __syncthreads();
                    if (mode == 2) {
                        if (t == 0) sb[0] ^= 0x8000; // a store after the fence, none after it
                        __syncthreads();
                    }
                    unsigned long long da = ((tc_smem_addr(sm) & 0x3ffffu) >> 4) | (8ull << 16) | (16ull << 32);
                    unsigned long long db = ((tc_smem_addr(sb) & 0x3ffffu) >> 4) | (8ull << 16) | (16ull << 32);
                    unsigned a[4]; // this thread's A fragment (mma.sync's layout), for mode 7's wg_mma_rs
                    for (int i = 0; i < 4; i++) {
                        int m = 16 * warp + g + 8 * (i % 2), k = 2 * q + 8 * (i / 2);
                        a[i] = A[m * 16 + k] | ((unsigned) A[m * 16 + k + 1] << 16);
                    }
                    float d[32], d2[32];
                    for (int i = 0; i < 32; i++) d[i] = d2[i] = 0.0f;
                    if (mode != 3) wg_fence();
                    if (mode == 7) wg_mma_rs<64, 0>(d, a, db, 0);
                    else wg_mma<64, 0, 0>(d, da, db, 0);
                    wg_commit();
                    if (mode == 8) { // a wait that lands nothing: d2, written before the fence, needs no other
                        wg_wait<1>();
                        wg_mma<64, 0, 0>(d2, da, db, 0);
                        wg_commit();
                    }
                    if (mode == 4 && t == 0) sb[0] ^= 0x8000; // an operand changed in flight
                    if (mode == 9 && t == 0) cp_async16(sb, Bt); // a copy into an operand in flight
                    if (mode == 5) d[0] = 1.0f;                  // an accumulator written in flight
                    float early = d[1];                          // read in flight: D's slot of d[1] in mode 6
                    if (mode == 7) a[0] ^= 1u;                   // a register A fragment changed in flight
                    wg_wait<0>();
                    wg_fence_operand(d);
                    wg_fence_operand(d2);
                    wg_fence_operand(a);
                    if (mode == 6) d[1] = early;
                    if (mode == 8)
                        for (int i = 0; i < 32; i++) d[i] = d2[i];
                    for (int j = 0; j < 8; j++)
                        for (int e = 0; e < 4; e++) D[(16 * warp + g + 8 * (e / 2)) * 64 + 8 * j + 2 * q + e % 2] = d[4 * j + e];
                }
                """, "hazard", "compute_90a");
        Random rnd = new Random(5);
        float[] a = new float[64 * 16], bt = new float[64 * 16];
        for (int i = 0; i < a.length; i++) a[i] = rnd.nextInt(17) - 8; // small integers: exact in bf16 and in the sums
        for (int i = 0; i < bt.length; i++) bt[i] = rnd.nextInt(17) - 8;
        long pa = uploadBf16(a), pb = uploadBf16(bt), pd = ctx.driver().allocOrZero(4L * 64 * 64);
        java.util.function.IntFunction<String> run = mode -> {
            try {
                launchWarpgroup(fn, "hazard", 4096, pa, pb, pd, mode);
                return null;
            } catch (CudaException e) {
                return e.getMessage();
            }
        };
        for (int mode : new int[] {0, 6, 8}) {
            assertEquals(null, run.apply(mode), "mode " + mode);
            float[] d = download(pd, 64 * 64);
            for (int i = 0; i < 64; i++) {
                for (int j = 0; j < 64; j++) {
                    float want = 0;
                    for (int k = 0; k < 16; k++) want += a[i * 16 + k] * bt[j * 16 + k];
                    if (mode == 6 && j < 8 && j % 2 == 1 && i % 16 < 8) { // every thread's d[1]: row 16w + g, column 2q + 1
                        assertTrue(Float.isNaN(d[i * 64 + j]), "an accumulator read in flight, D[" + i + "][" + j + "] = " + d[i * 64 + j]);
                        continue;
                    }
                    assertEquals(want, d[i * 64 + j], "mode " + mode + ": D[" + i + "][" + j + "]");
                }
            }
        }
        String[][] failures = {
            {"1", "has not run fence.proxy.async since it landed"},
            {"2", "was stored to after the block's last fence.proxy.async"},
            {"3", "without a wgmma.fence"},
            {"4", "changed between the wgmma's issue and this thread's wait_group"},
            {"5", "was written between the wgmma's issue and this thread's wait_group"},
            {"7", "A registers (wg_mma_rs) changed between its issue"},
            {"9", "cp.async into byte 2048 of dynamic shared memory, which a wgmma not yet waited for"},
        };
        for (String[] f : failures) {
            String m = run.apply(Integer.parseInt(f[0]));
            assertTrue(m != null && m.contains(f[1]), "mode " + f[0] + " fails with \"" + f[1] + "\": " + m);
        }
        for (long p : new long[] {pa, pb, pd}) ctx.driver().free(p);
    }

    /**
     * cp.async lands at the issuing thread's wait_group (the latest a GPU may), group by group: a read before it sees
     * the old contents, so a pipeline that waits for too few groups computes with stale tiles.
     */
    /**
     * TMA with the 128-byte swizzle writes a box as CUDA's programming guide draws it: box row r (128 bytes) at r·128, its
     * 16-byte chunk c at chunk c ^ (r % 8); elements outside the tensor come in as zeros; the mbarrier's phase completes
     * when the expected bytes have landed. On a Hopper GPU this holds the simulator's TMA to the hardware's. On the
     * simulator, also: a read without the wait sees what was there before (the copy lands at the wait in block 0), and
     * a wait for a phase nothing completes is a deadlock that names the mbarrier.
     */
    @Test
    void tmaSwizzlesItsBoxAndCompletesTheMbarrierPhase() {
        Assumptions.assumeTrue(ctx.hopper(), "TMA needs a Hopper GPU (sm_90a): " + ctx.describe());
        MemorySegment fn = function(KernelSources.raw("tensorcore.cuh") + """
                // two 64x64 boxes of a 80x192 bf16 matrix: at column 64, row 8 (inside), and at column 160, row 40 (partly
                // outside: columns 192… and rows 80… read as zeros); mode 1 reads without waiting, mode 2 waits for the
                // next phase too
                extern "C" __global__ void tma_probe(const __grid_constant__ TmaMap map, unsigned short* out, int mode) {
                    extern __shared__ __align__(1024) unsigned char raw[];
                    unsigned char* sm = raw + ((1024 - (tc_smem_addr(raw) & 1023)) & 1023);
                    unsigned long long* bar = (unsigned long long*) (sm + 16384);
                    if (threadIdx.x == 0) {
                        mbar_init(bar, 1);
                        mbar_init_fence();
                    }
                    __syncthreads();
                    if (threadIdx.x == 0) {
                        mbar_arrive_expect_tx(bar, 16384);
                        tma_load_2d(sm, &map, 64, 8, bar);
                        tma_load_2d(sm + 8192, &map, 160, 40, bar);
                    }
                    if (mode != 1) mbar_wait(bar, 0);
                    if (mode == 2) mbar_wait(bar, 1);
                    for (int i = threadIdx.x; i < 8192; i += blockDim.x) out[i] = ((const unsigned short*) sm)[i];
                }
                """, "tma_probe", "compute_90a");
        int rows = 80, cols = 192;
        short[] host = new short[rows * cols];
        for (int i = 0; i < host.length; i++) host[i] = (short) (i + 1); // every element its own nonzero value
        long src = ctx.driver().allocOrZero(2L * host.length), out = ctx.driver().allocOrZero(2L * 8192);
        try (Arena a = Arena.ofConfined()) {
            ctx.driver().copyHtoDAsync(src, a.allocateFrom(ValueLayout.JAVA_SHORT, host), 2L * host.length, ctx.stream());
            MemorySegment map = ctx.driver().tensorMapBf16(a, src, rows, cols, 64, 64);
            CudaException tooWide = assertThrows(CudaException.class, () -> ctx.driver().tensorMapBf16(a, src, rows, cols, 64, 128),
                    "a 256-byte box row is wider than the 128-byte swizzle");
            assertTrue(tooWide.getMessage().contains("cuTensorMapEncodeTiled(bf16 80x192"), tooWide.getMessage());
            for (int mode = 0; mode < (ctx.describe().startsWith("cudasim") ? 3 : 1); mode++) {
                MemorySegment params = a.allocate(ValueLayout.ADDRESS, 3);
                params.setAtIndex(ValueLayout.ADDRESS, 0, map);
                params.setAtIndex(ValueLayout.ADDRESS, 1, a.allocateFrom(ValueLayout.JAVA_LONG, out));
                params.setAtIndex(ValueLayout.ADDRESS, 2, a.allocateFrom(ValueLayout.JAVA_INT, mode));
                if (mode == 2) {
                    CudaException e = assertThrows(CudaException.class, () -> {
                        ctx.driver().launch("tma_probe", fn, 1, 1, 1, 128, 1, 1, 16384 + 8 + 1024, ctx.stream(), params);
                        ctx.synchronize();
                    });
                    assertTrue(e.getMessage().contains("deadlock") && e.getMessage().contains("mbarrier.try_wait"), e.getMessage());
                    continue;
                }
                ctx.driver().launch("tma_probe", fn, 1, 1, 1, 128, 1, 1, 16384 + 8 + 1024, ctx.stream(), params);
                ctx.synchronize();
                MemorySegment got = a.allocate(2L * 8192);
                ctx.driver().copyDtoHAsync(got, out, 2L * 8192, ctx.stream());
                ctx.synchronize();
                short[] s = got.toArray(ValueLayout.JAVA_SHORT);
                if (mode == 1) {
                    assertEquals((short) -1, s[0], "read before the wait: shared memory as the block found it (0xFFFF)");
                    continue;
                }
                for (int box = 0; box < 2; box++) {
                    int x0 = box == 0 ? 64 : 160, y0 = box == 0 ? 8 : 40;
                    for (int r = 0; r < 64; r++) {
                        for (int e = 0; e < 64; e++) {
                            int at = 4096 * box + r * 64 + (((e / 8) ^ (r % 8)) * 8) + e % 8; // in bf16 elements
                            int y = y0 + r, x = x0 + e;
                            short want = y < rows && x < cols ? host[y * cols + x] : 0;
                            assertEquals(want, s[at], "box " + box + " element (" + r + ", " + e + ")");
                        }
                    }
                }
            }
        } finally {
            ctx.driver().free(src);
            ctx.driver().free(out);
        }
    }

    @Test
    void cpAsyncLandsAtItsWait() {
        assumeSimulator();
        MemorySegment fn = function(KernelSources.raw("tensorcore.cuh") + """
                extern "C" __global__ void landing(const float* x, float* y) {
                    __shared__ __align__(16) float s[8];
                    for (int i = 0; i < 8; i++) s[i] = -1.0f;
                    cp_async16(s, x);
                    cp_async_commit();
                    cp_async16(s + 4, x + 4);
                    cp_async_commit();
                    for (int i = 0; i < 8; i++) y[i] = s[i]; // racy: before any wait
                    cp_async_wait_all_but_one();              // the first group only
                    for (int i = 0; i < 8; i++) y[8 + i] = s[i];
                    cp_async_wait_all();
                    for (int i = 0; i < 8; i++) y[16 + i] = s[i];
                }
                """, "landing");
        long x = upload(new float[] {1f, 2f, 3f, 4f, 5f, 6f, 7f, 8f}), y = upload(new float[24]);
        launch(fn, "landing", 1, x, y);
        float[] got = download(y, 24), none = new float[8], first = new float[8], all = new float[8];
        System.arraycopy(got, 0, none, 0, 8);
        System.arraycopy(got, 8, first, 0, 8);
        System.arraycopy(got, 16, all, 0, 8);
        assertEquals("[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0]", java.util.Arrays.toString(none), "before any wait");
        assertEquals("[1.0, 2.0, 3.0, 4.0, -1.0, -1.0, -1.0, -1.0]", java.util.Arrays.toString(first), "after wait_group 1");
        assertEquals("[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]", java.util.Arrays.toString(all), "after wait_group 0");
        for (long p : new long[] {x, y}) ctx.driver().free(p);
    }

    /**
     * In odd blocks cp.async lands at issue (the earliest a GPU may): a refill of a stage that other threads have not
     * finished reading — no barrier between their reads and the refill — changes what they read. Even blocks land it
     * at the wait, as late as a GPU may, where the same race reads right: only the odd block can show it.
     */
    @Test
    void aRefillBeforeEveryThreadHasReadShowsInOddBlocks() {
        assumeSimulator();
        String src = KernelSources.raw("tensorcore.cuh") + """
                extern "C" __global__ void refill(const float* x, const float* z, float* y) {
                    __shared__ __align__(16) float s[64];
                    if (threadIdx.x < 16) cp_async16(s + 4 * threadIdx.x, x + blockIdx.x * 64 + 4 * threadIdx.x);
                    cp_async_commit();
                    cp_async_wait_all();
                    __syncthreads();
                    y[blockIdx.x * 64 + threadIdx.x] = s[63 - threadIdx.x];
                    BARRIER
                    if (threadIdx.x < 16) cp_async16(s + 4 * threadIdx.x, z + 4 * threadIdx.x); // the next tile into the same stage
                    cp_async_commit();
                    __syncthreads();
                    cp_async_wait_all();
                }
                """;
        float[] x = new float[128];
        for (int i = 0; i < x.length; i++) x[i] = i + 1;
        long px = upload(x), pz = upload(new float[64]), py = upload(new float[128]);
        for (boolean barrier : new boolean[] {true, false}) {
            String name = barrier ? "refill" : "refill_racy";
            MemorySegment fn = function(src.replace("BARRIER", barrier ? "__syncthreads();" : "").replace("void refill(", "void " + name + "("), name);
            launchBlocks(fn, name, 2, 64, px, pz, py);
            float[] y = download(py, 128);
            int[] wrong = new int[2];
            for (int b = 0; b < 2; b++) for (int t = 0; t < 64; t++) if (y[b * 64 + t] != x[b * 64 + 63 - t]) wrong[b]++;
            if (barrier) {
                assertEquals(0, wrong[0] + wrong[1], "with the barrier before the refill");
            } else {
                assertEquals(0, wrong[0], "block 0: copies land at the wait, after every read");
                assertTrue(wrong[1] > 0, "block 1: copies land at issue, before the reads of the threads that run after");
            }
        }
        for (long p : new long[] {px, pz, py}) ctx.driver().free(p);
    }

    /** The message of the failed launch of kernel {@code name} on one block of {@code threads}, given {@code floats} zeros. */
    private String launchFailure(String source, String name, int threads, int floats) {
        assumeSimulator();
        MemorySegment fn = function(source, name);
        long p = upload(new float[floats]);
        try {
            return assertThrows(CudaException.class, () -> launch(fn, name, threads, p)).getMessage();
        } finally {
            ctx.driver().free(p);
        }
    }

    @Test
    void aWritePastTheEndOfAnAllocationFailsTheLaunchAndNamesIt() {
        String m = launchFailure("""
                extern "C" __global__ void overrun(float* x) { x[threadIdx.x + 1024] = 1.0f; }
                """, "overrun", 32, 1024);
        assertTrue(m.contains("overrun") && m.contains("past the end of the allocation of 4096 bytes"), m);
        assertEquals(2f, download(upload(new float[] {2f}), 1)[0], "the device works after a failed launch");
    }

    /** A float2 load at an address 4 bytes off its 8-byte alignment: a GPU's CUDA_ERROR_MISALIGNED_ADDRESS. */
    @Test
    void aMisalignedVectorLoadFailsTheLaunch() {
        String m = launchFailure("""
                extern "C" __global__ void skew(float* x) {
                    float2 v = *(const float2*) (x + 2 * threadIdx.x + (threadIdx.x == 5));
                    x[64 + threadIdx.x] = v.x + v.y;
                }
                """, "skew", 32, 128);
        assertTrue(m.contains("thread (5,0,0) of block (0,0,0): misaligned access"), m);
        assertTrue(m.contains("CUDA_ERROR_MISALIGNED_ADDRESS on a GPU"), m);
    }

    @Test
    void aWritePastTheDynamicSharedMemoryFailsTheLaunch() {
        assumeSimulator();
        MemorySegment fn = function("""
                extern "C" __global__ void spill(float* x) {
                    extern __shared__ float sm[];
                    sm[threadIdx.x + 16] = x[threadIdx.x];
                }
                """, "spill");
        long p = upload(new float[32]);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = a.allocate(ValueLayout.ADDRESS, 1);
            params.setAtIndex(ValueLayout.ADDRESS, 0, a.allocateFrom(ValueLayout.JAVA_LONG, p));
            CudaException e = assertThrows(CudaException.class, () -> ctx.driver().launch("spill", fn, 1, 1, 1, 32, 1, 1, 64, ctx.stream(), params));
            assertTrue(e.getMessage().contains("0 bytes past the end of the block's 64 bytes of dynamic shared memory"), e.getMessage());
        }
        ctx.driver().free(p);
    }

    @Test
    void aShuffleThatWaitsForLanesAtABarrierIsADeadlock() {
        String m = launchFailure("""
                extern "C" __global__ void stuck(float* x) {
                    if (threadIdx.x < 48) x[threadIdx.x] = __shfl_sync(0xffffffffu, x[threadIdx.x], 0); // lanes 48..63 never come
                    else __syncthreads();
                    __syncthreads();
                }
                """, "stuck", 64, 64);
        assertTrue(m.contains("deadlock") && m.contains("__shfl_sync") && m.contains("__syncthreads"), m);
    }

    @Test
    void aShuffleNamingAnExitedLaneFailsTheLaunch() {
        String m = launchFailure("""
                extern "C" __global__ void early(float* x) {
                    if (threadIdx.x == 0) return;
                    x[threadIdx.x] = __shfl_xor_sync(0xffffffffu, x[threadIdx.x], 1);
                }
                """, "early", 32, 32);
        assertTrue(m.contains("exited"), m);
    }

    @Test
    void aBlockLargerThanTheKernelsLaunchBoundsIsRefused() {
        assumeSimulator();
        String src = """
                extern "C" __global__ void __launch_bounds__(2 * 32, 1) small(float* x) { x[threadIdx.x] = 0.0f; }
                """;
        launch(function(src, "small"), "small", 64, upload(new float[64])); // within its bounds
        String m = launchFailure(src, "small", 128, 128);
        assertTrue(m.contains("128 threads, __launch_bounds__ allows 64"), m);
    }

    /** A missing barrier: each thread reads what another thread of its block wrote in the same interval. */
    @Test
    void aMissingBarrierGivesWrongValuesWhicheverWayTheThreadsRead() {
        assumeSimulator();
        String src = """
                extern "C" __global__ void mirror(const float* x, float* y) {
                    __shared__ float s[64];
                    s[threadIdx.x] = x[blockIdx.x * 64 + threadIdx.x];
                    BARRIER
                    y[blockIdx.x * 64 + threadIdx.x] = s[63 - threadIdx.x];
                }
                """;
        float[] x = new float[128];
        for (int i = 0; i < x.length; i++) x[i] = i + 1;
        long px = upload(x), py = upload(new float[128]);
        for (boolean barrier : new boolean[] {true, false}) {
            String name = barrier ? "mirror" : "mirror_racy";
            MemorySegment fn = function(src.replace("BARRIER", barrier ? "__syncthreads();" : "").replace("void mirror(", "void " + name + "("), name);
            launchBlocks(fn, name, 2, 64, px, py);
            float[] y = download(py, 128);
            for (int b = 0; b < 2; b++) {
                int wrong = 0;
                for (int t = 0; t < 64; t++) if (y[b * 64 + t] != x[b * 64 + 63 - t]) wrong++;
                if (barrier) assertEquals(0, wrong, "block " + b + " with its barrier");
                else assertTrue(wrong > 0, "block " + b + " (threads run " + (b == 0 ? "forward" : "in reverse") + ") shows the race");
            }
        }
        ctx.driver().free(px);
        ctx.driver().free(py);
    }

    /** Device memory fresh from cuMemAlloc, and a block's __shared__ memory that block did not write (though the block
     *  before it did), read as NaN: a kernel that reads what nothing wrote shows in its output. */
    @Test
    void memoryNothingWroteReadsAsNan() {
        assumeSimulator();
        long p = ctx.driver().allocOrZero(64);
        for (float v : download(p, 16)) assertTrue(Float.isNaN(v), "fresh device memory");
        ctx.driver().free(p);
        MemorySegment fn = function("""
                extern "C" __global__ void partial(float* y) {
                    __shared__ float s[64];
                    if (threadIdx.x < (blockIdx.x == 0 ? 64 : 32)) s[threadIdx.x] = 1.0f;
                    __syncthreads();
                    y[blockIdx.x * 64 + threadIdx.x] = s[threadIdx.x];
                }
                """, "partial");
        long y = upload(new float[128]);
        try (Arena a = Arena.ofConfined()) {
            MemorySegment params = a.allocate(ValueLayout.ADDRESS, 1);
            params.setAtIndex(ValueLayout.ADDRESS, 0, a.allocateFrom(ValueLayout.JAVA_LONG, y));
            ctx.driver().launch("partial", fn, 2, 1, 1, 64, 1, 1, 0, ctx.stream(), params);
        }
        float[] out = download(y, 128);
        for (int i = 0; i < 96; i++) assertEquals(1f, out[i], "written: " + i);
        for (int i = 96; i < 128; i++) assertTrue(Float.isNaN(out[i]), "block 1's unwritten shared memory at " + (i - 64) + ": " + out[i]);
        ctx.driver().free(y);
    }
}
