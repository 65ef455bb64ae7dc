package nanochat4j.model.interop;

import java.io.BufferedOutputStream;
import java.io.Closeable;
import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.LocalDateTime;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Enumeration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipException;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;

/**
 * PyTorch's {@code torch.save} file: a zip (entries stored, not compressed) of {@code <archive>/data.pkl} — the pickled
 * object, whose tensors refer to storages by persistent id {@code ('storage', torch.<T>Storage, key, location, numel)}
 * — and one raw little-endian record {@code <archive>/data/<key>} per storage, plus small records
 * ({@code version}, {@code byteorder}, {@code .format_version}, {@code .storage_alignment}).
 * <ul>
 *   <li>Reading: {@code data.pkl} goes through the restricted {@link PickleReader}; tensors come back as
 *       {@link TensorRef} descriptors (storage, offset, shape, stride) and their values are read one tensor at a time,
 *       streamed from the zip in 1 MiB chunks, so a checkpoint never sits in memory twice. Any strides and storage
 *       offsets (views, shared storages) are honoured. The archive folder may be {@code archive/} (older torch) or
 *       the file's stem (newer torch). torch's legacy non-zip format (before 1.6, or
 *       {@code _use_new_zipfile_serialization=False}) is read too: the same pickle, storages stored back to back.</li>
 *   <li>Writing: one contiguous storage per tensor, data aligned to 64 bytes within the file (torch's
 *       {@code .storage_alignment}, which {@code torch.load(mmap=True)} relies on), atomically (temp file, fsync,
 *       rename).</li>
 * </ul>
 */
public final class TorchZip implements Closeable {

    /** Storage element types, by torch's storage class name. */
    public enum DType {
        F32("FloatStorage", 4), BF16("BFloat16Storage", 2), F16("HalfStorage", 2), F64("DoubleStorage", 8),
        I32("IntStorage", 4), I64("LongStorage", 8);

        public final String storageClass;
        public final int bytes;

        DType(String storageClass, int bytes) {
            this.storageClass = storageClass;
            this.bytes = bytes;
        }

        public boolean isFloat() { return this == F32 || this == BF16 || this == F16 || this == F64; }

        static DType ofStorageClass(Py.Global g) {
            for (DType d : values()) if (g.module().equals("torch") && g.name().equals(d.storageClass)) return d;
            return null;
        }
    }

    /**
     * A storage of the file: element type, key ({@code data/<key>} in a zip) and element count; {@code base} > 0 only for
     * a legacy-format view into storage {@code key} (its first element there).
     */
    public record Storage(DType dtype, String key, long numel, long base) {}

    /** A tensor: a strided view of a storage, as {@code torch._utils._rebuild_tensor_v2} describes it. */
    public record TensorRef(Storage storage, long offset, int[] shape, long[] stride) {
        public long numel() {
            long n = 1;
            for (int d : shape) n *= d;
            return n;
        }

        /** Row-major with no gaps (dims of size 1 may have any stride). */
        public boolean contiguous() {
            long expect = 1;
            for (int i = shape.length - 1; i >= 0; i--) {
                if (shape[i] != 1 && stride[i] != expect) return false;
                expect *= shape[i];
            }
            return true;
        }

        public DType dtype() { return storage.dtype; }
    }

    /** A tensor to write: row-major values of {@code shape}, stored as {@code dtype} (floats, or ints for I32/I64). */
    public record OutTensor(int[] shape, DType dtype, float[] floats, int[] ints) {
        public OutTensor {
            long n = 1;
            for (int d : shape) n *= d;
            long have = dtype.isFloat() ? (floats == null ? -1 : floats.length) : (ints == null ? -1 : ints.length);
            if (have != n) throw new IllegalArgumentException("tensor of shape " + Arrays.toString(shape) + " " + dtype + " needs " + n + " values, got " + have);
            if (dtype == DType.F64 || dtype == DType.I64) throw new IllegalArgumentException("writing " + dtype + " tensors is not supported");
        }

        public static OutTensor ofFloats(float[] v, DType dtype, int... shape) { return new OutTensor(shape, dtype, v, null); }

        public static OutTensor ofInts(int[] v, int... shape) { return new OutTensor(shape, DType.I32, null, v); }

        long numel() { return dtype.isFloat() ? floats.length : ints.length; }
    }

