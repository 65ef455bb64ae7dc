package nanochat4j.tensor.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Cleaner;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.function.Consumer;
import java.util.function.LongUnaryOperator;
import java.util.function.Supplier;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Tensor;

/**
 * One GPU as the backend sees it: the driver, the device's primary context, one stream every kernel, copy and
 * cuBLAS call goes to (so stream order alone makes reuse of freed memory safe), a caching allocator, and the
 * compiled kernel modules.
 *
 * <p>Memory: a tensor's {@link Memory} goes back to a size-bucketed pool ({@link DeviceMemoryPool}) as soon as the
 * autograd tape or the backend is done with it ({@link Memory#recycle}), or else when the tensor becomes unreachable,
 * because cuMemAlloc/cuMemFree synchronize the device and cost far more than a kernel. When the device is full, the
 * pool is emptied back to the driver and a GC is asked to release dead tensors before {@link CudaOutOfMemoryException}
 * (size asked, free, total) is thrown. Under {@code -Dnanochat4j.recycler.poison=true} (the test suites) every new
 * and every recycled block is filled with 0xFF bytes (NaN as fp32 and bf16), so a kernel that leaves part of its
 * output unwritten, or a read of memory already given back, shows up as NaN on the GPU as it does on the CPU.
 */
public final class CudaContext {
    private static volatile CudaContext shared;

    private final Driver driver;
    private final int device;
    private final MemorySegment context;
    private final MemorySegment stream;
    private final String name;
    private final int ccMajor, ccMinor, sms, maxSharedOptin, driverVersion;
    private final DeviceMemoryPool pool = new DeviceMemoryPool();
    private final ThreadLocal<Boolean> bound = ThreadLocal.withInitial(() -> false);
    private final Map<String, Module> modules = new ConcurrentHashMap<>();
    private Nvrtc nvrtc;
    private Cublas cublas;
    private final PtxCache cache = new PtxCache(PtxCache.defaultDir());
    private final java.util.concurrent.atomic.AtomicLong hostWaits = new java.util.concurrent.atomic.AtomicLong();
    /** Told of every explicit copy into device memory (the backend's bf16 weight copies of it become stale). */
    private volatile Consumer<DeviceStorage> onCopyInto = s -> {};

    private CudaContext(Driver driver, int ordinal) {
        this.driver = driver;
        driver.init();
        int count = driver.deviceCount();
        if (count == 0) throw new CudaUnavailableException("CUDA: the driver (" + driver.from() + ") reports no GPU");
        if (ordinal < 0 || ordinal >= count) {
            throw new CudaUnavailableException("CUDA: device " + ordinal + " requested, the driver sees " + count + " (0.." + (count - 1) + ")");
        }
        device = driver.device(ordinal);
        name = driver.deviceName(device);
        ccMajor = driver.attribute(device, Driver.ATTR_CC_MAJOR);
        ccMinor = driver.attribute(device, Driver.ATTR_CC_MINOR);
        sms = driver.attribute(device, Driver.ATTR_MULTIPROCESSOR_COUNT);
        maxSharedOptin = driver.attribute(device, Driver.ATTR_MAX_SHARED_PER_BLOCK_OPTIN);
        driverVersion = driver.driverVersion();
        context = driver.primaryContext(device);
        bind();
        stream = driver.streamCreate();
    }

    /** The process-wide context of GPU 0 (created on first use). Throws {@link CudaUnavailableException} when there is none. */
    public static CudaContext get() {
        CudaContext c = shared;
        if (c == null) {
            synchronized (CudaContext.class) {
                c = shared;
                if (c == null) shared = c = new CudaContext(Driver.load(), Integer.getInteger("nanochat4j.cuda.device", 0));
            }
        }
        c.bind();
        return c;
    }

    /** Null when CUDA is usable, else the one-line reason (no library, no driver, no device). */
    public static String unavailableReason() {
        try {
            get();
            return null;
        } catch (CudaUnavailableException e) {
            return e.getMessage();
        } catch (CudaException | UnsatisfiedLinkError e) {
            return "CUDA: " + e.getMessage();
        }
    }

    /** Makes the primary context current on the calling thread (once per thread). */
    public void bind() {
        if (!bound.get()) {
            driver.setCurrent(context);
            bound.set(true);
        }
    }

    public Driver driver() { return driver; }

    /** The stream the calling thread's work goes to: the context's one stream, or its capture lane's while it records. */
    public MemorySegment stream() {
        Capture c = capture.get();
        return c == null ? stream : c.lane.stream;
    }

