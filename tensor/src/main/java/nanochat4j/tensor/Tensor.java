package nanochat4j.tensor;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;

/**
 * An n-d tensor: shape, dtype, device and a contiguous row-major storage window.
 *
 * <p>Notable:
 * <ul>
 *   <li>CPU storage is a plain heap array plus an element offset ({@code float[]} for F32, {@code short[]} bf16 bits,
 *       {@code int[]} for I32). Heap arrays because every kernel is written with the Vector API's
 *       {@code FloatVector.fromArray/intoArray}, which the JIT compiles to plain vector loads/stores with the bounds
 *       check hoisted; a {@code MemorySegment} adds a liveness/bounds check per access the JIT does not always
 *       hoist, and heap arrays let autograd and the optimizer write ordinary indexed loops. Limit: 2^31−1 elements
 *       per tensor, far above any tensor of the models we train (the largest, 4096×32768 logits, is 2^27).
 *       {@code bench/…/jmh/StorageBench} runs the same dot and axpy loops over both; they do not differ measurably
 *       (docs/BENCHMARKS.md), so the simpler heap arrays stay.</li>
 *   <li>Always contiguous. {@link #reshape}, {@link #slice} and {@link #select} along dim 0 are views that share
 *       storage (writes through a view are visible in the parent); everything else that changes layout
 *       (narrowing the last dim, transposes for matmul) is a copy or a flag of the op, never a strided view.</li>
 *   <li>{@link #of(float[], int...)} wraps the array without copying.</li>
 *   <li>A tensor may instead live in device memory ({@link #onDevice}, a {@link DeviceStorage} plus element
 *       offset): views work the same way; the heap accessors ({@link #floats()} …) throw naming the device, and
 *       {@link #toCpu()} / {@link #toDevice} are the explicit copies between the two. Element reads
 *       ({@link #item()}, {@link #toFloatArray()}) of a device tensor go through such a copy, for tests and metrics.</li>
 * </ul>
 */
public final class Tensor {
    private final DType dtype;
    private final Device device;
    private final int[] shape;
    private final int numel;
    private final int offset;
    private final float[] f32;
    private final short[] bf16;
    private final int[] i32;
    /** Device memory, or null for a heap tensor. */
    private final DeviceStorage dev;
    /** Made by {@link #uninitialized} and not given back yet: its storage may go back to the {@link Recycler}. */
    private boolean recyclable;
    /** For a view: the tensor that made the storage it is a window on (null for that tensor itself). */
    private Tensor base;

    private Tensor(DType dtype, int[] shape, int offset, float[] f32, short[] bf16, int[] i32) {
        this(dtype, shape, offset, f32, bf16, i32, null);
    }