    private static final int CHUNK = 1 << 20;
    private static final int ALIGN = 64;
    private static final Py.Global REBUILD_V2 = new Py.Global("torch._utils", "_rebuild_tensor_v2");
    private static final Py.Global REBUILD_PARAM = new Py.Global("torch._utils", "_rebuild_parameter");

    /** The pickle torch writes first in a legacy file: protocol 2, the magic number 0x1950a86a20f9469cfc6c as LONG1. */
    private static final byte[] LEGACY_MAGIC = {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20,
            0x6a, (byte) 0xa8, 0x50, 0x19, '.'};

    private final Path file;
    private final ZipFile zip;                   // null for a legacy file
    private final String prefix;
    private final Map<String, Storage> storages = new HashMap<>(); // root storages by key
    private final Map<String, Long> legacyData = new HashMap<>();  // legacy: key -> file offset of its first element
    private final Object root;

    private TorchZip(Path file) throws IOException {
        this.file = file;
        byte[] head = new byte[LEGACY_MAGIC.length];
        try (InputStream in = Files.newInputStream(file)) {
            head = Arrays.copyOf(head, in.readNBytes(head, 0, head.length));
        }
        if (Arrays.equals(head, LEGACY_MAGIC)) {
            zip = null;
            prefix = "";
            root = readLegacy();
            return;
        }
        try {
            this.zip = new ZipFile(file.toFile());
        } catch (ZipException e) {
            throw new IOException(file + ": not a torch.save file (neither a zip archive nor torch's legacy format), or truncated ("
                    + e.getMessage() + ")", e);
        }
        try {
            String p = null;
            for (Enumeration<? extends ZipEntry> en = zip.entries(); en.hasMoreElements(); ) {
                String name = en.nextElement().getName();
                if (name.endsWith("/data.pkl") && name.indexOf('/') == name.length() - "/data.pkl".length()) {
                    if (p != null) throw new IOException(file + ": two data.pkl records (" + p + "data.pkl, " + name + ")");
                    p = name.substring(0, name.length() - "data.pkl".length());
                }
            }
            if (p == null) throw new IOException(file + ": no <archive>/data.pkl record: not a torch.save file");
            prefix = p;
            ZipEntry order = zip.getEntry(prefix + "byteorder");
            if (order != null) {
                String bo = new String(readEntry(order, 16), StandardCharsets.US_ASCII).strip();
                if (!bo.equals("little")) throw new IOException(file + ": byteorder is '" + bo + "'; only little-endian files are supported");
            }
            ZipEntry pkl = zip.getEntry(prefix + "data.pkl");
            byte[] data = readEntry(pkl, 1 << 28);
            root = new PickleReader(file + " (" + prefix + "data.pkl)", this::call, this::persistent).read(data);
            for (Storage st : storages.values()) {
                ZipEntry e = zip.getEntry(prefix + "data/" + st.key());
                if (e == null) throw new IOException(file + ": storage record " + prefix + "data/" + st.key() + " is missing");
                if (e.getSize() != st.numel() * st.dtype().bytes) {
                    throw new IOException(file + ": storage record data/" + st.key() + " holds " + e.getSize() + " bytes but data.pkl says "
                            + st.numel() + " " + st.dtype() + " elements (" + st.numel() * st.dtype().bytes + " bytes)");
                }
            }
        } catch (IOException | RuntimeException e) {
            zip.close();
            throw e;
        }
    }