    public int multiprocessors() { return sms; }

    /** Compute capability 9.x (H100, H200): NVRTC targets compute_90a, whose wgmma our Hopper GEMM needs. */
    public boolean hopper() { return ccMajor == 9; }

    /** "NVIDIA H200, sm_90, 132 SMs, driver 13.0". */
    public String describe() {
        return name + ", sm_" + ccMajor + ccMinor + ", " + sms + " SMs, driver " + driverVersion / 1000 + "." + (driverVersion % 1000) / 10;
    }

    /** Sets what is told of every copy into a device storage (one listener: the backend's bf16 weight cache). */
    void onCopyInto(Consumer<DeviceStorage> listener) {
        onCopyInto = listener;
    }

    /** The cuBLAS handle of the calling thread's stream (see {@link #stream()}). */
    public Cublas cublas() {
        Capture c = capture.get();
        return c == null ? mainCublas() : c.lane.blas;
    }

    private synchronized Cublas mainCublas() {
        if (cublas == null) cublas = new Cublas(stream, new Cublas.OutOfMemory(this::freeCached, driver::memoryInfo), this::timed, driverVersion);
        return cublas;
    }

    // ------------------------------------------------------------------ profile

    private volatile KernelProfile profile;

    /** Starts timing each kernel, cuBLAS call and graph launch queued on the stream ({@link KernelProfile}). */
    public synchronized void startProfile() {
        if (profile != null) throw new IllegalStateException("CUDA: a profile is already on");
        bind();
        profile = new KernelProfile(driver, stream);
    }

    /** Ends the profile: the device time of what was queued since {@link #startProfile}, by kernel (empty when none was on). */
    public synchronized List<Backend.KernelTime> stopProfile() {
        KernelProfile p = profile;
        profile = null;
        if (p == null) return List.of();
        bind();
        return p.finish();
    }

    /** Queues {@code work} (one launch), timed under {@code name} while a profile is on and this thread is not recording. */
    void timed(String name, Runnable work) {
        KernelProfile p = profile;
        if (p == null || capture.get() != null) work.run();
        else p.time(name, work);
    }

    /** Waits for everything queued on the stream (every copy to or from the host does; counted, see {@link #hostWaits}). */
    public void synchronize() {
        hostWaits.incrementAndGet();
        driver.streamSynchronize(stream());
    }

    /** Times the host has waited for the stream so far (a decode step's budget of them is tested). */
    public long hostWaits() {
        return hostWaits.get();
    }

    // ------------------------------------------------------------------ memory

    /** Device memory owned by a tensor; back to the pool when recycled or unreachable. */
    public final class Memory implements DeviceStorage {
        private final long ptr;
        private final long bytes;
        private final DeviceMemoryPool.Block block;
        private final boolean recorded; // taken while its thread recorded: the recording keeps it (see Capture)
        private boolean recycled;

        private Memory(long ptr, long bytes) {
            this.ptr = ptr;
            this.bytes = bytes;
            this.block = pool.track(this, ptr, bytes);
            Capture c = capture.get();
            recorded = c != null;
            if (recorded) c.kept.add(this);
        }

        /**
         * Back to the pool now, for work queued later on this context's stream (which runs after every reader); once.
         * Not memory taken during a recording: every replay of it uses the block again, so it goes back only when the
         * recording is closed and the block unreachable.
         */
        @Override
        public void recycle() {
            if (recycled || recorded) return; // a second poison fill could land on the block's next owner
            recycled = true;
            if (Recycler.POISON) poison(ptr, bytes);
            block.recycle();
        }

        @Override public Device device() { return Device.CUDA; }

        @Override public long address() { return ptr; }

        @Override public long bytes() { return bytes; }

        @Override
        public void copyToHost(long byteOffset, MemorySegment dst, long n) {
            bind();
            if (n == 0) return;
            driver.copyDtoHAsync(dst, ptr + byteOffset, n, stream());
            synchronize();
        }

        @Override
        public void copyFromHost(MemorySegment src, long byteOffset, long n) {
            bind();
            if (n == 0) return;
            onCopyInto.accept(this);
            driver.copyHtoDAsync(ptr + byteOffset, src, n, stream());
            synchronize(); // the host segment may be freed as soon as we return
        }

        @Override
        public void copyFromDevice(DeviceStorage src, long srcOffset, long dstOffset, long n) {
            bind();
            if (n == 0) return;
            onCopyInto.accept(this);
            driver.copyDtoDAsync(ptr + dstOffset, src.address() + srcOffset, n, stream());
        }

