package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.cuda.Ffi.I;
import static nanochat4j.tensor.cuda.Ffi.J;
import static nanochat4j.tensor.cuda.Ffi.P;
import static nanochat4j.tensor.cuda.Ffi.rc;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.function.Supplier;

/**
 * cuBLAS through FFM: a handle bound to one stream, fp32 SGEMM (plain and strided-batched) and the mixed-precision
 * GemmEx family (bf16 operands, fp32 accumulation). cuBLAS is column-major: callers pass row-major problems as
 * their transpose (see {@code CudaBackend}). alpha/beta live in host memory (the default pointer mode), written
 * for each call: the context's one handle serves every thread (serve's workers decode on one stream at once), and
 * cuBLAS reads host scalars during the call, so a pair shared between calls could carry another thread's values.
 */
public final class Cublas implements AutoCloseable {
    public static final int OP_N = 0, OP_T = 1;
    /** cudaDataType values. */
    public static final int R_32F = 0, R_16BF = 14;
    /** cublasComputeType_t: fp32 accumulation, and fp32 with TF32 tensor cores allowed. */
    public static final int COMPUTE_32F = 68, COMPUTE_32F_FAST_TF32 = 77;
    static final int GEMM_DEFAULT = -1;
    /** cublasStatus_t: cuBLAS could not allocate its workspace on the device. */
    static final int STATUS_ALLOC_FAILED = 3;
    private static final String LIB = "libcublas";

    private static Api api;
    private static String from;

    private final Api calls;
    private final MemorySegment handle;
    private final OutOfMemory memory;
    private final Timed timed;

    /** How a call is queued: as it is, or between a profile's events ({@link CudaContext#startProfile}). */
    @FunctionalInterface
    public interface Timed {
        void queue(String name, Runnable call);

        Timed UNTIMED = (name, call) -> call.run();
    }

    /** What a call does when cuBLAS finds no device memory for its workspace: free our cache, ask how much is free. */
    public record OutOfMemory(Runnable freeCached, Supplier<long[]> memoryInfo) {
        static final OutOfMemory NONE = new OutOfMemory(() -> {}, () -> new long[] {-1, -1});
    }

    /** cuBLAS's entry points; bound from the library once per process ({@link #api}). */
    static final class Api {
        final MethodHandle create, destroy, setStream, sgemm, sgemmBatched, gemmEx, gemmBatchedEx, statusString;

        Api(Ffi.Binder lib) {
            statusString = lib.fn(FunctionDescriptor.of(P, I), "cublasGetStatusString");
            // Only the _v2 names: the undecorated cublasSgemm (and cublasCreate…, where a library still exports them)
            // is the legacy cublas.h API, no handle and scalars by value, which these descriptors would call wrongly.
            destroy = lib.fn(rc(P), "cublasDestroy_v2");
            setStream = lib.fn(rc(P, P), "cublasSetStream_v2");
            sgemm = lib.fn(rc(P, I, I, I, I, I, P, J, I, J, I, P, J, I), "cublasSgemm_v2");
            sgemmBatched = lib.fn(rc(P, I, I, I, I, I, P, J, I, J, J, I, J, P, J, I, J, I), "cublasSgemmStridedBatched");
            gemmEx = lib.fn(rc(P, I, I, I, I, I, P, J, I, I, J, I, I, P, J, I, I, I, I), "cublasGemmEx");
            gemmBatchedEx = lib.fn(rc(P, I, I, I, I, I, P, J, I, I, J, J, I, I, J, P, J, I, I, J, I, I, I),
                    "cublasGemmStridedBatchedEx");
            create = lib.fn(rc(P), "cublasCreate_v2");
        }
    }

    /** cuBLAS bound once per process: of the sonames found, one the driver ({@code cudaVersion}) can run first. */
    private static synchronized Api api(int cudaVersion) {
        if (api == null) {
            CudaLibraries.Opened lib = CudaLibraries.open(CudaLibraries.CUBLAS, cudaVersion);
            api = new Api(Ffi.Binder.of(lib, LIB));
            from = lib.from();
        }
        return api;
    }

