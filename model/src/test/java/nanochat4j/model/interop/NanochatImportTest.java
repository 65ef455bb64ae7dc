package nanochat4j.model.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Pretokenizer;
import nanochat4j.model.tokenizer.TiktokenFormat;
import nanochat4j.model.tokenizer.Tokenizer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Whole nanochat base dirs (written here, so no shared files needed): import, export, round trips, bad input. */
class NanochatImportTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    static Tokenizer tokenizer() {
        return Tokenizer.fromMerges(new int[][] {{'t', 'h'}, {256, 'e'}, {' ', 'a'}, {'i', 'n'}}, Pretokenizer.NANOCHAT_PATTERN);
    }

    static GPTConfig config(int vocab) {
        return new GPTConfig(64, vocab, 2, 2, 1, 32, "SL");
    }

    /** A nanochat base dir with a bf16 base checkpoint d2 at step 7. */
    static Map<String, float[]> nanochatDir(Path dir, GPTConfig c, Tokenizer tok) throws IOException {
        NanochatTokenizer.write(tok, dir.resolve("tokenizer"));
        Map<String, float[]> p = GPT.create(c, 1).stateDict();
        NanochatCheckpoint.write(dir.resolve("base_checkpoints/d2"), new Checkpoint.Meta(c, 7, null, null,
                Map.of("user_config", Map.of("depth", 2), "val_bpb", 1.5)), p, Safetensors.DType.BF16);
        return p;
    }

    @Test
    void importKeepsBf16ExportsBothFormatsAndRoundTripsBitForBit(@TempDir Path tmp) throws IOException {
        Tokenizer tok = tokenizer();
        GPTConfig c = config(tok.vocabSize());
        nanochatDir(tmp.resolve("nano"), c, tok);
        Path base = tmp.resolve("ours");
        List<NanochatImport.Imported> done = NanochatImport.run(tmp.resolve("nano"), base, new NanochatImport.Options(null, null, null, "mine", false));
        assertEquals(1, done.size());
        assertEquals(Safetensors.DType.BF16, done.getFirst().dtype());
        Path ours = ModelSource.BASE.dir(base).resolve("mine");
        assertEquals(Safetensors.DType.BF16, NanochatExport.storedDtype(Checkpoint.modelFile(ours, 7)));
        Checkpoint.Loaded first = Checkpoint.load(ours, 7);
        assertEquals(c, first.meta().config());
        assertEquals(1.5, first.meta().extra().get("val_bpb"));
        assertTrue(NanochatImport.sameVocabulary(tok, Tokenizer.load(base.resolve("tokenizer"))));
        ModelSource.Loaded viaSource = ModelSource.BASE.load(base, "mine", null, base.resolve("tokenizer"));
        assertEquals(7, viaSource.step());

        NanochatExport.Options o = new NanochatExport.Options(ModelSource.BASE, "mine", null, null);
        Path exported = NanochatExport.toNanochat(base, o, tmp.resolve("export"));
        assertEquals(tmp.resolve("export/base_checkpoints/mine/model_000007.pt"), exported);
        Path base2 = tmp.resolve("ours2");
        NanochatImport.run(tmp.resolve("export"), base2, new NanochatImport.Options(null, null, null, null, false));
        Checkpoint.Loaded second = Checkpoint.load(ModelSource.BASE.dir(base2).resolve("mine"), 7);
        for (String k : first.params().keySet()) {
            assertArrayEquals(NanochatFixtureTest.bits(first.params().get(k)), NanochatFixtureTest.bits(second.params().get(k)), k);
        }

        Path hf = tmp.resolve("hf");
        NanochatExport.toHuggingFace(base, o, hf);
        Safetensors.Contents st = Safetensors.read(hf.resolve("model.safetensors"));
        assertEquals(List.copyOf(c.parameterShapes().keySet()), List.copyOf(st.tensors().keySet()));
        for (String k : first.params().keySet()) {
            assertEquals(Safetensors.DType.BF16, st.tensors().get(k).dtype());
            assertArrayEquals(first.params().get(k), st.tensors().get(k).values(), k);
        }
        JsonNode cfg = JSON.readTree(hf.resolve("config.json").toFile());
        assertEquals("nanochat", cfg.get("model_type").asText());
        assertEquals(c, GPTConfig.fromJson(cfg.get("nanochat_model_config")));
        assertEquals(tok.bosId(), cfg.get("bos_token_id").asInt());
        assertEquals(tok.vocabSize() - 9, cfg.at("/tokenizer/special_tokens/<|bos|>").asInt());
        Tokenizer fromTiktoken = TiktokenFormat.read(hf.resolve("tokenizer.tiktoken"), cfg.at("/tokenizer/pattern").asText());
        assertTrue(NanochatImport.sameVocabulary(tok, fromTiktoken));
    }

    @Test
    void missingExtraAndMisshapedTensorsNameTheFileAndTensor(@TempDir Path tmp) throws IOException {
        Tokenizer tok = tokenizer();
        GPTConfig c = config(tok.vocabSize());
        Path dir = tmp.resolve("nano");
        Map<String, float[]> p = nanochatDir(dir, c, tok);
        Path ck = dir.resolve("base_checkpoints/d2");
        Path pt = NanochatCheckpoint.modelFile(ck, 7);

        Map<String, TorchZip.OutTensor> t = tensors(c, p);
        t.remove("lm_head.weight");
        TorchZip.writeStateDict(pt, t);
        IOException e = assertThrows(IOException.class, () -> NanochatCheckpoint.read(ck, 7));
        assertTrue(e.getMessage().startsWith(pt.toString()) && e.getMessage().contains("missing tensor lm_head.weight"), e.getMessage());
        e = assertThrows(IOException.class, () -> NanochatImport.run(dir, tmp.resolve("ours"), new NanochatImport.Options(null, null, null, null, false)));
        assertTrue(e.getMessage().contains("missing tensor lm_head.weight"), e.getMessage());
        assertTrue(!Files.exists(tmp.resolve("ours")), "an import that fails its checks writes nothing");

        t = tensors(c, p);
        t.put("transformer.h.9.attn.c_q.weight", TorchZip.OutTensor.ofFloats(new float[4], TorchZip.DType.F32, 2, 2));
        TorchZip.writeStateDict(pt, t);
        e = assertThrows(IOException.class, () -> NanochatCheckpoint.read(ck, 7));
        assertTrue(e.getMessage().startsWith(pt.toString()) && e.getMessage().contains("unexpected tensor transformer.h.9.attn.c_q.weight"), e.getMessage());

        t = tensors(c, p);
        t.put("smear_gate.weight", TorchZip.OutTensor.ofFloats(new float[24], TorchZip.DType.F32, 24, 1));
        TorchZip.writeStateDict(pt, t);
        e = assertThrows(IOException.class, () -> NanochatCheckpoint.read(ck, 7));
        assertTrue(e.getMessage().contains("tensor smear_gate.weight has shape [24, 1]") && e.getMessage().contains("[1, 24]"), e.getMessage());

        // nanochat's own patch for checkpoints from before the lambdas: resid 1, x0 0; and torch.compile's prefix
        t = tensors(c, p);
        t.remove("resid_lambdas");
        t.remove("x0_lambdas");
        Map<String, TorchZip.OutTensor> compiled = new LinkedHashMap<>();
        t.forEach((k, v) -> compiled.put("_orig_mod." + k, v));
        TorchZip.writeStateDict(pt, compiled);
        NanochatCheckpoint.Loaded l = NanochatCheckpoint.read(ck, 7);
        assertArrayEquals(new float[] {1, 1}, l.params().get("resid_lambdas"));
        assertArrayEquals(new float[] {0, 0}, l.params().get("x0_lambdas"));
        assertArrayEquals(p.get("lm_head.weight"), l.params().get("lm_head.weight"));
        assertEquals(Safetensors.DType.F32, l.dtype());
    }

    static Map<String, TorchZip.OutTensor> tensors(GPTConfig c, Map<String, float[]> p) {
        Map<String, TorchZip.OutTensor> t = new LinkedHashMap<>();
        c.parameterShapes().forEach((k, s) -> t.put(k, TorchZip.OutTensor.ofFloats(p.get(k), TorchZip.DType.F32, s)));
        return t;
    }

    @Test
    void unsupportedConfigAndVocabularyMismatchAreRefusedNamingTheCause(@TempDir Path tmp) throws IOException {
        Tokenizer tok = tokenizer();
        Path dir = tmp.resolve("nano");
        nanochatDir(dir, config(tok.vocabSize()), tok);
        Path meta = Checkpoint.metaFile(dir.resolve("base_checkpoints/d2"), 7);
        String original = Files.readString(meta);
        Files.writeString(meta, original.replace("\"n_embd\"", "\"n_experts\" : 8, \"n_embd\""));
        IOException e = assertThrows(IOException.class, () -> NanochatImport.run(dir, tmp.resolve("ours"), new NanochatImport.Options(null, null, null, null, false)));
        assertTrue(e.getMessage().startsWith(meta.toString()) && e.getMessage().contains("model_config field 'n_experts'"), e.getMessage());
        Files.writeString(meta, original.replace("\"n_head\" : 2", "\"n_head\" : 3"));
        e = assertThrows(IOException.class, () -> NanochatCheckpoint.read(dir.resolve("base_checkpoints/d2"), 7));
        assertTrue(e.getMessage().startsWith(meta.toString()) && e.getMessage().contains("n_embd 32 is not a multiple of n_head 3"), e.getMessage());

        Path other = tmp.resolve("other");
        nanochatDir(other, config(tok.vocabSize() + 1), tok);
        e = assertThrows(IOException.class, () -> NanochatImport.run(other, tmp.resolve("ours"), new NanochatImport.Options(null, null, null, null, false)));
        assertTrue(e.getMessage().contains("model_000007.pt was trained with vocab_size " + (tok.vocabSize() + 1))
                && e.getMessage().contains("tokenizer.pkl has " + tok.vocabSize()), e.getMessage());
        assertTrue(!Files.exists(tmp.resolve("ours/tokenizer")), "nothing is written when a check fails");

        IOException notBase = assertThrows(IOException.class, () -> NanochatImport.run(tmp, tmp.resolve("ours"), new NanochatImport.Options(null, null, null, null, false)));
        assertTrue(notBase.getMessage().contains("not a nanochat base dir"), notBase.getMessage());
    }

    @Test
    void aTokenBytesFileThatDisagreesWithTheVocabularyIsRefused(@TempDir Path tmp) throws IOException {
        Tokenizer tok = tokenizer();
        Path d = tmp.resolve("tokenizer");
        NanochatTokenizer.write(tok, d);
        int[] wrong = tok.tokenByteLengths();
        wrong[257] = 9;
        TorchZip.writeTensor(d.resolve(NanochatTokenizer.TOKEN_BYTES), TorchZip.OutTensor.ofInts(wrong, wrong.length));
        IOException e = assertThrows(IOException.class, () -> NanochatTokenizer.read(d));
        assertTrue(e.getMessage().contains("token_bytes.pt: token 257 has 9 bytes"), e.getMessage());
    }
}