        @Override
        public DeviceStorage allocateLike(long n) {
            return allocate(n);
        }

        @Override
        public String toString() {
            return "cuda memory " + CudaOutOfMemoryException.human(bytes);
        }
    }

    /** Uninitialized device memory of at least {@code bytes}. */
    public Memory allocate(long bytes) {
        long size = DeviceMemoryPool.bucket(bytes);
        long ptr = pool.take(size);
        if (ptr == 0) ptr = allocateNew(bytes, size);
        if (Recycler.POISON) poison(ptr, size);
        return new Memory(ptr, size);
    }

    private long allocateNew(long bytes, long size) {
        bind();
        long ptr = allocateOrThrow(bytes, size, driver::allocOrZero, this::freeCached, driver::memoryInfo);
        pool.reserved(size);
        return ptr;
    }

    /** On a full device: the pool back to the driver, and the blocks of tensors the GC finds dead with it. */
    private void freeCached() {
        pool.flushed();
        releasePool();
        System.gc();
        try {
            Thread.sleep(50); // let the cleaner queue what the GC found
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        releasePool();
    }

    /**
     * The one policy for a full device: {@code attempt} (our cuMemAlloc, or a CUDA call that allocates for itself: a
     * module's code, a launch's local memory, cuBLAS's workspace); when it finds no memory, {@code freeCached} and one
     * more try (a second failure propagates).
     */
    static <T> T retryOnOutOfMemory(Supplier<T> attempt, Runnable freeCached) {
        try {
            return attempt.get();
        } catch (CudaOutOfMemoryException full) {
            freeCached.run();
        }
        return attempt.get();
    }

    /** Every byte 0xFF: NaN as fp32 and bf16 (the recycler's poison, for tests). */
    private void poison(long ptr, long bytes) {
        bind();
        driver.memsetAsync(ptr, 0xff, bytes, stream());
    }

    /**
     * cuMemAlloc's policy on a full device: {@code alloc} (a pointer, or 0 when out of memory); on 0,
     * {@code freeCached} (the pool back to the driver, dead tensors collected) and one more try; still 0: a
     * {@link CudaOutOfMemoryException} naming the {@code requested} size and {@code memoryInfo}'s free and total.
     */
    static long allocateOrThrow(long requested, long size, LongUnaryOperator alloc, Runnable freeCached,
                                Supplier<long[]> memoryInfo) {
        return retryOnOutOfMemory(() -> {
            long p = alloc.applyAsLong(size);
            if (p != 0) return p;
            long[] info = memoryInfo.get();
            throw new CudaOutOfMemoryException(requested, info[0], info[1]);
        }, freeCached);
    }

    /** Gives every pooled block back to the driver (after the stream is idle: queued kernels may still use them). */
    public void releasePool() {
        synchronize();
        pool.freeAll(driver::free);
    }

    /** The allocator's figures now and at their peaks. */
    public Backend.DeviceMemory memory() {
        return pool.memory();
    }

    /** Starts {@link #memory}'s peaks over from now. */
    public void resetPeakMemory() {
        pool.resetPeaks();
    }

    /** The GPU's name as the driver reports it ("NVIDIA H200"): what {@link GpuPeaks} looks up. */
    public String name() {
        return name;
    }

    /** The GPU's memory in bytes (cuMemGetInfo's total). */
    public long totalMemory() {
        bind();
        return driver.memoryInfo()[1];
    }

    /** Bytes held in the pool (given back by tensors, not yet reused or returned). */
    public long pooledBytes() {
        return pool.pooledBytes();
    }

    /**
     * An uninitialized device tensor that owns its memory alone: an op's output, which the autograd tape may give
     * back through the {@link Recycler} once nothing reads it.
     */
    public Tensor empty(DType dtype, int... shape) {
        long bytes = (long) Tensor.numel(shape) * dtype.bytes();
        return Tensor.uninitializedOn(dtype, allocate(bytes), shape);
    }

    /** A zero-filled device tensor. */
    public Tensor zeros(DType dtype, int... shape) {
        bind();
        Tensor t = empty(dtype, shape);
        long bytes = (long) t.numel() * dtype.bytes();
        if (bytes > 0) driver.memsetAsync(t.deviceAddress(), 0, bytes, stream());
        return t; // t reachable past the call (see Module#launch)
    }

    /** Sets every byte of {@code t} to {@code value}. */
    public void memset(Tensor t, int value) {
        bind();
        long bytes = (long) t.numel() * t.dtype().bytes();
        if (bytes > 0) driver.memsetAsync(t.deviceAddress(), value, bytes, stream());
        Reference.reachabilityFence(t); // see Module#launch
    }

    /** A host tensor copied up (or the tensor itself when already on the device). */
    public Tensor upload(Tensor host) {
        if (host.isOnDevice()) return host;
        return host.toDevice(allocate((long) host.numel() * host.dtype().bytes()));
    }

    // ------------------------------------------------------------------ recordings (CUDA graphs)

    /** A capture stream with its own cuBLAS handle: other threads' work on the main stream stays out of a recording. */
    private record Lane(MemorySegment stream, Cublas blas) {}

    /** A recording in progress on one thread: its lane, and the device memory taken meanwhile (the graph's buffers). */
    private static final class Capture {
        final Lane lane;
        final List<Memory> kept = new ArrayList<>();

        Capture(Lane lane) {
            this.lane = lane;
        }
    }

    private final ThreadLocal<Capture> capture = new ThreadLocal<>();
    private final ConcurrentLinkedQueue<Lane> lanes = new ConcurrentLinkedQueue<>();

    /** Whether the calling thread is recording (its device work is captured, not run). */
    public boolean recording() {
        return capture.get() != null;
    }

    /**
     * Records the device work {@code work} queues on the calling thread — kernels, cuBLAS calls, device copies — into a
     * CUDA graph without running it (its host side runs now, once), for {@link Graph#launch} to queue whole on the
     * context's stream. Everything {@code work} allocates stays the graph's until it is closed. A call that cannot be
     * recorded (a copy to or from the host, a wait for the stream: reading a result inside the work) fails the
     * recording with CUDA's error.
     */
    public Graph record(Runnable work) {
        bind();
        if (capture.get() != null) throw new IllegalStateException("CUDA: a recording inside a recording");
        Lane lane = lanes.poll();
        if (lane == null) lane = newLane();
        synchronize(); // the recorded work reads what the main stream has queued so far
        Capture c = new Capture(lane);
        MemorySegment graph;
        driver.beginCapture(lane.stream);
        capture.set(c);
        try {
            work.run();
        } catch (RuntimeException | Error e) {
            capture.remove();
            try {
                driver.graphDestroy(driver.endCapture(lane.stream));
            } catch (CudaException ignored) {
                // an invalidated capture has no graph; the work's own error says why
            }
            lanes.add(lane);
            throw e;
        }
        capture.remove();
        try {
            graph = driver.endCapture(lane.stream);
        } finally {
            lanes.add(lane);
        }
        MemorySegment exec;
        try {
            exec = driver.graphInstantiate(graph);
        } catch (CudaException e) {
            driver.graphDestroy(graph);
            throw e;
        }
        return new Graph(graph, exec, c.kept);
    }

    /**
     * A capture stream and its cuBLAS handle, which has run one GEMM outside any capture: a handle's first call sets
     * itself up (workspace, kernels), which a capture must not contain.
     */
    private Lane newLane() {
        MemorySegment s = driver.streamCreate();
        Cublas blas = new Cublas(s, new Cublas.OutOfMemory(this::freeCached, driver::memoryInfo), driverVersion);
        Memory scratch = allocate(16);
        driver.memsetAsync(scratch.ptr, 0, 16, s);
        blas.sgemm(Cublas.OP_N, Cublas.OP_N, 1, 1, 1, 1f, scratch.ptr, 1, scratch.ptr + 4, 1, 0f, scratch.ptr + 8, 1);
        driver.streamSynchronize(s);
        Reference.reachabilityFence(scratch);
        return new Lane(s, blas);
    }

    /** A recorded graph: launched whole on the context's stream; closing it gives its buffers back. */
    public final class Graph implements AutoCloseable {
        private final Cleaner.Cleanable cleanable;
        private final MemorySegment exec;
        /** The graph's buffers, held (not read) so their blocks stay allocated while the graph may run. */
        private List<Memory> kept;

        private Graph(MemorySegment graph, MemorySegment exec, List<Memory> kept) {
            this.exec = exec;
            this.kept = kept;
            CudaContext ctx = CudaContext.this;
            // not capturing this graph (it would never become unreachable): the context and the handles only
            this.cleanable = GRAPHS.register(this, () -> {
                ctx.bind();
                ctx.driver.streamSynchronize(ctx.stream); // a launch still queued reads the graph
                ctx.driver.graphExecDestroy(exec);
                ctx.driver.graphDestroy(graph);
            });
        }

        /** Queues one run of everything recorded on the context's stream (the calling thread must not be recording). */
        public void launch() {
            if (kept == null) throw new IllegalStateException("CUDA graph: launched after close");
            bind();
            timed("CUDA graph", () -> driver.graphLaunch(exec, stream()));
        }

        /** Destroys the graph; its buffers go back to the pool once nothing else holds them. */
        @Override
        public void close() {
            kept = null;
            cleanable.clean();
        }
    }

    private static final Cleaner GRAPHS = Cleaner.create();

    // ------------------------------------------------------------------ kernels

    /** A loaded module: its functions by name. */
    public final class Module {
        private final MemorySegment handle;
        private final Map<String, MemorySegment> functions = new ConcurrentHashMap<>();
        private final Map<String, Integer> sharedSet = new ConcurrentHashMap<>();
        /** The kernels' parameter lists from the source, each launch's arguments checked against them. */
        private final Map<String, List<KernelSignatures.Param>> signatures;

        private Module(MemorySegment handle, Map<String, List<KernelSignatures.Param>> signatures) {
            this.handle = handle;
            this.signatures = signatures;
        }

        public MemorySegment function(String fn) {
            return functions.computeIfAbsent(fn, f -> driver.function(handle, f));
        }

        /**
         * Launches {@code fn}. Arguments: a Tensor, {@link DevicePtr} or DeviceStorage (a pointer into its memory),
         * Long (a raw device pointer or 64-bit int), Integer, Float, Double, or a MemorySegment holding a struct
         * passed by value. Dynamic shared memory above 48 KiB is opted into once. Tensors passed stay reachable until
         * the kernel is queued: given only a raw address, a GC during the launch could return a dead input's block
         * to the pool, where another thread (serve's workers share the stream) could take it and queue a write to it
         * before this kernel reads it.
         */
        public void launch(String fn, int gx, int gy, int gz, int block, int sharedBytes, Object... args) {
            List<KernelSignatures.Param> declared = signatures.get(fn);
            if (declared == null) throw new IllegalArgumentException("no extern \"C\" kernel " + fn + " in this module (kernels: " + signatures.keySet() + ")");
            KernelSignatures.check(fn, declared, args);
            bind(); // any thread may call an op; the context must be current on it
            MemorySegment f = function(fn);
            if (sharedBytes > 48 * 1024 && sharedSet.getOrDefault(fn, 0) < sharedBytes) {
                if (sharedBytes > maxSharedOptin) {
                    throw new CudaException(fn + " needs " + sharedBytes + " bytes of shared memory, the device allows " + maxSharedOptin, -1);
                }
                driver.functionAttribute(f, Driver.FUNC_ATTR_MAX_DYNAMIC_SHARED, sharedBytes, fn);
                sharedSet.put(fn, sharedBytes);
            }
            try (Arena a = Arena.ofConfined()) {
                MemorySegment params = a.allocate(ValueLayout.ADDRESS, Math.max(1, args.length));
                for (int i = 0; i < args.length; i++) {
                    MemorySegment v = switch (args[i]) {
                        case Tensor t -> a.allocateFrom(ValueLayout.JAVA_LONG, t.deviceAddress());
                        case DevicePtr d -> a.allocateFrom(ValueLayout.JAVA_LONG, d.address());
                        case DeviceStorage d -> a.allocateFrom(ValueLayout.JAVA_LONG, d.address());
                        case Long l -> a.allocateFrom(ValueLayout.JAVA_LONG, l);
                        case Integer n -> a.allocateFrom(ValueLayout.JAVA_INT, n);
                        case Float x -> a.allocateFrom(ValueLayout.JAVA_FLOAT, x);
                        case Double x -> a.allocateFrom(ValueLayout.JAVA_DOUBLE, x);
                        case MemorySegment s -> s;
                        default -> throw new IllegalArgumentException(fn + ": argument " + i + " of type " + args[i].getClass() + " is not a kernel argument");
                    };
                    params.setAtIndex(ValueLayout.ADDRESS, i, v);
                }
                timed(fn, () -> retryOnOutOfMemory(() -> {
                    driver.launch(fn, f, gx, gy, gz, block, 1, 1, sharedBytes, stream(), params);
                    return null;
                }, CudaContext.this::freeCached));
            } finally {
                Reference.reachabilityFence(args);
            }
        }
    }

    /** {@code source}.cu compiled with {@code defines} (-D NAME=VALUE), from the disk cache when there. */
    public Module module(String source, Map<String, String> defines) {
        String id = source + defines;
        return modules.computeIfAbsent(id, k -> retryOnOutOfMemory(() -> load(source, defines), this::freeCached));
    }

    private synchronized Nvrtc nvrtc() {
        if (nvrtc == null) nvrtc = Nvrtc.load();
        return nvrtc;
    }

    /** compute_90a on Hopper (the "a" features need it), compute_XY elsewhere. */
    private String arch(boolean real) {
        String cc = "" + ccMajor + ccMinor;
        String suffix = ccMajor >= 9 ? "a" : "";
        return (real ? "sm_" : "compute_") + cc + suffix;
    }

    /** NVRTC options for {@code arch} (e.g. compute_90a): the first is always the architecture; defines sorted for a stable cache key. */
    public static List<String> compileOptions(String arch, Map<String, String> defines) {
        List<String> opts = new ArrayList<>(List.of("--gpu-architecture=" + arch, "--std=c++17", "-default-device"));
        new java.util.TreeMap<>(defines).forEach((k, v) -> opts.add("-D" + k + "=" + v));
        return opts;
    }

    /** "; the JIT said: …" with the first lines of a failed load's error log, or "" when it wrote none. */
    static String jitError(Driver.Loaded loaded) {
        String log = loaded.errorLog().strip();
        if (log.isEmpty()) return "";
        List<String> lines = log.lines().limit(8).toList();
        return "; the JIT said: " + String.join(" | ", lines);
    }

    private Module load(String source, Map<String, String> defines) {
        String src = KernelSources.source(source);
        List<String> opts = compileOptions(arch(false), defines);
        Nvrtc nv = nvrtc();
        String nvVersion = nv.version();
        String key = PtxCache.key(src, opts, String.valueOf(driverVersion), nvVersion);
        byte[] ptx = cache.get(source, key, "ptx");
        if (ptx == null) {
            ptx = nv.compile(source + ".cu", src, opts, false);
            cache.put(source, key, "ptx", ptx);
        }
        Driver.Loaded loaded;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment img = a.allocate(ptx.length + 1L);
            MemorySegment.copy(ptx, 0, img, ValueLayout.JAVA_BYTE, 0, ptx.length);
            loaded = driver.moduleLoad(img);
        }
        int r = loaded.result();
        if (r == Driver.CUDA_ERROR_UNSUPPORTED_PTX_VERSION || r == Driver.CUDA_ERROR_INVALID_PTX) {
            // The driver is older than NVRTC's PTX: a cubin for this exact GPU needs no JIT by the driver.
            List<String> cubinOpts = new ArrayList<>(opts);
            cubinOpts.set(0, "--gpu-architecture=" + arch(true));
            byte[] cubin = nv.compile(source + ".cu", src, cubinOpts, true);
            Driver.Loaded fromCubin;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment img = a.allocate(cubin.length);
                MemorySegment.copy(cubin, 0, img, ValueLayout.JAVA_BYTE, 0, cubin.length);
                fromCubin = driver.moduleLoad(img);
            }
            int r2 = fromCubin.result();
            if (r2 == Driver.CUDA_ERROR_OUT_OF_MEMORY) driver.check("cuModuleLoadData(" + source + ".cu, cubin)", r2);
            if (r2 != 0) {
                throw new CudaException("CUDA: the NVIDIA driver (CUDA " + driverVersion / 1000 + "." + (driverVersion % 1000) / 10
                        + ") is too old for the code of NVRTC " + nvVersion + " (" + source + ".cu: PTX " + driver.describe(r) + ", cubin "
                        + driver.describe(r2) + jitError(loaded) + "); update the driver or point -Dnanochat4j.cuda.nvrtc at an NVRTC no newer than the driver", r);
            }
            loaded = fromCubin;
        } else if (r != 0) {
            if (r == Driver.CUDA_ERROR_OUT_OF_MEMORY) driver.check("cuModuleLoadData(" + source + ".cu)", r);
            throw new CudaException("cuModuleLoadData(" + source + ".cu) failed: " + driver.describe(r) + jitError(loaded), r);
        }
        for (String w : JitLog.warnings(loaded.infoLog())) {
            System.err.println("cuda: warning: " + source + ".cu " + defines + ", the driver's JIT: " + w);
        }
        return new Module(loaded.module(), KernelSignatures.parse(src));
    }
}
