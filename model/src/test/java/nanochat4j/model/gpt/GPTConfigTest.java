package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class GPTConfigTest {

    /** nanochat-reference.md §4 table (aspect 64, head dim 128, seq 2048, SSSL, vocab 32768). */
    @ParameterizedTest
    @CsvSource({
        "12, 768, 6, 25165824, 150994944, 84935088, 286261730, 110100912, 7.597e8",
        "20, 1280, 10, 41943040, 419430400, 393217200, 896533746, 435160240, 2.886e9",
        "24, 1536, 12, 50331648, 603979776, 679478976, 1384122122, 729810624, 4.775e9",
        "26, 1664, 13, 54525952, 708837376, 863897580, 1681786938, 918423532, 5.991e9",
    })
    void fromDepthMatchesTheReferenceTable(int depth, int c, int h, long wte, long ve, long tm, long total, long scaling,
                                           double flops) {
        GPTConfig cfg = GPTConfig.fromDepth(depth, 64, 128, 2048, "SSSL", 32768);
        assertEquals(c, cfg.nEmbd());
        assertEquals(h, cfg.nHead());
        assertEquals(h, cfg.nKvHead());
        assertEquals(depth, cfg.nLayer());
        GPTConfig.ParamCounts p = cfg.numScalingParams();
        assertEquals(wte, p.wte());
        assertEquals(wte, p.lmHead());
        assertEquals(ve, p.valueEmbeds());
        assertEquals(tm, p.transformerMatrices());
        assertEquals(2L * depth + 26, p.scalars());
        assertEquals(total, p.total());
        assertEquals(scaling, p.scaling());
        assertEquals(flops, cfg.estimateFlops(), flops * 1e-4);
    }

    @Test
    void windowsFollowPatternWithShortQuarterRoundedTo128AndLastLayerLong() {
        GPTConfig d12 = GPTConfig.defaults();
        assertArrayEquals(new int[] {512, 512, 512, 2048, 512, 512, 512, 2048, 512, 512, 512, 2048}, d12.windowSizes());
        GPTConfig s512 = new GPTConfig(512, 100, 3, 2, 2, 64, "sl");
        assertEquals("SL", s512.windowPattern());
        assertArrayEquals(new int[] {128, 512, 512}, s512.windowSizes());
        GPTConfig odd = new GPTConfig(600, 100, 4, 2, 2, 64, "S");
        assertArrayEquals(new int[] {256, 256, 256, 600}, odd.windowSizes()); // ceil(150/128)*128
    }

    @Test
    void valueEmbedLayersAlternateAndIncludeTheLast() {
        GPTConfig even = new GPTConfig(64, 100, 4, 2, 2, 64, "L");
        assertEquals(List.of(1, 3), veLayers(even));
        GPTConfig odd = new GPTConfig(64, 100, 5, 2, 2, 64, "L");
        assertEquals(List.of(0, 2, 4), veLayers(odd));
        assertEquals(2, odd.backoutLayer());
    }

    @Test
    void vocabIsPaddedTo64AndAllLinearShapesFollow() {
        GPTConfig cfg = new GPTConfig(32, 65, 2, 4, 2, 64, "SL");
        assertEquals(128, cfg.paddedVocab());
        Map<String, int[]> s = cfg.parameterShapes();
        assertArrayEquals(new int[] {128, 64}, s.get("transformer.wte.weight"));
        assertArrayEquals(new int[] {128, 32}, s.get("value_embeds.1.weight"));
        assertArrayEquals(new int[] {32, 64}, s.get("transformer.h.0.attn.c_k.weight"));
        assertArrayEquals(new int[] {2, 12}, s.get("transformer.h.1.attn.ve_gate.weight"));
        assertTrue(!s.containsKey("transformer.h.0.attn.ve_gate.weight"));
    }

    @Test
    void kvBytesReadPerDecodeStepCountsEachLayersWindow() {
        GPTConfig cfg = new GPTConfig(2048, 32768, 4, 4, 2, 256, "SL"); // windows 512, 2048, 512, 2048
        assertEquals(2L * 128 * 4 * (100 * 4), cfg.kvBytesReadPerDecodeStep(100, 4));
        assertEquals(2L * 128 * 4 * (512 + 1000 + 512 + 1000), cfg.kvBytesReadPerDecodeStep(1000, 4));
    }

    /**
     * Inference cost accounting against nanochat's own gpt.py (estimate_decode_flops, estimate_prefill_flops,
     * kv_bytes_per_token, kv_read_bytes), which printed these for the same config (a meta-device GPT, fp32 on CPU).
     */
    @Test
    void inferenceCostsAreNanochats() {
        GPTConfig cfg = new GPTConfig(2048, 32768, 4, 4, 2, 256, "SL");
        assertEquals(11_272_264L, cfg.numMatmulParams());
        assertEquals(22_954_128L, cfg.decodeFlops(100));
        assertEquals(25_641_104L, cfg.decodeFlops(1000));
        assertEquals(2_275_137_600L, cfg.prefillFlops(100));
        assertEquals(24_350_216_832L, cfg.prefillFlops(1000));
        assertEquals(4096L, cfg.kvBytesPerToken(4));
        assertEquals(3_096_576L, cfg.kvBytesReadPerDecodeStep(1000, 4));
    }

    /**
     * What a decode step streams, counted by hand: the block matrices and the lm_head's vocabulary rows at the decode
     * weights' width, the rest in fp32; the model reports it at its current decode weights.
     */
    @Test
    void decodeWeightBytesAreWhatTheDecoderReads() {
        GPTConfig cfg = new GPTConfig(64, 300, 3, 4, 2, 64, "SL");   // vocab 300 pads to 320: the padding is not read
        long matrices = 3L * (64 * 64 * 2 + 2 * 32 * 64 + 2 * 4 * 64 * 64) + 300L * 64;
        long fp32 = 64 + GPTConfig.SMEAR_CHANNELS + 2 * (2 * 12 + 32);   // 2 value-embedding layers: gate + row
        assertEquals(matrices * 4 + fp32 * 4, cfg.decodeWeightBytes(4));
        assertEquals(matrices * 2 + fp32 * 4, cfg.decodeWeightBytes(2));
        GPT model = GPT.create(cfg, 1);
        assertEquals(cfg.decodeWeightBytes(4), model.decodeWeightBytes());
        model.decodeWeights(DecodeWeights.BF16);
        assertEquals(cfg.decodeWeightBytes(2), model.decodeWeightBytes());
    }

    @Test
    void invalidConfigsAreRejectedWithTheReason() {
        var e = assertThrows(IllegalArgumentException.class, () -> new GPTConfig(16, 100, 2, 3, 3, 64, "L"));
        assertTrue(e.getMessage().contains("n_head 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new GPTConfig(16, 100, 2, 4, 3, 64, "L"));
        assertTrue(e.getMessage().contains("n_kv_head 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new GPTConfig(16, 100, 2, 2, 2, 64, "SXL"));
        assertTrue(e.getMessage().contains("SXL"), e.getMessage());
    }

    /** Everything the fixture's {@code derived} block states must follow from its {@code config}. */
    @Test
    void derivedValuesMatchTheFixture() throws Exception {
        Path dir = SharedDir.locate(Path.of(System.getProperty("fixtures.dir", "../shared/fixtures/nanochat-tiny")));
        assumeTrue(dir != null, SharedDir.skipMessage("fixtures"));
        JsonNode root = new ObjectMapper().readTree(dir.resolve("model.json").toFile());
        GPTConfig cfg = GPTConfig.fromJson(root.get("config"));
        JsonNode d = root.get("derived");
        assertEquals(d.get("padded_vocab_size").asInt(), cfg.paddedVocab());
        assertEquals(d.get("head_dim").asInt(), cfg.headDim());
        for (int i = 0; i < cfg.nLayer(); i++) {
            assertEquals(d.get("window_sizes").get(i).get(0).asInt(), cfg.windowSize(i), "window of layer " + i);
        }
        List<Integer> ve = new ArrayList<>();
        d.get("value_embed_layers").forEach(n -> ve.add(n.asInt()));
        assertEquals(ve, veLayers(cfg));
        assertEquals(d.get("backout_layer").asInt(), cfg.backoutLayer());
        assertEquals(d.get("estimate_flops_per_token").asLong(), cfg.estimateFlops());
        assertEquals(d.get("num_matmul_params").asLong(), cfg.numMatmulParams());
        List<String> order = new ArrayList<>();
        d.get("param_order").forEach(n -> order.add(n.asText()));
        assertEquals(order, new ArrayList<>(cfg.parameterShapes().keySet()));
        assertEquals(root.get("config").get("window_pattern").asText(), cfg.toJsonMap().get("window_pattern"));
    }

    private static List<Integer> veLayers(GPTConfig cfg) {
        List<Integer> out = new ArrayList<>();
        for (int i = 0; i < cfg.nLayer(); i++) if (cfg.hasValueEmbed(i)) out.add(i);
        return out;
    }
}