    /**
     * torch's format before 1.6 ({@code _use_new_zipfile_serialization=False}): five pickles in a row — magic number,
     * protocol version 1001, sys info, the object, the sorted storage keys — then each storage in key order as an
     * int64 element count and its raw bytes.
     */
    private Object readLegacy() throws IOException {
        long size = Files.size(file);
        // the pickles are small (a state dict's is tens of KB); read a prefix, growing it if a pickle runs past it
        for (long want = 1 << 20; ; want *= 4) {
            int n = (int) Math.min(size, Math.min(want, 1L << 30));
            byte[] b;
            try (InputStream in = Files.newInputStream(file)) {
                b = in.readNBytes(n);
            }
            storages.clear();
            try {
                PickleReader r = new PickleReader(file + " (legacy format)", this::call, this::persistent);
                Object version = r.read(b, LEGACY_MAGIC.length);
                if (!Long.valueOf(1001).equals(version)) throw new IOException(file + ": legacy torch file of protocol version " + Py.brief(version) + ", expected 1001");
                Object sys = r.read(b, r.end());
                if (sys instanceof Map<?, ?> m && Boolean.FALSE.equals(m.get("little_endian"))) {
                    throw new IOException(file + ": saved on a big-endian machine; only little-endian files are supported");
                }
                Object obj = r.read(b, r.end());
                Object keys = r.read(b, r.end());
                if (!(keys instanceof List<?> kl)) throw new IOException(file + ": legacy storage key list is missing");
                long pos = r.end();
                try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
                    ByteBuffer count = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
                    for (Object k : kl) {
                        Storage st = storages.get(String.valueOf(k));
                        if (st == null) throw new IOException(file + ": storage " + Py.brief(k) + " is listed but no tensor uses it");
                        count.clear();
                        while (count.hasRemaining()) {
                            if (ch.read(count, pos + count.position()) < 0) throw new IOException(file + ": truncated before storage " + k);
                        }
                        long numel = count.flip().getLong();
                        if (numel != st.numel()) throw new IOException(file + ": storage " + k + " holds " + numel + " elements, the pickle says " + st.numel());
                        legacyData.put(st.key(), pos + 8);
                        pos += 8 + numel * st.dtype().bytes;
                        if (pos > size) throw new IOException(file + ": truncated inside storage " + k + " (needs " + pos + " bytes, has " + size + ")");
                    }
                }
                for (String k : storages.keySet()) if (!legacyData.containsKey(k)) throw new IOException(file + ": storage " + k + " has no data");
                return obj;
            } catch (IOException e) {
                if (n == size || n >= (1L << 30) || !e.getMessage().contains("truncated file")) throw e;
            }
        }
    }

    /** Opens a torch.save file and reads its pickle (the tensor values stay in the file until asked for). */
    public static TorchZip open(Path file) throws IOException {
        if (!Files.isRegularFile(file)) throw new IOException(file + ": file not found");
        return new TorchZip(file);
    }

    public Path file() { return file; }

    /** The saved object: a {@code Map<String, Object>} of {@link TensorRef} for a state dict, a TensorRef for a tensor. */
    public Object root() { return root; }

    /** The state dict: name → tensor, in file order; fails naming the file if the root is something else. */
    public Map<String, TensorRef> stateDict() throws IOException {
        if (!(root instanceof Map<?, ?> m)) throw new IOException(file + ": holds a " + describe(root) + ", not a state dict");
        Map<String, TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<?, ?> e : m.entrySet()) {
            if (!(e.getKey() instanceof String k)) throw new IOException(file + ": state dict key " + Py.brief(e.getKey()) + " is not a string");
            if (!(e.getValue() instanceof TensorRef t)) throw new IOException(file + ": state dict entry " + k + " is a " + describe(e.getValue()) + ", not a tensor");
            out.put(k, t);
        }
        return out;
    }

    /** The values of a float tensor, row-major, widened to float (F64 narrowed). */
    public float[] floats(TensorRef t) throws IOException {
        if (!t.dtype().isFloat()) throw new IOException(file + ": storage " + t.storage().key() + " is " + t.dtype() + ", not a float tensor");
        float[] out = new float[Math.toIntExact(t.numel())];
        read(t, (buf, i) -> {
            switch (t.dtype()) {
                case F32 -> { while (buf.remaining() >= 4) out[i++] = buf.getFloat(); }
                case BF16 -> { while (buf.remaining() >= 2) out[i++] = Float.intBitsToFloat((buf.getShort() & 0xFFFF) << 16); }
                case F16 -> { while (buf.remaining() >= 2) out[i++] = Float.float16ToFloat(buf.getShort()); }
                default -> { while (buf.remaining() >= 8) out[i++] = (float) buf.getDouble(); }
            }
            return i;
        }, out.length);
        return out;
    }

    /** The values of an integer tensor, row-major (I64 must fit in an int). */
    public int[] ints(TensorRef t) throws IOException {
        if (t.dtype() != DType.I32 && t.dtype() != DType.I64) throw new IOException(file + ": storage " + t.storage().key() + " is " + t.dtype() + ", not an integer tensor");
        int[] out = new int[Math.toIntExact(t.numel())];
        read(t, (buf, i) -> {
            if (t.dtype() == DType.I32) while (buf.remaining() >= 4) out[i++] = buf.getInt();
            else while (buf.remaining() >= 8) {
                long v = buf.getLong();
                if (v != (int) v) throw new IllegalStateException(file + ": int64 value " + v + " of storage " + t.storage().key() + " does not fit an int");
                out[i++] = (int) v;
            }
            return i;
        }, out.length);
        return out;
    }

    /** Consumes whole elements of a little-endian chunk into the output from index i; returns the next index. */
    private interface Sink {
        int take(ByteBuffer chunk, int i);
    }

    private void read(TensorRef t, Sink sink, int n) throws IOException {
        Storage s = t.storage();
        int es = s.dtype().bytes;
        if (n == 0) return;
        long last = t.offset();
        for (int d = 0; d < t.shape().length; d++) last += (long) (t.shape()[d] - 1) * t.stride()[d];
        if (t.offset() < 0 || last >= s.numel()) {
            throw new IOException(file + ": a tensor of shape " + Arrays.toString(t.shape()) + " at offset " + t.offset() + " with strides "
                    + Arrays.toString(t.stride()) + " reaches element " + last + " of storage " + s.key() + ", which has " + s.numel());
        }
        try (InputStream in = open(s.key(), (s.base() + t.offset()) * es)) {
            if (t.contiguous()) {
                ByteBuffer buf = ByteBuffer.allocate((int) Math.min(CHUNK, (long) n * es)).order(ByteOrder.LITTLE_ENDIAN);
                long left = (long) n * es;
                int i = 0;
                while (left > 0) {
                    int len = (int) Math.min(buf.capacity(), left);
                    in.readNBytes(buf.array(), 0, len);
                    buf.clear().limit(len);
                    i = sink.take(buf, i);
                    left -= len;
                }
                if (i != n) throw new IOException(file + ": storage record data/" + s.key() + " ended early");
                return;
            }
            // A strided view (a slice or transpose saved as such): read the span it covers, then gather in row-major order.
            long span = (last - t.offset() + 1) * es;
            if (span > Integer.MAX_VALUE) throw new IOException(file + ": strided tensor over " + span + " bytes of storage " + s.key() + " is too large");
            byte[] all = in.readNBytes((int) span);
            if (all.length != span) throw new IOException(file + ": storage record data/" + s.key() + " ended early");
            ByteBuffer src = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
            ByteBuffer one = ByteBuffer.allocate(es).order(ByteOrder.LITTLE_ENDIAN);
            int[] idx = new int[t.shape().length];
            int i = 0;
            for (long k = 0; k < n; k++) {
                long el = 0;
                for (int d = 0; d < idx.length; d++) el += idx[d] * t.stride()[d];
                one.clear();
                one.put(0, src, (int) (el * es), es);
                one.limit(es);
                i = sink.take(one, i);
                for (int d = idx.length - 1; d >= 0 && ++idx[d] == t.shape()[d]; d--) idx[d] = 0;
            }
        } catch (java.io.EOFException ex) {
            throw new IOException(file + ": storage record data/" + s.key() + " ended early", ex);
        }
    }

    /** The bytes of storage {@code key} from byte {@code from} on. */
    private InputStream open(String key, long from) throws IOException {
        if (zip != null) {
            InputStream in = zip.getInputStream(zip.getEntry(prefix + "data/" + key));
            in.skipNBytes(from);
            return in;
        }
        FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
        ch.position(legacyData.get(key) + from);
        return new java.io.BufferedInputStream(Channels.newInputStream(ch), CHUNK);
    }

    private Object persistent(Object pid) throws IOException {
        // ('storage', torch.<T>Storage, key, location, numel)
        if (!(pid instanceof Py.Tuple t) || t.size() < 5 || !"storage".equals(t.get(0))) {
            throw new IOException("unexpected persistent id " + Py.brief(pid) + " (torch writes ('storage', type, key, location, numel))");
        }
        if (!(t.get(1) instanceof Py.Global g) || DType.ofStorageClass(g) == null) {
            throw new IOException("storage type " + Py.brief(t.get(1)) + " is not one of " + Arrays.toString(DType.values()) + " (torch.*Storage)");
        }
        if (!(t.get(2) instanceof String key) || !(t.get(4) instanceof Long numel) || numel < 0) {
            throw new IOException("malformed storage reference " + Py.brief(pid));
        }
        DType dt = DType.ofStorageClass(g);
        Storage rootStorage = new Storage(dt, key, numel, 0);
        Storage prev = storages.putIfAbsent(key, rootStorage);
        if (prev != null && !prev.equals(rootStorage)) throw new IOException("storage " + key + " is described twice differently: " + prev + " and " + rootStorage);
        Storage s = rootStorage;
        if (t.size() >= 6 && t.get(5) != null) {
            // legacy view_metadata (view_key, offset, size): a window of the root storage
            if (!(t.get(5) instanceof Py.Tuple v) || v.size() != 3 || !(v.get(1) instanceof Long off) || !(v.get(2) instanceof Long len)
                    || off < 0 || len < 0 || off + len > numel) {
                throw new IOException("malformed storage view " + Py.brief(t.get(5)) + " of storage " + key + " (" + numel + " elements)");
            }
            s = new Storage(dt, key, len, off);
        }
        return s;
    }

    private Object call(Py.Global g, Py.Tuple a) throws IOException {
        if (g.equals(REBUILD_V2)) {
            // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            if (a.size() < 6 || !(a.get(0) instanceof Storage s) || !(a.get(1) instanceof Long off)
                    || !(a.get(2) instanceof Py.Tuple size) || !(a.get(3) instanceof Py.Tuple stride) || size.size() != stride.size()) {
                throw new IOException("malformed torch._utils._rebuild_tensor_v2 arguments " + Py.brief(a));
            }
            int[] shape = new int[size.size()];
            long[] str = new long[size.size()];
            for (int i = 0; i < shape.length; i++) {
                if (!(size.get(i) instanceof Long d) || d < 0 || d > Integer.MAX_VALUE || !(stride.get(i) instanceof Long st) || st < 0) {
                    throw new IOException("bad tensor size " + Py.brief(size) + " / stride " + Py.brief(stride));
                }
                shape[i] = (int) (long) d;
                str[i] = st;
            }
            return new TensorRef(s, off, shape, str);
        }
        if (g.equals(REBUILD_PARAM)) {
            // _rebuild_parameter(data, requires_grad, backward_hooks): a Parameter is its data here
            if (a.size() != 3 || !(a.get(0) instanceof TensorRef t)) throw new IOException("malformed torch._utils._rebuild_parameter arguments " + Py.brief(a));
            return t;
        }
        throw new IOException(g + " may not be called (it is only valid as a storage type)");
    }

    private byte[] readEntry(ZipEntry e, int max) throws IOException {
        if (e.getSize() > max) throw new IOException(file + ": record " + e.getName() + " is " + e.getSize() + " bytes, more than the " + max + " expected");
        try (InputStream in = zip.getInputStream(e)) {
            return in.readAllBytes();
        }
    }

    private static String describe(Object o) {
        return o == null ? "None" : o instanceof TensorRef ? "tensor" : o.getClass().getSimpleName();
    }

    @Override
    public void close() throws IOException {
        if (zip != null) zip.close();
    }

    // ------------------------------------------------------------------ writing

    /** Writes {@code torch.save(OrderedDict(tensors))} to {@code file} (atomically). */
    public static void writeStateDict(Path file, Map<String, OutTensor> tensors) throws IOException {
        List<OutTensor> storages = new ArrayList<>();
        Map<String, Object> dict = new LinkedHashMap<>();
        for (Map.Entry<String, OutTensor> e : tensors.entrySet()) {
            dict.put(e.getKey(), rebuild(e.getValue(), storages.size()));
            storages.add(e.getValue());
        }
        write(file, dict, storages);
    }

    /** Writes {@code torch.save(tensor)} to {@code file} (atomically). */
    public static void writeTensor(Path file, OutTensor tensor) throws IOException {
        write(file, rebuild(tensor, 0), List.of(tensor));
    }

    private static Py.Reduce rebuild(OutTensor t, int key) {
        Object[] size = new Object[t.shape().length], stride = new Object[t.shape().length];
        long s = 1;
        for (int i = t.shape().length - 1; i >= 0; i--) {
            size[i] = (long) t.shape()[i];
            stride[i] = s;
            s *= t.shape()[i];
        }
        Py.PersistentId pid = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", t.dtype().storageClass),
                Integer.toString(key), "cpu", t.numel()));
        return new Py.Reduce(REBUILD_V2, Py.Tuple.of(pid, 0L, Py.Tuple.of(size), Py.Tuple.of(stride), false,
                new Py.Reduce(new Py.Global("collections", "OrderedDict"), Py.Tuple.of())));
    }

    private static void write(Path file, Object root, List<OutTensor> storages) throws IOException {
        String name = file.getFileName().toString();
        String archive = (name.endsWith(".pt") ? name.substring(0, name.length() - 3) : name) + "/";
        Path dir = file.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + name + ".", ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                Counting counting = new Counting(new BufferedOutputStream(Channels.newOutputStream(ch), CHUNK));
                try (ZipOutputStream zos = new ZipOutputStream(counting)) {
                    small(zos, counting, archive + "data.pkl", PickleWriter.write(root, 2));
                    small(zos, counting, archive + ".format_version", "1".getBytes(StandardCharsets.US_ASCII));
                    small(zos, counting, archive + ".storage_alignment", Integer.toString(ALIGN).getBytes(StandardCharsets.US_ASCII));
                    small(zos, counting, archive + "byteorder", "little".getBytes(StandardCharsets.US_ASCII));
                    for (int k = 0; k < storages.size(); k++) storage(zos, counting, archive + "data/" + k, storages.get(k));
                    small(zos, counting, archive + "version", "3\n".getBytes(StandardCharsets.US_ASCII));
                    zos.finish();
                    counting.flush();
                    ch.force(true);
                }
            }
            try {
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }

    private static void small(ZipOutputStream zos, Counting c, String name, byte[] data) throws IOException {
        CRC32 crc = new CRC32();
        crc.update(data);
        begin(zos, c, name, data.length, crc.getValue());
        zos.write(data);
        zos.closeEntry();
    }

    private static void storage(ZipOutputStream zos, Counting c, String name, OutTensor t) throws IOException {
        long size = t.numel() * t.dtype().bytes;
        CRC32 crc = new CRC32();
        ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
        // two passes over the values (CRC first: a stored zip entry needs it in its header), no copy of the tensor
        encode(t, buf, b -> crc.update(b.array(), 0, b.limit()));
        begin(zos, c, name, size, crc.getValue());
        encode(t, buf, b -> zos.write(b.array(), 0, b.limit()));
        zos.closeEntry();
    }

    private interface ChunkOut {
        void accept(ByteBuffer b) throws IOException;
    }

    private static void encode(OutTensor t, ByteBuffer buf, ChunkOut out) throws IOException {
        buf.clear();
        long n = t.numel();
        for (int i = 0; i < n; i++) {
            if (buf.remaining() < 4) {
                buf.flip();
                out.accept(buf);
                buf.clear();
            }
            switch (t.dtype()) {
                case F32 -> buf.putFloat(t.floats()[i]);
                case BF16 -> buf.putShort(toBf16(t.floats()[i]));
                case F16 -> buf.putShort(Float.floatToFloat16(t.floats()[i]));
                default -> buf.putInt(t.ints()[i]);
            }
        }
        buf.flip();
        if (buf.hasRemaining()) out.accept(buf);
    }

    /** float → bfloat16 bits, round to nearest even (NaN stays NaN), as torch's {@code .bfloat16()}. */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x40);
        bits += 0x7FFF + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    /** Starts a stored entry whose data begins on a 64-byte boundary of the file (padding in an extra field, as torch does). */
    private static void begin(ZipOutputStream zos, Counting c, String name, long size, long crc) throws IOException {
        ZipEntry e = new ZipEntry(name);
        e.setMethod(ZipEntry.STORED);
        e.setSize(size);
        e.setCompressedSize(size);
        e.setCrc(crc);
        // A fixed time, for reproducible files. Not torch's 1980-01-01 00:00: Java stores exactly that instant as an extra
        // 9-byte timestamp field, which would shift the data off its alignment.
        e.setTimeLocal(LocalDateTime.of(2000, 1, 1, 0, 0));
        int nameLen = name.getBytes(StandardCharsets.UTF_8).length;
        long dataStart = c.count + 30 + nameLen;
        int pad = (int) ((ALIGN - dataStart % ALIGN) % ALIGN);
        if (pad > 0 && pad < 4) pad += ALIGN; // an extra field needs its 4-byte header
        if (pad > 0) {
            byte[] extra = new byte[pad];
            extra[0] = 'F';
            extra[1] = 'B';
            extra[2] = (byte) (pad - 4);
            extra[3] = (byte) ((pad - 4) >>> 8);
            Arrays.fill(extra, 4, pad, (byte) 'Z');
            e.setExtra(extra);
        }
        zos.putNextEntry(e);
    }

    /** Counts bytes written, to place each record's data on an aligned offset. */
    private static final class Counting extends FilterOutputStream {
        long count;

        Counting(OutputStream out) { super(out); }

        @Override
        public void write(int b) throws IOException {
            out.write(b);
            count++;
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            out.write(b, off, len);
            count += len;
        }
    }
}
