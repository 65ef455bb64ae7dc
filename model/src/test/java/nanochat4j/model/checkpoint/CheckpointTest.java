package nanochat4j.model.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import nanochat4j.model.gpt.GPTConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
    static final GPTConfig CFG = new GPTConfig(16, 100, 2, 2, 1, 32, "SL");

    @TempDir Path dir;

    static Map<String, float[]> randomParams(GPTConfig cfg, long seed) {
        Random r = new Random(seed);
        Map<String, float[]> m = new LinkedHashMap<>();
        cfg.parameterShapes().forEach((name, shape) -> {
            int n = 1;
            for (int d : shape) n *= d;
            float[] v = new float[n];
            for (int i = 0; i < n; i++) v[i] = (float) r.nextGaussian();
            m.put(name, v);
        });
        return m;
    }

    @Test
    void f32RoundTripIsExactAndKeepsMetaAndExtras() throws IOException {
        Map<String, float[]> p = randomParams(CFG, 1);
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("user_config", Map.of("depth", 2));
        extra.put("loop_state", Map.of("min_val_bpb", 1.25));
        Checkpoint.save(dir, p, new Checkpoint.Meta(CFG, 42, "tok-abc", Map.of("val_bpb", 1.5), extra), Safetensors.DType.F32);
        assertTrue(Files.exists(dir.resolve("model_000042.safetensors")));
        assertTrue(Files.exists(dir.resolve("meta_000042.json")));
        try (Stream<Path> s = Files.list(dir)) {
            assertEquals(2, s.count(), "no temp files are left behind");
        }
        Checkpoint.Loaded l = Checkpoint.load(dir, 42);
        assertEquals(CFG, l.meta().config());
        assertEquals(42, l.meta().step());
        assertEquals("tok-abc", l.meta().tokenizer());
        assertEquals(1.5, ((Number) l.meta().metrics().get("val_bpb")).doubleValue());
        assertEquals(Map.of("depth", 2), l.meta().extra().get("user_config"));
        assertEquals(List.copyOf(p.keySet()), List.copyOf(l.params().keySet()));
        p.forEach((k, v) -> assertArrayEquals(v, l.params().get(k), k));
    }

    @Test
    void bf16RoundsToNearestEven() throws IOException {
        Map<String, float[]> p = randomParams(CFG, 2);
        Checkpoint.save(dir, p, new Checkpoint.Meta(CFG, 1, null, null, null), Safetensors.DType.BF16);
        Checkpoint.Loaded l = Checkpoint.load(dir, 1);
        p.forEach((k, v) -> {
            float[] got = l.params().get(k);
            for (int i = 0; i < v.length; i++) {
                assertEquals(v[i], got[i], Math.abs(v[i]) * 0x1p-8, k + "[" + i + "]");
                assertEquals(0, Float.floatToRawIntBits(got[i]) & 0xFFFF);
            }
        });
        assertEquals(Float.intBitsToFloat(0x3F800000), Safetensors.fromBf16(Safetensors.toBf16(Float.intBitsToFloat(0x3F808000)))); // tie → even
        assertEquals(Float.intBitsToFloat(0x3F820000), Safetensors.fromBf16(Safetensors.toBf16(Float.intBitsToFloat(0x3F818000)))); // tie → even (up)
        assertTrue(Float.isNaN(Safetensors.fromBf16(Safetensors.toBf16(Float.NaN))));
    }

    /** The layout Python's safetensors expects: u64 LE header length (multiple of 8), JSON, then data at offset 0. */
    @Test
    void fileLayoutIsSafetensors() throws IOException {
        Path f = dir.resolve("x.safetensors");
        Safetensors.write(f, List.of(new Safetensors.Entry("a", new int[] {2, 2}, Safetensors.DType.F32, new float[] {1, 2, 3, 4}),
                new Safetensors.Entry("b", new int[] {}, Safetensors.DType.BF16, new float[] {1})), Map.of("k", "v"));
        byte[] bytes = Files.readAllBytes(f);
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = bb.getLong();
        assertEquals(0, n % 8);
        String header = new String(bytes, 8, (int) n, StandardCharsets.UTF_8);
        assertTrue(header.contains("\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"), header);
        assertTrue(header.contains("\"b\":{\"dtype\":\"BF16\",\"shape\":[],\"data_offsets\":[16,18]}"), header);
        assertTrue(header.contains("\"__metadata__\":{\"k\":\"v\"}"), header);
        assertEquals(8 + n + 18, bytes.length);
        assertEquals(3f, bb.getFloat((int) (8 + n + 8)));
        assertEquals((short) 0x3F80, bb.getShort((int) (8 + n + 16)));
    }

    /** The same checkpoint is the same bytes: metadata in key order, whatever order the map iterates in this JVM. */
    @Test
    void metadataIsWrittenInKeyOrder() throws IOException {
        Path f = dir.resolve("m.safetensors");
        Map<String, String> meta = new java.util.LinkedHashMap<>();
        meta.put("step", "6");
        meta.put("format", "pt");
        Safetensors.write(f, List.of(new Safetensors.Entry("a", new int[] {1}, Safetensors.DType.F32, new float[] {1})), meta);
        String header = new String(Files.readAllBytes(f), StandardCharsets.UTF_8);
        assertTrue(header.contains("\"__metadata__\":{\"format\":\"pt\",\"step\":\"6\"}"), header);
    }

    @Test
    void missingTensorIsNamed() throws IOException {
        Map<String, float[]> p = randomParams(CFG, 3);
        Checkpoint.save(dir, p, new Checkpoint.Meta(CFG, 5, null, null, null), Safetensors.DType.F32);
        Path f = Checkpoint.modelFile(dir, 5);
        List<Safetensors.Entry> entries = new ArrayList<>(Safetensors.read(f).tensors().values());
        entries.removeIf(e -> e.name().equals("transformer.h.1.mlp.c_fc.weight"));
        Safetensors.write(f, entries, Map.of());
        IOException e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 5));
        assertTrue(e.getMessage().contains("missing tensor transformer.h.1.mlp.c_fc.weight"), e.getMessage());
        assertTrue(e.getMessage().contains("model_000005.safetensors"), e.getMessage());
    }

    @Test
    void extraTensorIsNamed() throws IOException {
        Checkpoint.save(dir, randomParams(CFG, 4), new Checkpoint.Meta(CFG, 6, null, null, null), Safetensors.DType.F32);
        Path f = Checkpoint.modelFile(dir, 6);
        List<Safetensors.Entry> entries = new ArrayList<>(Safetensors.read(f).tensors().values());
        entries.add(new Safetensors.Entry("transformer.h.0.attn.ve_gate.weight", new int[] {1, 12}, Safetensors.DType.F32, new float[12]));
        Safetensors.write(f, entries, Map.of());
        IOException e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 6));
        assertTrue(e.getMessage().contains("unexpected tensor transformer.h.0.attn.ve_gate.weight"), e.getMessage());
    }

    @Test
    void misShapedTensorIsNamed() throws IOException {
        Checkpoint.save(dir, randomParams(CFG, 5), new Checkpoint.Meta(CFG, 7, null, null, null), Safetensors.DType.F32);
        Path f = Checkpoint.modelFile(dir, 7);
        List<Safetensors.Entry> entries = new ArrayList<>();
        for (Safetensors.Entry t : Safetensors.read(f).tensors().values()) {
            entries.add(t.name().equals("lm_head.weight")
                    ? new Safetensors.Entry(t.name(), new int[] {32, 128}, t.dtype(), t.values()) : t);
        }
        Safetensors.write(f, entries, Map.of());
        IOException e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 7));
        assertTrue(e.getMessage().contains("tensor lm_head.weight has shape [32, 128]") && e.getMessage().contains("[128, 32]"), e.getMessage());
    }

    @Test
    void truncatedFileIsDetected() throws IOException {
        Checkpoint.save(dir, randomParams(CFG, 6), new Checkpoint.Meta(CFG, 8, null, null, null), Safetensors.DType.F32);
        Path f = Checkpoint.modelFile(dir, 8);
        byte[] b = Files.readAllBytes(f);
        Files.write(f, java.util.Arrays.copyOf(b, b.length - 10));
        IOException e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 8));
        assertTrue(e.getMessage().contains("truncated") && e.getMessage().contains("value_embeds.1.weight"), e.getMessage());
        Files.write(f, java.util.Arrays.copyOf(b, 20));
        e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 8));
        assertTrue(e.getMessage().contains("header length"), e.getMessage());
        Files.write(f, java.util.Arrays.copyOf(b, 5));
        e = assertThrows(IOException.class, () -> Checkpoint.load(dir, 8));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
    }

    private Path rawFile(String headerJson, int dataBytes) throws IOException {
        byte[] h = headerJson.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bb = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(h.length).put(h);
        Path f = dir.resolve("raw.safetensors");
        Files.write(f, bb.array());
        return f;
    }

    @Test
    void headerThatLiesAboutOffsetsIsRejected() throws IOException {
        IOException e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)));
        assertTrue(e.getMessage().contains("tensor b") && e.getMessage().contains("overlap tensor a"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 12)));
        assertTrue(e.getMessage().contains("tensor b needs data bytes up to 16"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8)));
        assertTrue(e.getMessage().contains("tensor a") && e.getMessage().contains("needs 12"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12)));
        assertTrue(e.getMessage().contains("hole"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8)));
        assertTrue(e.getMessage().contains("unsupported dtype 'I64'"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile(
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 12)));
        assertTrue(e.getMessage().contains("8 bytes after the last tensor a"), e.getMessage());
        e = assertThrows(IOException.class, () -> Safetensors.read(rawFile("{not json", 0)));
        assertTrue(e.getMessage().contains("not valid JSON"), e.getMessage());
    }

    @Test
    void lastStepAndTagDiscovery() throws IOException {
        Path base = dir.resolve("base_checkpoints");
        Path d4 = base.resolve("d4"), d12 = base.resolve("d12"), other = base.resolve("zzz");
        for (long step : new long[] {5, 100, 20}) {
            Checkpoint.save(d12, randomParams(CFG, step), new Checkpoint.Meta(CFG, step, null, null, null), Safetensors.DType.BF16);
        }
        Files.createDirectories(d4);
        Files.createDirectories(other);
        assertEquals(100, Checkpoint.lastStep(d12));
        assertEquals("d12", Checkpoint.largestTag(base));
        assertThrows(IOException.class, () -> Checkpoint.lastStep(d4));
        Path noDepth = dir.resolve("chat");
        Files.createDirectories(noDepth.resolve("a"));
        Files.createDirectories(noDepth.resolve("b"));
        Files.setLastModifiedTime(noDepth.resolve("a"), FileTime.fromMillis(2_000_000_000_000L));
        Files.setLastModifiedTime(noDepth.resolve("b"), FileTime.fromMillis(1_000_000_000_000L));
        assertEquals("a", Checkpoint.largestTag(noDepth));
    }

    @Test
    void savingAnIncompleteModelFails() {
        Map<String, float[]> p = randomParams(CFG, 9);
        p.remove("smear_gate.weight");
        var e = assertThrows(IllegalArgumentException.class,
                () -> Checkpoint.save(dir, p, new Checkpoint.Meta(CFG, 1, null, null, null), Safetensors.DType.F32));
        assertTrue(e.getMessage().contains("smear_gate.weight"), e.getMessage());
    }
}
