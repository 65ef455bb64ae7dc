package nanochat4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.lang.reflect.RecordComponent;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A CUDA backend without a GPU, for tests of everything above the backend (model, autograd, optimizer, engine, the
 * commands) on its device code paths: device tensors live in host memory ({@link HostStorage}, reporting
 * {@link Device#CUDA}); each op copies its device arguments down, runs the CPU backend on the copies, writes back the
 * arguments the op changed and copies its results up. It is as strict as {@code CudaBackend} where tensors must live
 * (a host tensor handed to any op but {@code upload} fails) and stricter about memory handed back: a recycled storage
 * is poisoned and any later read, write or second recycle throws, where a GPU would compute on whatever the pool put
 * there since.
 *
 * <p>It does not test the CUDA kernels (the conformance suite does that on a GPU): results equal the CPU backend's.
 * Install with {@link #install()} in a try-with-resources; {@link #ops()} tells a test that the stand-in did run.
 */
public final class StandInCuda implements InvocationHandler {
    private static final AtomicLong OPS = new AtomicLong();
    private final Backend cpu = Backend.cpu();
    /** The ops whose activation arguments may be saveForBackward's bf16 copies (as the CUDA backend's take them). */
    private static final java.util.Set<String> TAKES_SAVED = java.util.Set.of("linearBackwardWeight", "attentionBackward", "relu2Operand",
            "relu2Backward", "rmsNormBackwardFromOutput", "rotaryRmsNormBackward", "lambdaMixBackward", "rmsNorm",
            "rmsNormBackward");
    /** Whether saveForBackward keeps bf16 copies, as the CUDA backend does under bf16 matmuls. */
    private final boolean bf16Saves;

    private StandInCuda(boolean bf16Saves) {
        this.bf16Saves = bf16Saves;
    }

    /** A new stand-in backend (a proxy of {@link Backend}) that keeps activations for a backward in fp32. */
    public static Backend backend() {
        return backend(false);
    }

    /**
     * A new stand-in backend; with {@code bf16Saves} its {@code saveForBackward} keeps a bf16 copy (rounded to nearest
     * even, as the CUDA backend's {@code f32_to_bf16} kernel does under bf16 matmuls), a real BF16 tensor that every
     * CPU kernel refuses, so a backward that reads it without {@code savedValue} fails here as it would compute garbage
     * on a GPU; {@code linearBackwardWeight} (its x) and {@code attentionBackward} (q, k, v, y) take such copies, as the
     * CUDA backend's bf16 GEMM and tensor-core attention do. Every other op stays fp32 (the stand-in has no bf16
     * matmuls).
     */
    public static Backend backend(boolean bf16Saves) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class}, new StandInCuda(bf16Saves));
    }

    /** Installs a stand-in for {@link Device#CUDA} until the handle closes. */
    public static DeviceStandIn.Installed install() {
        return DeviceStandIn.installForCuda(backend());
    }

    /** Installs a stand-in whose saved activations are bf16 ({@link #backend(boolean)}) until the handle closes. */
    public static DeviceStandIn.Installed installWithBf16Saves() {
        return DeviceStandIn.installForCuda(backend(true));
    }

    /**
     * For a test of device code paths that runs everywhere: where a GPU is usable nothing is installed (the test runs
     * on it, numerics included), elsewhere a stand-in until the handle closes.
     */
    public static DeviceStandIn.Installed unlessGpu() {
        return gpu() ? () -> {} : install();
    }

    /** Whether a real GPU is usable here (then {@link #unlessGpu} installs nothing). */
    public static boolean gpu() {
        return nanochat4j.tensor.cuda.CudaContext.unavailableReason() == null;
    }

    /** Backend calls run by any stand-in so far (a test checks it grew: its code did take the device path). */
    public static long ops() {
        return OPS.get();
    }

    /** {@code t} in new stand-in device memory. */
    public static Tensor up(Tensor t) {
        return t.toDevice(new HostStorage(Math.max(1, (long) t.numel() * t.dtype().bytes())));
    }

    /**
     * An op's result in new stand-in memory. A fresh output of the CPU backend ({@link Tensor#uninitialized}: its
     * host copy goes back to the thread's pool here) becomes a fresh device output ({@link Tensor#uninitializedOn}),
     * which the autograd tape and the ops give back as they would the CUDA backend's, into {@link HostStorage}'s
     * poison; a view or a tensor the CPU backend keeps stays an ordinary device tensor.
     */
    private static Tensor upResult(Tensor t) {
        if (!t.isRecyclable()) return up(t);
        HostStorage s = new HostStorage(Math.max(1, (long) t.numel() * t.dtype().bytes()));
        t.toDevice(s);   // the copy; its tensor is not recyclable, so the storage is wrapped again as a fresh output
        Recycler.give(t);
        return Tensor.uninitializedOn(t.dtype(), s, t.shape());
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        String name = method.getName();
        if (method.getDeclaringClass() == Object.class) {
            return switch (name) { // a proxy forwards only these three of Object's methods
                case "toString" -> "StandInCuda";
                case "hashCode" -> System.identityHashCode(proxy);
                default -> proxy == args[0]; // equals
            };
        }
        if (name.equals("device")) return Device.CUDA;
        if (name.equals("describe")) return "CUDA (stand-in: host memory, CPU arithmetic)";
        if (name.equals("deviceMemory")) return HostStorage.memory();
        OPS.incrementAndGet();
        if (name.equals("upload")) {
            Tensor x = (Tensor) args[0];
            return x.isOnDevice() ? x : up(x);
        }
        if (name.equals("saveForBackward") || name.equals("savedValue")) return saved(name, (Tensor) args[0]);
        Object[] down = args == null ? new Object[0] : args.clone();
        Map<Tensor, Tensor> original = new IdentityHashMap<>();   // host copy → the device tensor it came from
        Map<Tensor, float[]> before = new IdentityHashMap<>();
        for (int i = 0; i < down.length; i++) {
            if (down[i] instanceof Tensor t) {
                down[i] = down(name, t, original, before);
            } else if (down[i] instanceof Tensor[] ts) {
                Tensor[] d = new Tensor[ts.length];
                for (int j = 0; j < ts.length; j++) d[j] = down(name, ts[j], original, before);
                down[i] = d;
            }
        }
        Object result;
        try {
            result = method.invoke(cpu, down);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
        for (Map.Entry<Tensor, Tensor> e : original.entrySet()) {   // in-place ops: what changed goes back up
            Tensor host = e.getKey();
            if (!Arrays.equals(bits(host), before.get(host))) e.getValue().copyFrom(host);
        }
        return up(result, original);
    }

    private static Tensor widen(Tensor bf16) {
        Tensor out = Tensor.zeros(bf16.shape());
        for (int i = 0; i < bf16.numel(); i++) out.floats()[i] = DType.fromBf16(bf16.shorts()[bf16.offset() + i]);
        return out;
    }

    /** saveForBackward (a bf16 copy in bf16Saves mode, else x) and savedValue (bf16 widened to a new fp32 tensor). */
    private Tensor saved(String op, Tensor x) {
        boolean save = op.equals("saveForBackward");
        if (x == null || !x.isOnDevice()) down(op, x, new IdentityHashMap<>(), new IdentityHashMap<>());   // its message
        if (save ? !bf16Saves || x.dtype() != DType.F32 : x.dtype() != DType.BF16) return x;
        Tensor host = x.toCpu();
        Tensor out = save ? Tensor.zeros(DType.BF16, x.shape()) : widen(host);
        if (save) for (int i = 0; i < host.numel(); i++) out.shorts()[i] = DType.toBf16(host.floats()[host.offset() + i]);
        Tensor dev = Tensor.uninitializedOn(out.dtype(), new HostStorage(Math.max(1, (long) out.numel() * out.dtype().bytes())), out.shape());
        dev.copyFrom(out);
        return dev;
    }

    private static Tensor down(String op, Tensor t, Map<Tensor, Tensor> original, Map<Tensor, float[]> before) {
        if (t == null) return null;
        if (!t.isOnDevice()) {
            throw new IllegalArgumentException(op + ": " + t + " is in CPU memory; the CUDA backend computes on device tensors"
                    + " (copy it up once with upload)");
        }
        Tensor host = t.toCpu();
        if (TAKES_SAVED.contains(op) && t.dtype() == DType.BF16) return widen(host);   // a saved activation, read only
        original.put(host, t);
        before.put(host, bits(host));
        return host;
    }

    /** The tensor's values as raw bits in floats (NaN payloads and −0 kept apart), whatever its dtype. */
    private static float[] bits(Tensor t) {
        float[] out = new float[t.numel()];
        for (int i = 0; i < out.length; i++) {
            out[i] = switch (t.dtype()) {
                case F32 -> Float.intBitsToFloat(Float.floatToRawIntBits(t.floats()[t.offset() + i]));
                case I32 -> Float.intBitsToFloat(t.ints()[t.offset() + i]);
                case BF16 -> t.shorts()[t.offset() + i];
            };
        }
        return out;
    }

    private static Object up(Object r, Map<Tensor, Tensor> original) throws ReflectiveOperationException {
        if (r instanceof Tensor t) {
            Tensor arg = original.get(t);
            if (arg != null) return arg;   // an op that returns its argument returns the device tensor
            return upResult(t);
        }
        if (r instanceof Record rec) {
            RecordComponent[] cs = rec.getClass().getRecordComponents();
            Object[] vals = new Object[cs.length];
            Class<?>[] types = new Class<?>[cs.length];
            for (int i = 0; i < cs.length; i++) {
                vals[i] = up(cs[i].getAccessor().invoke(rec), original);
                types[i] = cs[i].getType();
            }
            var ctor = rec.getClass().getDeclaredConstructor(types);
            ctor.setAccessible(true);
            return ctor.newInstance(vals);
        }
        return r;
    }

    /**
     * "Device" memory that is an off-heap host segment. Once handed back ({@link #recycle}) it is NaN-filled and
     * every access throws: on a GPU the pool would already have handed it to someone else.
     */
    public static final class HostStorage implements DeviceStorage {
        private static final AtomicLong HANDED_OUT = new AtomicLong(), PEAK = new AtomicLong();
        private final MemorySegment mem;
        private volatile Throwable recycledAt;

        public HostStorage(long bytes) {
            mem = Arena.ofAuto().allocate(Math.max(1, bytes), 8);
            PEAK.accumulateAndGet(HANDED_OUT.addAndGet(mem.byteSize()), Math::max);
        }

        /** The stand-in's device memory as a backend reports it: handed out and not given back, no pool, no flush. */
        static Backend.DeviceMemory memory() {
            long now = HANDED_OUT.get(), peak = PEAK.get();
            return new Backend.DeviceMemory(now, peak, now, peak, 0);
        }

        /**
         * Bytes of stand-in device memory made and not given back (by any thread, ever): what a GPU holds of them
         * between two garbage collections, since device memory goes back to the CUDA pool when its tensor is given
         * back or, for the rest, only when a GC finds the tensor dead. A test reads the difference across a step.
         */
        public static long handedOut() {
            return HANDED_OUT.get();
        }

        /** The most {@link #handedOut} has been since the last call (which starts the next period at the current count). */
        public static long peakSinceLast() {
            return PEAK.getAndSet(HANDED_OUT.get());
        }

        private void live(String what) {
            if (recycledAt != null) {
                throw new IllegalStateException(what + " of device memory that went back to the pool (recycled at the cause's stack)", recycledAt);
            }
        }

        @Override public Device device() { return Device.CUDA; }

        @Override public long address() { return mem.address(); }

        @Override public long bytes() { return mem.byteSize(); }

        @Override public void copyToHost(long off, MemorySegment dst, long n) {
            live("a read");
            MemorySegment.copy(mem, off, dst, 0, n);
        }

        @Override public void copyFromHost(MemorySegment src, long off, long n) {
            live("a write");
            MemorySegment.copy(src, 0, mem, off, n);
        }

        @Override public void copyFromDevice(DeviceStorage src, long so, long doff, long n) {
            HostStorage s = (HostStorage) src;
            s.live("a device-to-device read");
            live("a device-to-device write");
            MemorySegment.copy(s.mem, so, mem, doff, n);
        }

        @Override public DeviceStorage allocateLike(long n) { return new HostStorage(n); }

        @Override public void recycle() {
            live("a second recycle");
            recycledAt = new Throwable("recycled here");
            HANDED_OUT.addAndGet(-mem.byteSize());
            for (long i = 0; i + 4 <= mem.byteSize(); i += 4) mem.set(ValueLayout.JAVA_FLOAT_UNALIGNED, i, Float.NaN);
        }
    }
}
