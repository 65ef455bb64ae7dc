package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.cuda.Ffi.F;
import static nanochat4j.tensor.cuda.Ffi.I;
import static nanochat4j.tensor.cuda.Ffi.J;
import static nanochat4j.tensor.cuda.Ffi.P;
import static nanochat4j.tensor.cuda.Ffi.rc;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * The CUDA driver API (libcuda) through FFM downcalls: init, devices, the primary context, memory, streams,
 * events, modules and kernel launches. Handles (contexts, streams, events, modules, functions) are
 * {@link MemorySegment} addresses, device pointers are longs. Every call checks its CUresult and throws a
 * {@link CudaException} naming the call, the error's name and {@code cuGetErrorString}'s text.
 */
public final class Driver {
    public static final int CUDA_ERROR_OUT_OF_MEMORY = 2;
    public static final int CUDA_ERROR_NO_DEVICE = 100;
    public static final int CUDA_ERROR_INVALID_PTX = 218;
    public static final int CUDA_ERROR_UNSUPPORTED_PTX_VERSION = 222;
    public static final int CUDA_ERROR_STUB_LIBRARY = 34;
    public static final int CUDA_ERROR_SYSTEM_DRIVER_MISMATCH = 803;

    public static final int ATTR_MULTIPROCESSOR_COUNT = 16;
    public static final int ATTR_L2_CACHE_SIZE = 38;
    public static final int ATTR_CC_MAJOR = 75;
    public static final int ATTR_CC_MINOR = 76;
    public static final int ATTR_MAX_SHARED_PER_BLOCK_OPTIN = 97;
    public static final int FUNC_ATTR_MAX_DYNAMIC_SHARED = 8;
    /** A TMA tensor map (CUtensorMap): 128 bytes, 64-byte aligned. */
    public static final long TENSOR_MAP_BYTES = 128, TENSOR_MAP_ALIGN = 64;
    /** CUtensorMapDataType BFLOAT16, CUtensorMapSwizzle 128B, CUtensorMapL2promotion L2_256B. */
    static final int TENSOR_MAP_BFLOAT16 = 9, TENSOR_MAP_SWIZZLE_128B = 3, TENSOR_MAP_L2_256B = 3;
    /** Stream capture that lets other threads' calls go on (theirs go to other streams); cuMemAlloc stays allowed. */
    public static final int STREAM_CAPTURE_MODE_RELAXED = 2;
    /** CUjit_option: the JIT's info and error logs (buffer, then its size in bytes, which the driver sets to what it wrote), verbose. */
    static final int JIT_INFO_LOG_BUFFER = 3, JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4, JIT_ERROR_LOG_BUFFER = 5,
            JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6, JIT_LOG_VERBOSE = 12;
    /** Bytes kept of each JIT log (a verbose report is a few lines a kernel). */
    private static final int JIT_LOG_BYTES = 32 * 1024;

    private static final String LIB = "libcuda";

    private final String from;
    private final MethodHandle cuInit, cuDriverGetVersion, cuDeviceGetCount, cuDeviceGet, cuDeviceGetName,
            cuDeviceGetAttribute, cuDevicePrimaryCtxRetain, cuCtxSetCurrent, cuMemAlloc, cuMemFree, cuMemcpyHtoDAsync,
            cuMemcpyDtoHAsync, cuMemcpyDtoDAsync, cuMemsetD8Async, cuMemsetD32Async, cuMemGetInfo, cuStreamCreate, cuStreamSynchronize,
            cuStreamDestroy, cuEventCreate, cuEventRecord, cuEventSynchronize, cuEventElapsedTime, cuEventDestroy,
            cuModuleLoadDataEx, cuModuleGetFunction, cuFuncSetAttribute, cuLaunchKernel, cuGetErrorString, cuGetErrorName,
            cuStreamBeginCapture, cuStreamEndCapture, cuGraphInstantiate, cuGraphLaunch, cuGraphExecDestroy, cuGraphDestroy,
            cuTensorMapEncodeTiled;

