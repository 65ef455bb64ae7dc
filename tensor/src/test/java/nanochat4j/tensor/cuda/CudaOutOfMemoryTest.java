package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/**
 * Device memory can run out inside CUDA's own calls, not only in our cuMemAlloc: loading a module (its code), a
 * launch (local memory), cuBLAS (its workspace). Each is the same {@link CudaOutOfMemoryException} a training run turns
 * into its "out of GPU memory" message, after the cache went back to the driver and one more try. Stand-in libraries
 * return the chosen status codes.
 */
class CudaOutOfMemoryTest {

    /** A driver whose {@code failing} call returns {@code code}; cuMemGetInfo reports 1 GiB free of 80. */
    private static Driver driver(String failing, int code) {
        FfiSignaturesTest.Recorder rest = new FfiSignaturesTest.Recorder();
        return new Driver((fd, names) -> {
            if (names[0].equals(failing)) return constant(fd, code);
            if (names[0].equals("cuMemGetInfo_v2")) return memGetInfo(fd);
            return rest.fn(fd, names);
        }, "stand-in");
    }

    private static MethodHandle constant(FunctionDescriptor fd, int code) {
        return MethodHandles.dropArguments(MethodHandles.constant(int.class, code), 0, fd.toMethodType().parameterList());
    }

    @SuppressWarnings("unused") // through the stand-in's method handle
    private static int memGetInfo(MemorySegment free, MemorySegment total) {
        free.reinterpret(8).set(Ffi.J, 0, 1L << 30);
        total.reinterpret(8).set(Ffi.J, 0, 80L << 30);
        return 0;
    }

    private static MethodHandle memGetInfo(FunctionDescriptor fd) {
        try {
            return MethodHandles.lookup().findStatic(CudaOutOfMemoryTest.class, "memGetInfo", fd.toMethodType());
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void theDriversOutOfMemoryAnywhereIsAnOutOfMemoryErrorWithTheFreeMemory() {
        Driver d = driver("cuLaunchKernel", Driver.CUDA_ERROR_OUT_OF_MEMORY);
        CudaOutOfMemoryException e = assertThrows(CudaOutOfMemoryException.class,
                () -> d.launch("attn_fwd", MemorySegment.NULL, 1, 1, 1, 128, 1, 1, 0, MemorySegment.NULL, MemorySegment.NULL));
        assertEquals(-1, e.requested());
        assertEquals(1L << 30, e.free());
        assertEquals(80L << 30, e.total());
        assertTrue(e.what().startsWith("cuLaunchKernel(attn_fwd"), e.what());
        assertTrue(e.getMessage().contains("failed for lack of memory, 1.00 GiB free of 80.00 GiB")
                && e.getMessage().contains("smaller --device-batch-size"), e.getMessage());
        // other errors stay what they were
        CudaException other = assertThrows(CudaException.class, () -> driver("cuLaunchKernel", 700).launch("attn_fwd", MemorySegment.NULL,
                1, 1, 1, 128, 1, 1, 0, MemorySegment.NULL, MemorySegment.NULL));
        assertTrue(!(other instanceof CudaOutOfMemoryException) && other.code() == 700, other.toString());
    }

    @Test
    void aCallThatFindsNoMemoryFreesTheCacheAndTriesOnceMore() {
        AtomicInteger tries = new AtomicInteger(), freed = new AtomicInteger();
        CudaOutOfMemoryException full = new CudaOutOfMemoryException("cuModuleLoadData(attention.cu)", -1, 0, 80L << 30);
        String got = CudaContext.retryOnOutOfMemory(() -> {
            if (tries.incrementAndGet() == 1) throw full;
            return "module";
        }, freed::incrementAndGet);
        assertEquals("module", got);
        assertEquals(1, freed.get());
        tries.set(0);
        assertEquals(full, assertThrows(CudaOutOfMemoryException.class, () -> CudaContext.retryOnOutOfMemory(() -> {
            tries.incrementAndGet();
            throw full;
        }, freed::incrementAndGet)));
        assertEquals(2, tries.get(), "one retry, not a loop");
        tries.set(0);
        assertThrows(CudaException.class, () -> CudaContext.retryOnOutOfMemory(() -> {
            tries.incrementAndGet();
            throw new CudaException("cuModuleLoadData failed: CUDA_ERROR_INVALID_PTX", 218);
        }, freed::incrementAndGet));
        assertEquals(1, tries.get(), "only a lack of memory is retried");
    }

    /** cuBLAS's cublasGemmEx stand-in: CUBLAS_STATUS_ALLOC_FAILED for the first {@code failures} calls. */
    private static Cublas cublas(int failures, AtomicInteger calls, AtomicInteger freed) {
        FfiSignaturesTest.Recorder rest = new FfiSignaturesTest.Recorder();
        Cublas.Api api = new Cublas.Api((fd, names) -> names[0].equals("cublasGemmEx")
                ? MethodHandles.dropArguments(statusHandle(failures, calls), 0, fd.toMethodType().parameterList())
                : rest.fn(fd, names));
        return new Cublas(api, MemorySegment.NULL, new Cublas.OutOfMemory(freed::incrementAndGet, () -> new long[] {1L << 29, 80L << 30}));
    }

    private static MethodHandle statusHandle(int failures, AtomicInteger calls) {
        try {
            MethodHandle s = MethodHandles.lookup().findStatic(CudaOutOfMemoryTest.class, "status",
                    MethodType.methodType(int.class, int.class, AtomicInteger.class));
            return MethodHandles.insertArguments(s, 0, failures, calls);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    @SuppressWarnings("unused") // through the stand-in's method handle
    private static int status(int failures, AtomicInteger calls) {
        return calls.incrementAndGet() <= failures ? Cublas.STATUS_ALLOC_FAILED : 0;
    }

    private static void gemm(Cublas b) {
        b.gemmEx(Cublas.OP_T, Cublas.OP_N, 768, 4096, 768, 1f, 0L, Cublas.R_16BF, 768, 0L, Cublas.R_16BF, 768, 0f, 0L, Cublas.R_32F, 768,
                Cublas.COMPUTE_32F);
    }

    @Test
    void cublasWithoutWorkspaceMemoryFreesTheCacheRetriesOnceThenSaysSo() {
        AtomicInteger calls = new AtomicInteger(), freed = new AtomicInteger();
        gemm(cublas(1, calls, freed));
        assertEquals(2, calls.get());
        assertEquals(1, freed.get());
        calls.set(0);
        CudaOutOfMemoryException e = assertThrows(CudaOutOfMemoryException.class, () -> gemm(cublas(2, calls, freed)));
        assertEquals(2, calls.get(), "one retry, not a loop");
        assertTrue(e.what().equals("cublasGemmEx(768x4096x768)") && e.free() == 1L << 29 && e.requested() == -1, e.getMessage());
    }
}