    private Tensor(DType dtype, int[] shape, int offset, float[] f32, short[] bf16, int[] i32, DeviceStorage dev) {
        this.dtype = dtype;
        this.device = dev == null ? Device.CPU : dev.device();
        this.shape = shape;
        this.numel = numel(shape);
        this.offset = offset;
        this.f32 = f32;
        this.bf16 = bf16;
        this.i32 = i32;
        this.dev = dev;
        long cap = dev != null ? dev.bytes() / dtype.bytes()
                : f32 != null ? f32.length : bf16 != null ? bf16.length : i32.length;
        if (offset < 0 || (long) offset + numel > cap) {
            throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " at offset " + offset
                    + " does not fit its storage of " + cap + " elements");
        }
    }

    // ---- creation ----

    public static Tensor zeros(int... shape) {
        return zeros(DType.F32, shape);
    }

    public static Tensor zeros(DType dtype, int... shape) {
        int[] s = checkShape(shape);
        int n = numel(s);
        return switch (dtype) {
            case F32 -> new Tensor(dtype, s, 0, new float[n], null, null);
            case BF16 -> new Tensor(dtype, s, 0, null, new short[n], null);
            case I32 -> new Tensor(dtype, s, 0, null, null, new int[n]);
        };
    }

    /**
     * An F32 tensor whose elements are undefined (the caller writes every one): inside a {@link Recycler} scope its
     * storage comes from, and may go back to, the thread's pool of recycled arrays; elsewhere it is a new array.
     */
    public static Tensor uninitialized(int... shape) {
        int[] s = checkShape(shape);
        Tensor t = new Tensor(DType.F32, s, 0, Recycler.take(numel(s)), null, null);
        t.recyclable = true;
        return t;
    }

    /**
     * Hands this tensor's whole storage back if it may be recycled (made by {@link #uninitialized} or
     * {@link #uninitializedOn}, not given back yet): a heap array to the {@link Recycler}'s pool, device memory to its
     * allocator ({@link DeviceStorage#recycle}). Returns whether it did.
     */
    boolean recycleStorage() {
        if (!recyclable) return false;
        recyclable = false;
        if (dev != null) dev.recycle();
        else Recycler.give(f32);
        return true;
    }

    /**
     * Whether {@link #recycleStorage} would give the storage back now: a fresh op output not given back yet, not a view
     * (the CUDA stand-in of the tests mirrors it; the tape's {@code shelve} replaces only such outputs).
     */
    public boolean isRecyclable() {
        return recyclable;
    }

    /** {@link #recycleStorage} of the tensor whose storage this one is a window on (itself, or a view's base). */
    boolean recycleViewedStorage() {
        return (base != null ? base : this).recycleStorage();
    }

    /** A view of this tensor's storage, remembering who made it. */
    private Tensor view(int[] s, int off) {
        Tensor v = new Tensor(dtype, s, off, f32, bf16, i32, dev);
        v.base = base != null ? base : this;
        return v;
    }

    /** A tensor filled with {@code value}. */
    public static Tensor full(float value, int... shape) {
        Tensor t = zeros(shape);
        Arrays.fill(t.f32, value);
        return t;
    }

    /** A 0-d (scalar) F32 tensor. */
    public static Tensor scalar(float value) {
        return new Tensor(DType.F32, new int[0], 0, new float[] {value}, null, null);
    }

    /** Wraps {@code data} (no copy) as an F32 tensor; without a shape it is 1-d. */
    public static Tensor of(float[] data, int... shape) {
        int[] s = shape.length == 0 ? new int[] {data.length} : checkShape(shape);
        if (numel(s) != data.length) {
            throw new IllegalArgumentException("Tensor.of: " + data.length + " values do not fill shape " + Arrays.toString(s));
        }
        return new Tensor(DType.F32, s, 0, data, null, null);
    }

    /** Wraps {@code data} (no copy) as an I32 tensor (token ids). */
    public static Tensor ofInts(int[] data, int... shape) {
        int[] s = shape.length == 0 ? new int[] {data.length} : checkShape(shape);
        if (numel(s) != data.length) {
            throw new IllegalArgumentException("Tensor.ofInts: " + data.length + " values do not fill shape " + Arrays.toString(s));
        }
        return new Tensor(DType.I32, s, 0, null, null, data);
    }

    /**
     * A tensor over device memory {@code storage}, starting {@code offset} elements in (no copy). The backend that
     * allocated the storage is the one that computes on it.
     */
    public static Tensor onDevice(DType dtype, DeviceStorage storage, int offset, int... shape) {
        if (storage == null || storage.device() == Device.CPU) {
            throw new IllegalArgumentException("Tensor.onDevice: storage " + storage + " is not device memory");
        }
        return new Tensor(dtype, checkShape(shape), offset, null, null, null, storage);
    }

    /**
     * A tensor on device memory that was just allocated for it alone and that an op writes whole: like
     * {@link #uninitialized}, the autograd tape may give the memory back ({@link Recycler#give(Tensor)}) once nothing
     * reads it.
     */
    public static Tensor uninitializedOn(DType dtype, DeviceStorage storage, int... shape) {
        Tensor t = onDevice(dtype, storage, 0, shape);
        t.recyclable = true;
        return t;
    }

    // ---- metadata ----

    public DType dtype() { return dtype; }

    public Device device() { return device; }

    /** A copy of the shape. */
    public int[] shape() { return shape.clone(); }

    /** Size of dimension {@code d}; negative counts from the end ({@code shape(-1)} = last dim). */
    public int shape(int d) {
        int r = shape.length;
        int i = d < 0 ? d + r : d;
        if (i < 0 || i >= r) throw new IllegalArgumentException("dim " + d + " out of range for shape " + Arrays.toString(shape));
        return shape[i];
    }

    public int rank() { return shape.length; }

    public int numel() { return numel; }

    /** Element offset of this tensor's first element in its storage array. */
    public int offset() { return offset; }

    /** Size of the last dim (1 for a scalar). */
    public int cols() { return shape.length == 0 ? 1 : shape[shape.length - 1]; }

    /** Number of rows of the last dim: numel / cols (1 for a scalar). */
    public int rows() { int c = cols(); return c == 0 ? 0 : numel / c; }

    public boolean sameShape(Tensor o) { return Arrays.equals(shape, o.shape); }

    /**
     * The storage this tensor is a window on (its heap array or device memory), for identity comparisons only: two
     * tensors with the same storage are views of one another.
     */
    public Object storage() {
        return dev != null ? dev : f32 != null ? f32 : bf16 != null ? bf16 : i32;
    }

    public boolean hasShape(int... s) { return Arrays.equals(shape, s); }

    // ---- storage ----

    /** True when the storage is device memory (then the heap accessors below throw). */
    public boolean isOnDevice() { return dev != null; }

    /** The device memory of a device tensor (elements start {@link #offset()} elements in). */
    public DeviceStorage deviceStorage() {
        if (dev == null) throw new IllegalStateException("deviceStorage(): tensor " + this + " lives in host memory");
        return dev;
    }

    /** Device address of this tensor's first element. */
    public long deviceAddress() {
        return deviceStorage().address() + (long) offset * dtype.bytes();
    }

    /** This tensor in host memory: itself when it already is, else a blocking copy from the device. */
    public Tensor toCpu() {
        if (dev == null) return this;
        Tensor out = zeros(dtype, shape);
        try (Arena arena = Arena.ofConfined()) {
            long bytes = (long) numel * dtype.bytes();
            MemorySegment host = arena.allocate(Math.max(1, bytes), 8);
            dev.copyToHost((long) offset * dtype.bytes(), host, bytes);
            switch (dtype) {
                case F32 -> MemorySegment.copy(host, ValueLayout.JAVA_FLOAT, 0, out.f32, 0, numel);
                case BF16 -> MemorySegment.copy(host, ValueLayout.JAVA_SHORT, 0, out.bf16, 0, numel);
                case I32 -> MemorySegment.copy(host, ValueLayout.JAVA_INT, 0, out.i32, 0, numel);
            }
        }
        return out;
    }

    /** A copy of this (host or device) tensor in {@code storage} (which must hold numel elements), blocking. */
    public Tensor toDevice(DeviceStorage storage) {
        long bytes = (long) numel * dtype.bytes();
        if (storage.bytes() < bytes) {
            throw new IllegalArgumentException("toDevice: " + this + " needs " + bytes + " bytes, storage holds " + storage.bytes());
        }
        Tensor out = onDevice(dtype, storage, 0, shape);
        if (dev != null) {
            storage.copyFromDevice(dev, (long) offset * dtype.bytes(), 0, bytes);
            return out;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(Math.max(1, bytes), 8);
            switch (dtype) {
                case F32 -> MemorySegment.copy(f32, offset, host, ValueLayout.JAVA_FLOAT, 0, numel);
                case BF16 -> MemorySegment.copy(bf16, offset, host, ValueLayout.JAVA_SHORT, 0, numel);
                case I32 -> MemorySegment.copy(i32, offset, host, ValueLayout.JAVA_INT, 0, numel);
            }
            storage.copyFromHost(host, 0, bytes);
        }
        return out;
    }

    private IllegalStateException onDeviceError(String accessor) {
        return new IllegalStateException(accessor + ": tensor " + this + " lives in " + device
                + " memory; copy it to the host first (toCpu()) or compute on it with that device's backend");
    }

    /** The F32 storage array; elements [offset(), offset()+numel()) belong to this tensor. */
    public float[] floats() {
        if (dev != null) throw onDeviceError("floats()");
        if (dtype != DType.F32) throw new IllegalStateException("floats(): tensor " + this + " is " + dtype + ", not F32");
        return f32;
    }

    /** The I32 storage array; elements [offset(), offset()+numel()) belong to this tensor. */
    public int[] ints() {
        if (dev != null) throw onDeviceError("ints()");
        if (dtype != DType.I32) throw new IllegalStateException("ints(): tensor " + this + " is " + dtype + ", not I32");
        return i32;
    }

    /** The BF16 storage array (bit patterns). */
    public short[] shorts() {
        if (dev != null) throw onDeviceError("shorts()");
        if (dtype != DType.BF16) throw new IllegalStateException("shorts(): tensor " + this + " is " + dtype + ", not BF16");
        return bf16;
    }

    // ---- views (share storage) ----

    /** Same storage, new shape; one dim may be -1 (inferred). */
    public Tensor reshape(int... newShape) {
        int[] s = newShape.clone();
        int infer = -1;
        long known = 1;
        for (int i = 0; i < s.length; i++) {
            if (s[i] == -1) {
                if (infer >= 0) throw new IllegalArgumentException("reshape " + Arrays.toString(newShape) + ": more than one -1");
                infer = i;
            } else {
                if (s[i] < 0) throw new IllegalArgumentException("reshape " + Arrays.toString(newShape) + ": negative dim");
                known *= s[i];
            }
        }
        if (infer >= 0) {
            if (known == 0 || numel % known != 0) {
                throw new IllegalArgumentException("reshape " + this + " to " + Arrays.toString(newShape) + ": cannot infer -1");
            }
            s[infer] = (int) (numel / known);
        }
        if (numel(s) != numel) throw new IllegalArgumentException("reshape " + this + " to " + Arrays.toString(newShape) + ": element count differs");
        return view(s, offset);
    }

    /** Rows [start, end) along dim 0, sharing storage. */
    public Tensor slice(int start, int end) {
        if (shape.length == 0) throw new IllegalArgumentException("slice of a scalar tensor");
        if (start < 0 || end > shape[0] || start > end) {
            throw new IllegalArgumentException("slice [" + start + ", " + end + ") out of range for " + this);
        }
        int inner = shape[0] == 0 ? 0 : numel / shape[0];
        int[] s = shape.clone();
        s[0] = end - start;
        return view(s, offset + start * inner);
    }

    /** Index {@code i} along dim 0 (the dim is dropped), sharing storage. */
    public Tensor select(int i) {
        if (shape.length == 0) throw new IllegalArgumentException("select of a scalar tensor");
        if (i < 0 || i >= shape[0]) throw new IllegalArgumentException("select " + i + " out of range for " + this);
        int inner = numel / shape[0];
        return view(Arrays.copyOfRange(shape, 1, shape.length), offset + i * inner);
    }

    // ---- copies and element access ----

    /** A contiguous copy with its own storage. */
    public Tensor copy() {
        if (dev != null) return toDevice(dev.allocateLike(Math.max(1, (long) numel * dtype.bytes())));
        return switch (dtype) {
            case F32 -> new Tensor(dtype, shape.clone(), 0, Arrays.copyOfRange(f32, offset, offset + numel), null, null);
            case BF16 -> new Tensor(dtype, shape.clone(), 0, null, Arrays.copyOfRange(bf16, offset, offset + numel), null);
            case I32 -> new Tensor(dtype, shape.clone(), 0, null, null, Arrays.copyOfRange(i32, offset, offset + numel));
        };
    }

    /** Copies {@code src} (same shape and dtype) into this tensor's storage. */
    public void copyFrom(Tensor src) {
        if (!Arrays.equals(shape, src.shape) || dtype != src.dtype) {
            throw new IllegalArgumentException("copyFrom: " + src + " into " + this + ": shapes/dtypes differ");
        }
        if (dev != null || src.dev != null) {
            copyAcross(src);
            return;
        }
        switch (dtype) {
            case F32 -> System.arraycopy(src.f32, src.offset, f32, offset, numel);
            case BF16 -> System.arraycopy(src.bf16, src.offset, bf16, offset, numel);
            case I32 -> System.arraycopy(src.i32, src.offset, i32, offset, numel);
        }
    }

    /** copyFrom where either side is device memory: host → device, device → host or device → device. */
    private void copyAcross(Tensor src) {
        long bytes = (long) numel * dtype.bytes();
        if (dev != null && src.dev != null) {
            dev.copyFromDevice(src.dev, (long) src.offset * dtype.bytes(), (long) offset * dtype.bytes(), bytes);
        } else if (dev != null) {
            Tensor staged = src.toDevice(dev.allocateLike(Math.max(1, bytes)));
            try {
                dev.copyFromDevice(staged.dev, 0, (long) offset * dtype.bytes(), bytes);
            } finally {
                staged.dev.recycle();   // back to the pool now, not at a GC (work queued later on the stream runs after the copy)
            }
        } else {
            copyFrom(src.toCpu());
        }
    }

    /** Sets every element to {@code value}. */
    public Tensor fill(float value) {
        if (dev != null) throw onDeviceError("fill()");
        switch (dtype) {
            case F32 -> Arrays.fill(f32, offset, offset + numel, value);
            case BF16 -> Arrays.fill(bf16, offset, offset + numel, DType.toBf16(value));
            case I32 -> Arrays.fill(i32, offset, offset + numel, (int) value);
        }
        return this;
    }

    /** The values as a new float array (bf16 widened, ints converted). */
    public float[] toFloatArray() {
        if (dev != null) return toCpu().toFloatArray();
        float[] out = new float[numel];
        for (int i = 0; i < numel; i++) out[i] = getFlat(i);
        return out;
    }

    /** The values as a new int array (I32 only). */
    public int[] toIntArray() {
        if (dev != null) return toCpu().toIntArray();
        int[] out = new int[numel];
        if (dtype == DType.I32) {
            System.arraycopy(i32, offset, out, 0, numel);
        } else {
            throw new IllegalStateException("toIntArray(): tensor " + this + " is " + dtype + ", not an integer type");
        }
        return out;
    }

    /** The single value of a one-element tensor. */
    public float item() {
        if (numel != 1) throw new IllegalStateException("item(): tensor " + this + " has " + numel + " elements, not 1");
        return dev != null ? toCpu().getFlat(0) : getFlat(0);
    }

    /** Element at row-major flat index {@code i}, as float. */
    public float getFlat(int i) {
        if (i < 0 || i >= numel) throw new IndexOutOfBoundsException("flat index " + i + " out of range for " + this);
        if (dev != null) return slice1(i).toCpu().getFlat(0);
        return switch (dtype) {
            case F32 -> f32[offset + i];
            case BF16 -> DType.fromBf16(bf16[offset + i]);
            case I32 -> i32[offset + i];
        };
    }

    /** The single element at flat index i as a 1-element view (device reads). */
    private Tensor slice1(int i) {
        return new Tensor(dtype, new int[] {1}, offset + i, null, null, null, dev);
    }

    @Override
    public String toString() {
        return "Tensor" + Arrays.toString(shape) + " " + dtype + (dev == null ? "" : " " + device);
    }

    /** Product of dims, failing past 2^31−1. */
    public static int numel(int[] shape) {
        long n = 1;
        for (int d : shape) n *= d;
        if (n > Integer.MAX_VALUE) throw new IllegalArgumentException("shape " + Arrays.toString(shape) + " has more than 2^31-1 elements");
        return (int) n;
    }

    private static int[] checkShape(int[] shape) {
        for (int d : shape) {
            if (d < 0) throw new IllegalArgumentException("negative dim in shape " + Arrays.toString(shape));
        }
        return shape.clone();
    }
}
