package nanochat4j.model.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TorchZipTest {

    @Test
    void fp32Bf16Fp16AndIntTensorsRoundTrip(@TempDir Path tmp) throws IOException {
        float[] v = {0f, 1f, -2.5f, 3.14159265f, 1e-3f, -65504f, 1.01171875f, Float.MIN_NORMAL};
        Map<String, TorchZip.OutTensor> in = new LinkedHashMap<>();
        in.put("f32", TorchZip.OutTensor.ofFloats(v, TorchZip.DType.F32, 2, 4));
        in.put("bf16", TorchZip.OutTensor.ofFloats(v, TorchZip.DType.BF16, 8));
        in.put("f16", TorchZip.OutTensor.ofFloats(v, TorchZip.DType.F16, 4, 2));
        in.put("i32", TorchZip.OutTensor.ofInts(new int[] {7, -1, 1 << 30}, 3));
        Path f = tmp.resolve("model_000003.pt");
        TorchZip.writeStateDict(f, in);
        try (TorchZip z = TorchZip.open(f)) {
            Map<String, TorchZip.TensorRef> sd = z.stateDict();
            assertEquals(List.of("f32", "bf16", "f16", "i32"), List.copyOf(sd.keySet()));
            assertArrayEquals(new int[] {2, 4}, sd.get("f32").shape());
            assertArrayEquals(v, z.floats(sd.get("f32")));
            float[] bf = z.floats(sd.get("bf16")), hf = z.floats(sd.get("f16"));
            for (int i = 0; i < v.length; i++) {
                assertEquals(Float.intBitsToFloat((TorchZip.toBf16(v[i]) & 0xFFFF) << 16), bf[i]);
                assertEquals(Float.float16ToFloat(Float.floatToFloat16(v[i])), hf[i]);
            }
            assertEquals(1.015625f, bf[6], "bf16: a tie rounds to the even mantissa");
            assertArrayEquals(new int[] {7, -1, 1 << 30}, z.ints(sd.get("i32")));
        }
        // torch's layout: records under the file's stem, data on 64-byte boundaries
        try (ZipFile zf = new ZipFile(f.toFile()); RandomAccessFile raf = new RandomAccessFile(f.toFile(), "r")) {
            assertTrue(zf.getEntry("model_000003/data.pkl") != null && zf.getEntry("model_000003/version") != null
                    && zf.getEntry("model_000003/byteorder") != null);
            for (int k = 0; k < 4; k++) {
                ZipEntry e = zf.getEntry("model_000003/data/" + k);
                assertEquals(ZipEntry.STORED, e.getMethod());
                assertEquals(0, dataOffset(raf, f, e.getName()) % 64, "record " + e.getName() + " is 64-byte aligned");
            }
        }
    }

    /** Offset of an entry's data: scan local headers (the test files are small). */
    static long dataOffset(RandomAccessFile raf, Path f, String name) throws IOException {
        byte[] all = Files.readAllBytes(f);
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        int p = 0;
        while (b.getInt(p) == 0x04034b50) {
            int n = b.getShort(p + 26) & 0xFFFF, x = b.getShort(p + 28) & 0xFFFF;
            long size = b.getInt(p + 18) & 0xFFFFFFFFL;
            String entry = new String(all, p + 30, n, java.nio.charset.StandardCharsets.UTF_8);
            long data = p + 30 + n + x;
            if (entry.equals(name)) return data;
            p = (int) (data + size);
        }
        throw new AssertionError(name + " not found");
    }

    /** A torch.save file as older torch wrote it ({@code archive/}), with a view sharing a storage: offset and strides. */
    @Test
    void stridedAndOffsetViewsOfASharedStorage(@TempDir Path tmp) throws IOException {
        float[] storage = new float[12];
        for (int i = 0; i < storage.length; i++) storage[i] = i;
        Py.PersistentId pid = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", "FloatStorage"), "0", "cpu", 12L));
        Py.Global rebuild = new Py.Global("torch._utils", "_rebuild_tensor_v2");
        Py.Reduce meta = new Py.Reduce(new Py.Global("collections", "OrderedDict"), Py.Tuple.of());
        Map<String, Object> sd = new LinkedHashMap<>();
        // whole storage as 3x4
        sd.put("full", new Py.Reduce(rebuild, Py.Tuple.of(pid, 0L, Py.Tuple.of(3L, 4L), Py.Tuple.of(4L, 1L), false, meta)));
        // its transpose (4x3, strides (1,4))
        sd.put("transposed", new Py.Reduce(rebuild, Py.Tuple.of(pid, 0L, Py.Tuple.of(4L, 3L), Py.Tuple.of(1L, 4L), false, meta)));
        // rows 1..2, columns 1..2 (offset 5, strides (4,1))
        sd.put("slice", new Py.Reduce(rebuild, Py.Tuple.of(pid, 5L, Py.Tuple.of(2L, 2L), Py.Tuple.of(4L, 1L), false, meta)));
        // a contiguous tail at an offset
        sd.put("tail", new Py.Reduce(rebuild, Py.Tuple.of(pid, 9L, Py.Tuple.of(3L), Py.Tuple.of(1L), false, meta)));
        ByteBuffer data = ByteBuffer.allocate(48).order(ByteOrder.LITTLE_ENDIAN);
        for (float x : storage) data.putFloat(x);
        Path f = tmp.resolve("old.pt");
        writeZip(f, Map.of("archive/data.pkl", PickleWriter.write(sd), "archive/data/0", data.array(), "archive/version", "3\n".getBytes()));
        try (TorchZip z = TorchZip.open(f)) {
            Map<String, TorchZip.TensorRef> t = z.stateDict();
            assertArrayEquals(storage, z.floats(t.get("full")));
            assertArrayEquals(new float[] {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11}, z.floats(t.get("transposed")));
            assertArrayEquals(new float[] {5, 6, 9, 10}, z.floats(t.get("slice")));
            assertArrayEquals(new float[] {9, 10, 11}, z.floats(t.get("tail")));
        }
    }

    /**
     * torch's pre-1.6 format ({@code torch.save(..., _use_new_zipfile_serialization=False)}), built here byte by byte
     * as {@code torch.serialization._legacy_save} writes it: magic, protocol 1001, sys info, the object (storages as
     * ('storage', type, key, location, numel, view_metadata)), the sorted keys, then per key an int64 count and the data.
     */
    @Test
    void readsTheLegacyNonZipFormatWithViews(@TempDir Path tmp) throws IOException {
        java.io.ByteArrayOutputStream f = new java.io.ByteArrayOutputStream();
        f.writeBytes(new byte[] {(byte) 0x80, 2, (byte) 0x8a, 10, 0x6c, (byte) 0xfc, (byte) 0x9c, 0x46, (byte) 0xf9, 0x20, 0x6a, (byte) 0xa8, 0x50, 0x19, '.'});
        f.writeBytes(PickleWriter.write(1001L));
        f.writeBytes(PickleWriter.write(Map.of("protocol_version", 1001L, "little_endian", true, "type_sizes", Map.of("short", 2L, "int", 4L, "long", 4L))));
        Py.Global rebuild = new Py.Global("torch._utils", "_rebuild_tensor_v2");
        Py.PersistentId a = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", "FloatStorage"), "94001", "cpu", 6L, null));
        Py.PersistentId aView = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", "FloatStorage"), "94001", "cpu", 6L,
                Py.Tuple.of("94001_v", 2L, 3L)));
        Py.PersistentId b = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", "BFloat16Storage"), "95002", "cpu", 2L, null));
        Map<String, Object> sd = new LinkedHashMap<>();
        sd.put("a", new Py.Reduce(rebuild, Py.Tuple.of(a, 0L, Py.Tuple.of(2L, 3L), Py.Tuple.of(3L, 1L), false, Map.of())));
        sd.put("view", new Py.Reduce(rebuild, Py.Tuple.of(aView, 1L, Py.Tuple.of(2L), Py.Tuple.of(1L), false, Map.of())));
        sd.put("b", new Py.Reduce(rebuild, Py.Tuple.of(b, 0L, Py.Tuple.of(2L), Py.Tuple.of(1L), false, Map.of())));
        f.writeBytes(PickleWriter.write(sd));
        f.writeBytes(PickleWriter.write(List.of("94001", "95002")));
        ByteBuffer data = ByteBuffer.allocate(8 + 24 + 8 + 4).order(ByteOrder.LITTLE_ENDIAN);
        data.putLong(6);
        for (int i = 0; i < 6; i++) data.putFloat(10 + i);
        data.putLong(2);
        data.putShort(TorchZip.toBf16(1.5f)).putShort(TorchZip.toBf16(-2f));
        f.writeBytes(data.array());
        Path file = tmp.resolve("legacy.pt");
        Files.write(file, f.toByteArray());
        try (TorchZip z = TorchZip.open(file)) {
            Map<String, TorchZip.TensorRef> t = z.stateDict();
            assertArrayEquals(new float[] {10, 11, 12, 13, 14, 15}, z.floats(t.get("a")));
            assertArrayEquals(new float[] {13, 14}, z.floats(t.get("view")), "view at element 2, tensor offset 1");
            assertArrayEquals(new float[] {1.5f, -2f}, z.floats(t.get("b")));
        }
        Path cut = tmp.resolve("legacy-cut.pt");
        Files.write(cut, java.util.Arrays.copyOf(f.toByteArray(), f.size() - 3));
        IOException e = assertThrows(IOException.class, () -> TorchZip.open(cut));
        assertTrue(e.getMessage().startsWith(cut.toString()) && e.getMessage().contains("truncated inside storage 95002"), e.getMessage());
    }

    @Test
    void truncatedZipAndShortStorageFailNamingTheFile(@TempDir Path tmp) throws IOException {
        Path f = tmp.resolve("model_000001.pt");
        TorchZip.writeStateDict(f, Map.of("w", TorchZip.OutTensor.ofFloats(new float[4096], TorchZip.DType.F32, 64, 64)));
        byte[] all = Files.readAllBytes(f);
        Path cut = tmp.resolve("cut.pt");
        Files.write(cut, java.util.Arrays.copyOf(all, all.length / 2));
        IOException e = assertThrows(IOException.class, () -> TorchZip.open(cut));
        assertTrue(e.getMessage().startsWith(cut.toString()) && e.getMessage().contains("truncated"), e.getMessage());

        // data.pkl claims more elements than the storage record holds
        Py.PersistentId pid = new Py.PersistentId(Py.Tuple.of("storage", new Py.Global("torch", "FloatStorage"), "0", "cpu", 100L));
        Object sd = Map.of("w", new Py.Reduce(new Py.Global("torch._utils", "_rebuild_tensor_v2"),
                Py.Tuple.of(pid, 0L, Py.Tuple.of(100L), Py.Tuple.of(1L), false, Map.of())));
        Path shortRec = tmp.resolve("short.pt");
        writeZip(shortRec, Map.of("archive/data.pkl", PickleWriter.write(sd), "archive/data/0", new byte[200]));
        IOException e2 = assertThrows(IOException.class, () -> TorchZip.open(shortRec));
        assertTrue(e2.getMessage().contains("short.pt") && e2.getMessage().contains("holds 200 bytes"), e2.getMessage());
        Path notZip = tmp.resolve("notzip.pt");
        Files.writeString(notZip, "hello");
        IOException e3 = assertThrows(IOException.class, () -> TorchZip.open(notZip));
        assertTrue(e3.getMessage().startsWith(notZip.toString()), e3.getMessage());
    }

    static void writeZip(Path f, Map<String, byte[]> entries) throws IOException {
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(f))) {
            for (String name : new java.util.TreeSet<>(entries.keySet())) {
                byte[] d = entries.get(name);
                ZipEntry e = new ZipEntry(name);
                e.setMethod(ZipEntry.STORED);
                e.setSize(d.length);
                CRC32 crc = new CRC32();
                crc.update(d);
                e.setCrc(crc.getValue());
                z.putNextEntry(e);
                z.write(d);
                z.closeEntry();
            }
        }
    }
}