    /**
     * A handle whose work goes to {@code stream} (the calling thread's current context must be the device's, whose
     * driver supports CUDA {@code cudaVersion}, e.g. 12080); a call that finds no memory for cuBLAS's workspace frees
     * {@code memory}'s cache and tries once more.
     */
    public Cublas(MemorySegment stream, OutOfMemory memory, int cudaVersion) {
        this(api(cudaVersion), stream, memory, Timed.UNTIMED, cudaVersion);
    }

    /** The same, each call queued through {@code timed} (a context's profile). */
    public Cublas(MemorySegment stream, OutOfMemory memory, Timed timed, int cudaVersion) {
        this(api(cudaVersion), stream, memory, timed, cudaVersion);
    }

    Cublas(Api calls, MemorySegment stream, OutOfMemory memory) {
        this(calls, stream, memory, Timed.UNTIMED, 0);
    }

    private Cublas(Api calls, MemorySegment stream, OutOfMemory memory, Timed timed, int cudaVersion) {
        this.calls = calls;
        this.memory = memory;
        this.timed = timed;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            try {
                check("cublasCreate", (int) calls.create.invokeExact(p));
            } catch (CudaException e) {
                String hint = newerThanDriver(from, cudaVersion);
                throw hint == null ? e : new CudaException(e.getMessage() + "; " + hint, e.code(), e);
            }
            handle = p.get(P, 0);
            check("cublasSetStream", (int) calls.setStream.invokeExact(handle, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static String from() {
        return from;
    }

    /**
     * Why cuBLAS at {@code lib} may not run on a driver of CUDA {@code cudaVersion} (a CUDA 13 cuBLAS needs a CUDA 13
     * driver, ≥ 580), or null when its soname's major is not newer than the driver's.
     */
    static String newerThanDriver(String lib, int cudaVersion) {
        int major = CudaLibraries.sonameMajor(lib);
        if (major < 0 || cudaVersion <= 0 || major <= cudaVersion / 1000) return null;
        return "this cuBLAS (" + lib + ") is CUDA " + major + "'s and the NVIDIA driver supports CUDA " + cudaVersion / 1000 + "."
                + (cudaVersion % 1000) / 10 + ": update the driver, or point -Dnanochat4j.cuda.cublas at a libcublas.so."
                + cudaVersion / 1000;
    }

    /** Column-major C = alpha·op(A)·op(B) + beta·C in fp32; pointers are device addresses. */
    public void sgemm(int opA, int opB, int m, int n, int k, float alpha, long a, int lda, long b, int ldb, float beta, long c, int ldc) {
        try (Arena scalars = Arena.ofConfined()) {
            MemorySegment al = scalars.allocateFrom(Ffi.F, alpha), be = scalars.allocateFrom(Ffi.F, beta);
            run("cublasSgemm(" + m + "x" + n + "x" + k + ")", () -> (int) calls.sgemm.invokeExact(handle, opA, opB, m, n, k, al, a, lda,
                    b, ldb, be, c, ldc));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void sgemmStridedBatched(int opA, int opB, int m, int n, int k, float alpha, long a, int lda, long strideA,
                                    long b, int ldb, long strideB, float beta, long c, int ldc, long strideC, int batch) {
        try (Arena scalars = Arena.ofConfined()) {
            MemorySegment al = scalars.allocateFrom(Ffi.F, alpha), be = scalars.allocateFrom(Ffi.F, beta);
            run("cublasSgemmStridedBatched(" + batch + " x " + m + "x" + n + "x" + k + ")", () -> (int) calls.sgemmBatched.invokeExact(handle, opA, opB,
                    m, n, k, al, a, lda, strideA, b, ldb, strideB, be, c, ldc, strideC, batch));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** GemmEx: A/B/C of the given cudaDataTypes, fp32 alpha/beta, {@code compute} a cublasComputeType_t. */
    public void gemmEx(int opA, int opB, int m, int n, int k, float alpha, long a, int aType, int lda, long b, int bType, int ldb,
                       float beta, long c, int cType, int ldc, int compute) {
        try (Arena scalars = Arena.ofConfined()) {
            MemorySegment al = scalars.allocateFrom(Ffi.F, alpha), be = scalars.allocateFrom(Ffi.F, beta);
            run("cublasGemmEx(" + m + "x" + n + "x" + k + ")", () -> (int) calls.gemmEx.invokeExact(handle, opA, opB, m, n, k, al,
                    a, aType, lda, b, bType, ldb, be, c, cType, ldc, compute, GEMM_DEFAULT));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Row-major C (m×n) = alpha·op(A)·op(B) + beta·C, bf16 A (m, k) — or stored (k, m) when {@code transA} — and B
     * (n, k) when {@code transB}, else (k, n), fp32 C and accumulation: GemmEx on the column-major transposes,
     * Cᵀ = op(B)ᵀ·op(A)ᵀ, so B goes first.
     */
    public void gemmBf16RowMajor(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long b, float beta, long c) {
        gemmBf16RowMajor(1, transA, transB, m, n, k, alpha, a, 0, b, 0, beta, c);
    }

    /**
     * {@link #gemmBf16RowMajor} over a batch: entry i reads A at a + 2·i·strideA and B at b + 2·i·strideB (strides in
     * elements, 0 for an operand the batch shares) and writes its m×n C right after entry i − 1's. One GemmEx for a
     * batch of 1, else one strided-batched call.
     */
    public void gemmBf16RowMajor(int batch, boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long strideA,
                                 long b, long strideB, float beta, long c) {
        int opB = transB ? OP_T : OP_N, opA = transA ? OP_T : OP_N, ldb = transB ? k : n, lda = transA ? m : k;
        if (batch == 1) {
            gemmEx(opB, opA, n, m, k, alpha, b, R_16BF, ldb, a, R_16BF, lda, beta, c, R_32F, n, COMPUTE_32F);
        } else {
            gemmStridedBatchedEx(opB, opA, n, m, k, alpha, b, R_16BF, ldb, strideB, a, R_16BF, lda, strideA, beta, c, R_32F, n,
                    (long) m * n, batch, COMPUTE_32F);
        }
    }

    /** bf16 batched GEMM: strides in elements, 0 for an operand every batch entry shares (Muon's polar express, CudaBackend.matmulAtPrecision). */
    public void gemmStridedBatchedEx(int opA, int opB, int m, int n, int k, float alpha, long a, int aType, int lda, long strideA,
                                     long b, int bType, int ldb, long strideB, float beta, long c, int cType, int ldc, long strideC,
                                     int batch, int compute) {
        try (Arena scalars = Arena.ofConfined()) {
            MemorySegment al = scalars.allocateFrom(Ffi.F, alpha), be = scalars.allocateFrom(Ffi.F, beta);
            run("cublasGemmStridedBatchedEx(" + batch + " x " + m + "x" + n + "x" + k + ")", () -> (int) calls.gemmBatchedEx.invokeExact(handle,
                    opA, opB, m, n, k, al, a, aType, lda, strideA, b, bType, ldb, strideB, be, c, cType, ldc, strideC, batch,
                    compute, GEMM_DEFAULT));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @Override
    public void close() {
        try {
            check("cublasDestroy", (int) calls.destroy.invokeExact(handle));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    @FunctionalInterface
    private interface Call {
        int run() throws Throwable;
    }

    /** {@code call}, once more after freeing the cache if cuBLAS found no memory for its workspace; then checked. */
    private void run(String call, Call c) {
        timed.queue(call, () -> runUntimed(call, c));
    }

    private void runUntimed(String call, Call c) {
        int status = CudaContext.retryOnOutOfMemory(() -> {
            int s;
            try {
                s = c.run();
            } catch (Throwable t) {
                throw rethrow(t);
            }
            if (s != STATUS_ALLOC_FAILED) return s;
            long[] info = memory.memoryInfo().get();
            throw new CudaOutOfMemoryException(call, -1, info[0], info[1]);
        }, memory.freeCached());
        check(call, status);
    }

    private void check(String call, int status) {
        if (status == 0) return;
        String text;
        try {
            text = Ffi.cString((MemorySegment) calls.statusString.invokeExact(status));
        } catch (Throwable t) {
            text = "cublasStatus_t " + status;
        }
        throw new CudaException(call + " failed: " + text + " (status " + status + ")", status);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