    Driver(Ffi.Binder lib, String from) {
        this.from = from;
        cuGetErrorString = lib.fn(rc(I, P), "cuGetErrorString");
        cuGetErrorName = lib.fn(rc(I, P), "cuGetErrorName");
        cuInit = lib.fn(rc(I), "cuInit");
        cuDriverGetVersion = lib.fn(rc(P), "cuDriverGetVersion");
        cuDeviceGetCount = lib.fn(rc(P), "cuDeviceGetCount");
        cuDeviceGet = lib.fn(rc(P, I), "cuDeviceGet");
        cuDeviceGetName = lib.fn(rc(P, I, I), "cuDeviceGetName");
        cuDeviceGetAttribute = lib.fn(rc(P, I, I), "cuDeviceGetAttribute");
        cuDevicePrimaryCtxRetain = lib.fn(rc(P, I), "cuDevicePrimaryCtxRetain");
        cuCtxSetCurrent = lib.fn(rc(P), "cuCtxSetCurrent");
        cuMemAlloc = lib.fn(rc(P, J), "cuMemAlloc_v2");
        cuMemFree = lib.fn(rc(J), "cuMemFree_v2");
        cuMemcpyHtoDAsync = lib.fn(rc(J, P, J, P), "cuMemcpyHtoDAsync_v2");
        cuMemcpyDtoHAsync = lib.fn(rc(P, J, J, P), "cuMemcpyDtoHAsync_v2");
        cuMemcpyDtoDAsync = lib.fn(rc(J, J, J, P), "cuMemcpyDtoDAsync_v2");
        cuMemsetD8Async = lib.fn(rc(J, I, J, P), "cuMemsetD8Async");
        cuMemsetD32Async = lib.fn(rc(J, I, J, P), "cuMemsetD32Async");
        cuMemGetInfo = lib.fn(rc(P, P), "cuMemGetInfo_v2");
        cuStreamCreate = lib.fn(rc(P, I), "cuStreamCreate");
        cuStreamSynchronize = lib.fn(rc(P), "cuStreamSynchronize");
        cuStreamDestroy = lib.fn(rc(P), "cuStreamDestroy_v2");
        cuEventCreate = lib.fn(rc(P, I), "cuEventCreate");
        cuEventRecord = lib.fn(rc(P, P), "cuEventRecord");
        cuEventSynchronize = lib.fn(rc(P), "cuEventSynchronize");
        cuEventElapsedTime = lib.fn(rc(P, P, P), "cuEventElapsedTime_v2", "cuEventElapsedTime");
        cuEventDestroy = lib.fn(rc(P), "cuEventDestroy_v2");
        cuModuleLoadDataEx = lib.fn(rc(P, P, I, P, P), "cuModuleLoadDataEx");
        cuModuleGetFunction = lib.fn(rc(P, P, P), "cuModuleGetFunction");
        cuFuncSetAttribute = lib.fn(rc(P, I, I), "cuFuncSetAttribute");
        cuLaunchKernel = lib.fn(rc(P, I, I, I, I, I, I, I, P, P, P), "cuLaunchKernel");
        cuStreamBeginCapture = lib.fn(rc(P, I), "cuStreamBeginCapture_v2");
        cuStreamEndCapture = lib.fn(rc(P, P), "cuStreamEndCapture");
        cuGraphInstantiate = lib.fn(rc(P, P, J), "cuGraphInstantiateWithFlags");
        cuGraphLaunch = lib.fn(rc(P, P), "cuGraphLaunch");
        cuGraphExecDestroy = lib.fn(rc(P), "cuGraphExecDestroy");
        cuGraphDestroy = lib.fn(rc(P), "cuGraphDestroy");
        cuTensorMapEncodeTiled = lib.fn(rc(P, I, I, P, P, P, P, P, I, I, I, I), "cuTensorMapEncodeTiled");
    }

    /** Opens libcuda (see {@link CudaLibraries}); throws {@link CudaUnavailableException} with a one-line message. */
    public static Driver load() {
        CudaLibraries.Opened lib = CudaLibraries.open(CudaLibraries.DRIVER);
        return new Driver(Ffi.Binder.of(lib, LIB), lib.from());
    }

    /** Where libcuda was found. */
    public String from() {
        return from;
    }

    // ------------------------------------------------------------------ errors

    /**
     * Throws when {@code result} is not CUDA_SUCCESS, naming {@code call}: CUDA_ERROR_OUT_OF_MEMORY as a
     * {@link CudaOutOfMemoryException} (a module load or a launch allocates on the device too), with the free and total
     * memory where the driver can still tell.
     */
    public void check(String call, int result) {
        if (result == 0) return;
        if (result == CUDA_ERROR_OUT_OF_MEMORY) throw outOfMemory(call);
        throw new CudaException(call + " failed: " + describe(result), result);
    }

