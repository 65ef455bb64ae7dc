package nanochat4j.model.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The safetensors format (readable by Python's {@code safetensors}): an 8-byte little-endian header length N, N bytes
 * of JSON ({@code name → {dtype, shape, data_offsets:[begin,end]}} plus an optional {@code __metadata__} string map,
 * padded with spaces to a multiple of 8), then the raw little-endian data, offsets relative to its start.
 * <ul>
 *   <li>F32 and BF16 (round-to-nearest-even on write, exact widening on read);</li>
 *   <li>writes are atomic: temp file in the same folder, fsync, rename, fsync of the folder;</li>
 *   <li>reads validate the header completely before touching data — unknown dtype, bad shape, offsets that do not
 *       match the shape, overlap, holes or data past the end of the file fail naming the file and the tensor.</li>
 * </ul>
 */
public final class Safetensors {
    private Safetensors() {}

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER = 100L << 20;

    public enum DType {
        F32(4), BF16(2);
        public final int bytes;
        DType(int bytes) { this.bytes = bytes; }
    }

    /** One tensor: row-major values widened to float, the dtype it is (to be) stored in. */
    public record Entry(String name, int[] shape, DType dtype, float[] values) {
        public Entry {
            long n = 1;
            for (int d : shape) {
                if (d < 0) throw new IllegalArgumentException("tensor " + name + ": negative dimension in " + Arrays.toString(shape));
                n *= d;
            }
            if (n != values.length) {
                throw new IllegalArgumentException("tensor " + name + ": shape " + Arrays.toString(shape) + " holds " + n
                        + " values, got " + values.length);
            }
        }
    }

    /** A file's tensors in data order, and its {@code __metadata__}. */
    public record Contents(Map<String, Entry> tensors, Map<String, String> metadata) {}

    /** Writes the tensors (in the given order) atomically to {@code file}. */
    public static void write(Path file, List<Entry> tensors, Map<String, String> metadata) throws IOException {
        ObjectNode header = JSON.createObjectNode();
        if (metadata != null && !metadata.isEmpty()) {
            ObjectNode meta = header.putObject("__metadata__");
            new TreeMap<>(metadata).forEach(meta::put);   // sorted: Map.of's order changes from run to run, the file must not
        }
        long offset = 0;
        for (Entry t : tensors) {
            if (header.has(t.name())) throw new IllegalArgumentException(file + ": duplicate tensor name " + t.name());
            ObjectNode e = header.putObject(t.name());
            e.put("dtype", t.dtype().name());
            ArrayNode shape = e.putArray("shape");
            for (int d : t.shape()) shape.add(d);
            long size = (long) t.values().length * t.dtype().bytes;
            e.putArray("data_offsets").add(offset).add(offset + size);
            offset += size;
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        head.flip();
        AtomicFile.write(file, ch -> {
            writeFully(ch, head);
            ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
            for (Entry t : tensors) {
                float[] v = t.values();
                for (float f : v) {
                    if (buf.remaining() < 4) {
                        buf.flip();
                        writeFully(ch, buf);
                        buf.clear();
                    }
                    if (t.dtype() == DType.F32) buf.putFloat(f);
                    else buf.putShort(toBf16(f));
                }
            }
            buf.flip();
            writeFully(ch, buf);
        });
    }

    /** Reads and validates a whole file. */
    public static Contents read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new IOException(file + ": truncated safetensors file (" + size + " bytes, no header length)");
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long n = lenBuf.flip().getLong();
            if (n <= 0 || n > MAX_HEADER || n > size - 8) {
                throw new IOException(file + ": header length " + n + " is impossible for a file of " + size + " bytes (truncated or not safetensors)");
            }
            ByteBuffer hb = ByteBuffer.allocate((int) n);
            readFully(ch, hb, 8, file);
            JsonNode header;
            try {
                header = JSON.readTree(new String(hb.array(), StandardCharsets.UTF_8).strip());
            } catch (IOException e) {
                throw new IOException(file + ": header is not valid JSON: " + e.getMessage(), e);
            }
            if (header == null || !header.isObject()) throw new IOException(file + ": header is not a JSON object");
            long dataStart = 8 + n, dataLen = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            List<Slot> slots = new ArrayList<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = header.properties().iterator(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                if (f.getKey().equals("__metadata__")) {
                    if (!f.getValue().isObject()) throw new IOException(file + ": __metadata__ is not an object");
                    f.getValue().properties().forEach(m -> metadata.put(m.getKey(), m.getValue().asText()));
                    continue;
                }
                slots.add(parseSlot(file, f.getKey(), f.getValue()));
            }
            slots.sort(Comparator.comparingLong(Slot::begin));
            long expect = 0;
            String prev = null;
            for (Slot s : slots) {
                if (s.begin < expect) {
                    throw new IOException(file + ": tensor " + s.name + " data_offsets [" + s.begin + ", " + s.end
                            + ") overlap tensor " + prev + " (ends at " + expect + ")");
                }
                if (s.begin > expect) {
                    throw new IOException(file + ": tensor " + s.name + " starts at " + s.begin + " but the previous tensor "
                            + (prev == null ? "(none)" : prev) + " ends at " + expect + " (hole in the data)");
                }
                if (s.end > dataLen) {
                    throw new IOException(file + ": tensor " + s.name + " needs data bytes up to " + s.end + " but the file has only "
                            + dataLen + " after the header (truncated file or lying header)");
                }
                expect = s.end;
                prev = s.name;
            }
            if (expect != dataLen) {
                throw new IOException(file + ": " + (dataLen - expect) + " bytes after the last tensor " + prev + " (header does not describe the data)");
            }
            Map<String, Entry> tensors = new LinkedHashMap<>();
            for (Slot s : slots) {
                long count = (s.end - s.begin) / s.dtype.bytes;
                float[] v = new float[Math.toIntExact(count)];
                ByteBuffer buf = ByteBuffer.allocate((int) Math.min(1 << 20, s.end - s.begin)).order(ByteOrder.LITTLE_ENDIAN);
                long pos = dataStart + s.begin, endPos = dataStart + s.end;
                int i = 0;
                while (pos < endPos) {
                    buf.clear().limit((int) Math.min(buf.capacity(), endPos - pos));
                    readFully(ch, buf, pos, file);
                    pos += buf.limit();
                    buf.flip();
                    if (s.dtype == DType.F32) while (buf.remaining() >= 4) v[i++] = buf.getFloat();
                    else while (buf.remaining() >= 2) v[i++] = fromBf16(buf.getShort());
                }
                tensors.put(s.name, new Entry(s.name, s.shape, s.dtype, v));
            }
            return new Contents(tensors, metadata);
        }
    }

    private record Slot(String name, DType dtype, int[] shape, long begin, long end) {}

    private static Slot parseSlot(Path file, String name, JsonNode e) throws IOException {
        String where = file + ": tensor " + name;
        if (!e.isObject()) throw new IOException(where + ": header entry is not an object");
        String dt = e.path("dtype").asText("");
        DType dtype;
        try {
            dtype = DType.valueOf(dt);
        } catch (IllegalArgumentException ex) {
            throw new IOException(where + ": unsupported dtype '" + dt + "' (only F32 and BF16)");
        }
        JsonNode sh = e.get("shape"), off = e.get("data_offsets");
        if (sh == null || !sh.isArray()) throw new IOException(where + ": missing shape");
        int[] shape = new int[sh.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            if (!sh.get(i).canConvertToInt() || sh.get(i).asInt() < 0) throw new IOException(where + ": bad shape " + sh);
            shape[i] = sh.get(i).asInt();
            numel *= shape[i];
        }
        if (off == null || !off.isArray() || off.size() != 2 || !off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()) {
            throw new IOException(where + ": data_offsets must be [begin, end], got " + off);
        }
        long begin = off.get(0).asLong(), end = off.get(1).asLong();
        if (begin < 0 || end < begin) throw new IOException(where + ": bad data_offsets [" + begin + ", " + end + "]");
        if (end - begin != numel * dtype.bytes) {
            throw new IOException(where + ": data_offsets [" + begin + ", " + end + ") hold " + (end - begin) + " bytes but shape "
                    + Arrays.toString(shape) + " " + dtype + " needs " + numel * dtype.bytes);
        }
        if (numel > Integer.MAX_VALUE) throw new IOException(where + ": " + numel + " elements is too many for one tensor");
        return new Slot(name, dtype, shape, begin, end);
    }

    /** float → bfloat16 bits, round to nearest even (NaN stays NaN). */
    static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) return (short) ((bits >>> 16) | 0x40);
        bits += 0x7FFF + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }

    static float fromBf16(short b) {
        return Float.intBitsToFloat((b & 0xFFFF) << 16);
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos, Path file) throws IOException {
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) throw new IOException(file + ": unexpected end of file at byte " + pos);
            pos += r;
        }
    }

    /** Temp file in the same folder, fsync, atomic rename, fsync of the folder. */
    static final class AtomicFile {
        private AtomicFile() {}

        interface Body {
            void write(FileChannel ch) throws IOException;
        }

        static void write(Path file, Body body) throws IOException {
            Path dir = file.toAbsolutePath().getParent();
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, "." + file.getFileName() + ".", ".tmp");
            try {
                try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                    body.write(ch);
                    ch.force(true);
                }
                Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (IOException | RuntimeException e) {
                Files.deleteIfExists(tmp);
                throw e;
            }
            try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
                d.force(true);
            } catch (IOException ignored) {
                // some platforms cannot open a folder for fsync; the rename itself is still atomic
            }
        }

        static void write(Path file, byte[] content) throws IOException {
            write(file, ch -> writeFully(ch, ByteBuffer.wrap(content)));
        }
    }
}