    /** {@code call} found no device memory for its own use: the error, with cuMemGetInfo's figures where it answers. */
    CudaOutOfMemoryException outOfMemory(String call) {
        long[] info;
        try {
            info = memoryInfo();
        } catch (CudaException e) {
            info = new long[] {-1, -1};
        }
        return new CudaOutOfMemoryException(call, -1, info[0], info[1]);
    }

    /** "CUDA_ERROR_X (text)" for a CUresult. */
    public String describe(int result) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment name = a.allocate(P), text = a.allocate(P);
            int r1 = (int) cuGetErrorName.invokeExact(result, name);
            int r2 = (int) cuGetErrorString.invokeExact(result, text);
            String n = r1 == 0 ? Ffi.cString(name.get(P, 0)) : "CUresult " + result;
            String t = r2 == 0 ? Ffi.cString(text.get(P, 0)) : "unknown error";
            return n + " (" + t + ")";
        } catch (Throwable t) {
            return "CUresult " + result;
        }
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    // ------------------------------------------------------------------ init, devices, context

    public void init() {
        try {
            int r = (int) cuInit.invokeExact(0);
            if (r == CUDA_ERROR_NO_DEVICE) throw new CudaUnavailableException("CUDA: the driver (" + from + ") sees no GPU (cuInit: " + describe(r) + ")", r);
            if (r == CUDA_ERROR_STUB_LIBRARY) {
                throw new CudaUnavailableException("CUDA: " + from + " is the CUDA toolkit's stub libcuda, not a driver (no NVIDIA driver"
                        + " on this machine?) (cuInit: " + describe(r) + ")", r);
            }
            if (r == CUDA_ERROR_SYSTEM_DRIVER_MISMATCH) {
                throw new CudaUnavailableException("CUDA: the NVIDIA kernel driver and libcuda (" + from + ") are different versions"
                        + " (a driver update without a reboot?) (cuInit: " + describe(r) + ")", r);
            }
            if (r != 0) throw new CudaUnavailableException("CUDA: cuInit failed: " + describe(r), r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The driver's CUDA version, e.g. 13000 for 13.0. */
    public int driverVersion() {
        return intOut("cuDriverGetVersion", p -> (int) cuDriverGetVersion.invokeExact(p));
    }

    public int deviceCount() {
        return intOut("cuDeviceGetCount", p -> (int) cuDeviceGetCount.invokeExact(p));
    }

    /** The CUdevice of ordinal {@code ordinal}. */
    public int device(int ordinal) {
        return intOut("cuDeviceGet", p -> (int) cuDeviceGet.invokeExact(p, ordinal));
    }

    public String deviceName(int dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(256);
            check("cuDeviceGetName", (int) cuDeviceGetName.invokeExact(buf, 256, dev));
            return buf.getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public int attribute(int dev, int attr) {
        return intOut("cuDeviceGetAttribute(" + attr + ")", p -> (int) cuDeviceGetAttribute.invokeExact(p, attr, dev));
    }

    /** Retains the device's primary context (the one the CUDA runtime, cuBLAS and PyTorch share). */
    public MemorySegment primaryContext(int dev) {
        return ptrOut("cuDevicePrimaryCtxRetain", p -> (int) cuDevicePrimaryCtxRetain.invokeExact(p, dev));
    }

    /** Binds {@code ctx} to the calling thread (each thread that calls into CUDA needs it once). */
    public void setCurrent(MemorySegment ctx) {
        try {
            check("cuCtxSetCurrent", (int) cuCtxSetCurrent.invokeExact(ctx));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------ memory

    /** cuMemAlloc: the device pointer, or 0 when the device is out of memory (the caller decides what to free); other errors throw. */
    public long allocOrZero(long bytes) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(J);
            int r = (int) cuMemAlloc.invokeExact(p, bytes);
            if (r == CUDA_ERROR_OUT_OF_MEMORY) return 0L;
            check("cuMemAlloc_v2(" + bytes + " bytes)", r);
            return p.get(J, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void free(long dptr) {
        try {
            check("cuMemFree_v2", (int) cuMemFree.invokeExact(dptr));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** {free, total} bytes of device memory. */
    public long[] memoryInfo() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment f = a.allocate(J), t = a.allocate(J);
            int r = (int) cuMemGetInfo.invokeExact(f, t);
            if (r != 0) throw new CudaException("cuMemGetInfo_v2 failed: " + describe(r), r); // not check: its OOM path asks here
            return new long[] {f.get(J, 0), t.get(J, 0)};
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void copyHtoDAsync(long dst, MemorySegment src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyHtoDAsync_v2(" + bytes + " bytes)", (int) cuMemcpyHtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void copyDtoHAsync(MemorySegment dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoHAsync_v2(" + bytes + " bytes)", (int) cuMemcpyDtoHAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void copyDtoDAsync(long dst, long src, long bytes, MemorySegment stream) {
        try {
            check("cuMemcpyDtoDAsync_v2(" + bytes + " bytes)", (int) cuMemcpyDtoDAsync.invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Sets {@code bytes} bytes at {@code dst} to {@code value} (stream-ordered). */
    public void memsetAsync(long dst, int value, long bytes, MemorySegment stream) {
        try {
            if ((dst & 3) == 0 && (bytes & 3) == 0) {
                int word = (value & 0xff) * 0x01010101;
                check("cuMemsetD32Async", (int) cuMemsetD32Async.invokeExact(dst, word, bytes / 4, stream));
            } else {
                check("cuMemsetD8Async", (int) cuMemsetD8Async.invokeExact(dst, value & 0xff, bytes, stream));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------ streams, events

    public MemorySegment streamCreate() {
        return ptrOut("cuStreamCreate", p -> (int) cuStreamCreate.invokeExact(p, 1 /* CU_STREAM_NON_BLOCKING */));
    }

    public void streamSynchronize(MemorySegment stream) {
        try {
            check("cuStreamSynchronize", (int) cuStreamSynchronize.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A second stream's end of life: issue 21 overlaps the gradient reduce with backward on its own stream. */
    public void streamDestroy(MemorySegment stream) {
        try {
            check("cuStreamDestroy_v2", (int) cuStreamDestroy.invokeExact(stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment eventCreate() {
        return ptrOut("cuEventCreate", p -> (int) cuEventCreate.invokeExact(p, 0));
    }

    public void eventRecord(MemorySegment event, MemorySegment stream) {
        try {
            check("cuEventRecord", (int) cuEventRecord.invokeExact(event, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void eventSynchronize(MemorySegment event) {
        try {
            check("cuEventSynchronize", (int) cuEventSynchronize.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Milliseconds between two recorded events. */
    public float eventElapsedMs(MemorySegment start, MemorySegment end) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ms = a.allocate(F);
            check("cuEventElapsedTime", (int) cuEventElapsedTime.invokeExact(ms, start, end));
            return ms.get(F, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void eventDestroy(MemorySegment event) {
        try {
            check("cuEventDestroy_v2", (int) cuEventDestroy.invokeExact(event));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------ modules, launches

    /**
     * A module load: its CUresult, the module (null when it failed), and the JIT's logs (empty where nothing was
     * compiled: a cubin, or PTX the driver's cache already held).
     */
    public record Loaded(int result, MemorySegment module, String infoLog, String errorLog) {}

    /** cuModuleLoadDataEx on a PTX text or cubin image, asking the JIT for its verbose info log and its error log. */
    public Loaded moduleLoad(MemorySegment image) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            MemorySegment info = a.allocate(JIT_LOG_BYTES), error = a.allocate(JIT_LOG_BYTES); // zeroed: empty strings
            MemorySegment options = a.allocateFrom(ValueLayout.JAVA_INT, JIT_INFO_LOG_BUFFER, JIT_INFO_LOG_BUFFER_SIZE_BYTES,
                    JIT_ERROR_LOG_BUFFER, JIT_ERROR_LOG_BUFFER_SIZE_BYTES, JIT_LOG_VERBOSE);
            // void* values: the two buffers' addresses, their sizes (less a byte, so each log stays NUL-terminated), 1
            MemorySegment values = a.allocateFrom(ValueLayout.JAVA_LONG, info.address(), JIT_LOG_BYTES - 1, error.address(),
                    JIT_LOG_BYTES - 1, 1L);
            int r = (int) cuModuleLoadDataEx.invokeExact(p, image, 5, options, values);
            return new Loaded(r, r == 0 ? p.get(P, 0) : null, info.getString(0), error.getString(0));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public MemorySegment function(MemorySegment module, String name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            check("cuModuleGetFunction(" + name + ")", (int) cuModuleGetFunction.invokeExact(p, module, a.allocateFrom(name)));
            return p.get(P, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void functionAttribute(MemorySegment fn, int attr, int value, String name) {
        try {
            check("cuFuncSetAttribute(" + name + ", " + attr + ", " + value + ")", (int) cuFuncSetAttribute.invokeExact(fn, attr, value));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** cuLaunchKernel with {@code params} the void*[] of argument addresses and {@code shared} dynamic shared bytes. */
    public void launch(String name, MemorySegment fn, int gx, int gy, int gz, int bx, int by, int bz, int shared,
                       MemorySegment stream, MemorySegment params) {
        int r;
        try {
            r = (int) cuLaunchKernel.invokeExact(fn, gx, gy, gz, bx, by, bz, shared, stream, params, MemorySegment.NULL);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        if (r != 0) {
            String call = "cuLaunchKernel(" + name + ", grid " + gx + "x" + gy + "x" + gz + ", block " + bx + "x" + by + "x" + bz
                    + ", shared " + shared + " B)";
            check(call, r);
        }
    }

    /**
     * cuTensorMapEncodeTiled: the TMA tensor map ({@link #TENSOR_MAP_BYTES}, allocated in {@code arena}, which also
     * holds the call's arrays) of a row-major bf16 matrix of {@code rows} × {@code cols} at device address {@code
     * address}, read in boxes of {@code boxRows} × {@code boxCols} (boxCols·2 ≤ 128 bytes) laid out in shared memory
     * with the 128-byte swizzle.
     */
    public MemorySegment tensorMapBf16(Arena arena, long address, long rows, long cols, int boxRows, int boxCols) {
        MemorySegment out = arena.allocate(TENSOR_MAP_BYTES, TENSOR_MAP_ALIGN);
        MemorySegment dims = arena.allocateFrom(J, cols, rows), strides = arena.allocateFrom(J, cols * 2);
        MemorySegment box = arena.allocateFrom(I, boxCols, boxRows), step = arena.allocateFrom(I, 1, 1);
        try {
            int r = (int) cuTensorMapEncodeTiled.invokeExact(out, TENSOR_MAP_BFLOAT16, 2, MemorySegment.ofAddress(address), dims, strides, box,
                    step, 0, TENSOR_MAP_SWIZZLE_128B, TENSOR_MAP_L2_256B, 0);
            check("cuTensorMapEncodeTiled(bf16 " + rows + "x" + cols + " at 0x" + Long.toHexString(address) + ", box " + boxRows + "x"
                    + boxCols + ")", r);
        } catch (Throwable t) {
            throw rethrow(t);
        }
        return out;
    }

    // ------------------------------------------------------------------ graphs (stream capture)

    /** From here on, what is queued on {@code stream} is recorded into a graph instead of run. */
    public void beginCapture(MemorySegment stream) {
        try {
            check("cuStreamBeginCapture_v2", (int) cuStreamBeginCapture.invokeExact(stream, STREAM_CAPTURE_MODE_RELAXED));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Ends {@code stream}'s capture: the recorded graph (a call during it that cannot be recorded fails here too). */
    public MemorySegment endCapture(MemorySegment stream) {
        return ptrOut("cuStreamEndCapture", p -> (int) cuStreamEndCapture.invokeExact(stream, p));
    }

    /** An executable instance of {@code graph}. */
    public MemorySegment graphInstantiate(MemorySegment graph) {
        return ptrOut("cuGraphInstantiateWithFlags", p -> (int) cuGraphInstantiate.invokeExact(p, graph, 0L));
    }

    /** Queues one run of the whole graph on {@code stream}: one call for all its kernels. */
    public void graphLaunch(MemorySegment exec, MemorySegment stream) {
        try {
            check("cuGraphLaunch", (int) cuGraphLaunch.invokeExact(exec, stream));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void graphExecDestroy(MemorySegment exec) {
        try {
            check("cuGraphExecDestroy", (int) cuGraphExecDestroy.invokeExact(exec));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public void graphDestroy(MemorySegment graph) {
        try {
            check("cuGraphDestroy", (int) cuGraphDestroy.invokeExact(graph));
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    // ------------------------------------------------------------------ out-parameter helpers

    @FunctionalInterface
    private interface Call {
        int run(MemorySegment out) throws Throwable;
    }

    private int intOut(String call, Call c) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(I);
            check(call, c.run(p));
            return p.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private MemorySegment ptrOut(String call, Call c) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocate(P);
            check(call, c.run(p));
            return p.get(P, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
