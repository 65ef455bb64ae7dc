package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.StandInCuda;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code infer-bench} (nanochat's infer_bench) on a tiny base checkpoint: the card, the sweep and the JSON line. */
class InferSweepTest {
    @TempDir
    static Path base;
    static Tokenizer tok;
    static GPTConfig cfg;

    @BeforeAll
    static void tinyBaseCheckpoint() throws Exception {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 8; i++) docs.add("The history of science is the study of the development of science " + i);
        tok = Tokenizer.train(docs, 300);
        tok.save(base.resolve("tokenizer"));
        cfg = new GPTConfig(64, tok.vocabSize(), 2, 2, 2, 32, "SL");
        GPT model = GPT.create(cfg, 1);
        Checkpoint.save(base.resolve("base_checkpoints/d2"), model, new Checkpoint.Meta(cfg, 5, "test", null, null), Safetensors.DType.F32);
    }

    /** exit code, stdout, stderr of {@code nanochat4j infer-bench --base-dir B args…}. */
    private static String[] run(String... args) {
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));   // before the command is made: it keeps System.out
        StringWriter err = new StringWriter();
        int code;
        try {
            CommandLine cl = Main.commandLine();
            cl.setErr(new PrintWriter(err));
            code = cl.execute(Stream.concat(Stream.of("infer-bench", "--base-dir", base.toString(), "--bandwidth-mb", "32",
                    "--warmup-seconds", "0"), Stream.of(args))
                    .toArray(String[]::new));
        } finally {
            System.setOut(old);
        }
        return new String[] {Integer.toString(code), out.toString(StandardCharsets.UTF_8), err.toString()};
    }

    private static JsonNode lastLine(String stdout) throws Exception {
        String[] lines = stdout.strip().split("\n");
        return new ObjectMapper().readTree(lines[lines.length - 1]);
    }

    @Test
    void cpuSweepPrintsTheCardTheTableAndAConsistentJsonLine() throws Exception {
        String[] r = run("--device", "cpu", "--prompt-tokens", "40", "--decode-tokens", "16", "--batch-sizes", "1,3");
        assertEquals("0", r[0], r[2]);
        String text = r[1];
        assertTrue(text.contains("Model: base d2 (step 5) | depth 2, dim 32, heads 2, kv heads 2 (GQA)"), text);
        assertTrue(text.contains("Theoretical decode ceiling at batch 1: ") && text.contains("Prefill (batch 1, 40 tokens): "), text);
        assertTrue(!text.contains("clamping"), text);

        JsonNode j = lastLine(text);
        assertEquals("base", j.get("source").asText());
        assertEquals("d2", j.get("model_tag").asText());
        assertEquals(5, j.get("step").asInt());
        assertEquals(64, j.get("model_config").get("sequence_len").asInt());
        assertEquals("cpu", j.get("device").asText());
        assertTrue(j.get("gpu").isNull() && j.get("total_vram_bytes").isNull(), j.toString());
        assertEquals("measured", j.get("peak_bandwidth_source").asText());
        long params = cfg.numScalingParams().total();
        assertEquals(params, j.get("num_params").asLong());
        assertEquals(params, j.get("param_dtypes").get("f32").asLong());
        assertEquals(4 * params, j.get("weight_bytes").asLong());
        assertEquals(cfg.decodeWeightBytes(4), j.get("weight_bytes_read_per_step").asLong());
        assertEquals(cfg.kvBytesPerToken(4), j.get("kv_bytes_per_token").asLong());
        assertEquals(48, j.get("context_mid").asInt());   // 40 + 16/2
        assertEquals(cfg.kvBytesReadPerDecodeStep(48, 4), j.get("kv_read_bytes_per_step").asLong());
        assertEquals(cfg.decodeFlops(48), j.get("decode_flops_per_token").asLong());
        assertEquals(40, j.get("prompt_tokens").asInt());
        assertEquals(16, j.get("decode_tokens").asInt());
        double bw = j.get("peak_bandwidth_bytes_per_sec").asDouble(), flops = j.get("peak_flops_per_sec").asDouble();
        assertTrue(bw > 1e8 && flops > 1e8, j.toString());
        long stepBytes = j.get("weight_bytes_read_per_step").asLong(), kvRead = j.get("kv_read_bytes_per_step").asLong();
        assertEquals(bw / (stepBytes + kvRead), j.get("ceiling_bs1_tok_per_sec").asDouble(), 0.06);
        assertTrue(j.get("max_full_context_rows").asLong() > 0, j.toString());

        JsonNode p = j.get("prefill");
        assertTrue(p.get("time_sec").asDouble() > 0, p.toString());
        assertEquals(40 / p.get("time_sec").asDouble(), p.get("tok_per_sec").asDouble(), 40 / p.get("time_sec").asDouble() * 1e-3 + 0.06);

        JsonNode sweep = j.get("sweep");
        assertEquals(2, sweep.size(), j.toString());
        for (int i = 0; i < 2; i++) {
            JsonNode s = sweep.get(i);
            int b = new int[] {1, 3}[i];
            assertEquals(b, s.get("batch_size").asInt());
            double tpot = s.get("tpot_sec").asDouble();
            assertTrue(tpot > 0 && s.get("ttft_sec").asDouble() > 0 && s.get("tok_per_sec").asDouble() > 0, s.toString());
            // MBU and MFU from their definitions (to the rounding of tpot to the microsecond and of the percentages)
            double mbu = 100 * (stepBytes + (double) b * kvRead) / tpot / bw;
            assertEquals(mbu, s.get("mbu_percent").asDouble(), mbu * 0.02 + 0.01, s.toString());
            double mfu = 100.0 * b * cfg.decodeFlops(48) / tpot / flops;
            assertEquals(mfu, s.get("mfu_percent").asDouble(), mfu * 0.02 + 1e-4, s.toString());
            assertTrue(s.get("peak_heap_bytes").asLong() > 0, s.toString());
            // 15 decode steps after the first token, unless every row ended early (then the table says so)
            int steps = s.get("decode_steps").asInt();
            assertTrue(steps >= 1 && steps <= 15, s.toString());
            assertEquals(steps < 15, text.contains("(early stop @ " + steps + ")"), text);
        }
    }

    @Test
    void aPromptLongerThanTheContextLeavesIsClampedAsNanochatDoes() throws Exception {
        String[] r = run("--device", "cpu", "--prompt-tokens", "100", "--decode-tokens", "16", "--batch-sizes", "2");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].contains("note: clamping prompt to 48 tokens so prompt+decode fits sequence_len=64"), r[1]);
        assertEquals(48, lastLine(r[1]).get("prompt_tokens").asInt());
        assertEquals(2, lastLine(r[1]).get("sweep").get(0).get("batch_size").asInt());
    }

    @Test
    void thePromptIsNanochatsParagraphAfterBos() {
        int[] ids = InferSweep.prompt(tok, 200);
        assertEquals(200, ids.length);
        assertEquals(tok.bosId(), ids[0]);
        String text = tok.decode(java.util.Arrays.copyOfRange(ids, 1, ids.length));
        assertTrue(text.startsWith("The history of science is the study of the development of science, including both"), text);
        assertArrayEquals(java.util.Arrays.copyOf(ids, 10), InferSweep.prompt(tok, 10));
    }

    @Test
    void badArgumentsAreOneLineErrors() {
        String[] r = run("--device", "cpu", "--decode-tokens", "64");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("--decode-tokens 64 leaves no room for a prompt in the model's context of 64 tokens"), r[2]);
        r = run("--device", "cpu", "--batch-sizes", "1,0");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("--batch-sizes: 0 is not a batch size"), r[2]);
        r = run("--device", "cpu", "--decode-tokens", "1");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("must be >= 2"), r[2]);
        r = run("--device", "cpu", "-i", "sft");
        assertEquals("1", r[0]);
        assertTrue(r[2].startsWith("nanochat4j infer-bench: ") && r[2].contains("chatsft_checkpoints"), r[2]);
        r = run("--device", "cpu", "--batch-sizes", "1,x");
        assertEquals("2", r[0]);   // picocli: not an int
        assertTrue(r[2].contains("--batch-sizes"), r[2]);
    }

    /** On a GPU, and on the stand-in elsewhere: the device path, its bf16 bytes per step, and its peaks where known. */
    @Test
    void cudaRunsTheDevicePath() throws Exception {
        try (var device = StandInCuda.unlessGpu()) {
            String[] r = run("--device", "cuda", "--prompt-tokens", "20", "--decode-tokens", "8", "--batch-sizes", "1,2");
            assertEquals("0", r[0], r[2]);
            JsonNode j = lastLine(r[1]);
            assertEquals("cuda", j.get("device").asText());
            assertEquals("bf16", j.get("precision").asText());
            assertEquals(cfg.decodeWeightBytes(2), j.get("weight_bytes_read_per_step").asLong());
            assertEquals(2, j.get("sweep").size(), j.toString());
            // the stand-in is no GPU: no name in the table, no peaks, no device memory to read
            assertEquals(StandInCuda.gpu(), j.get("sweep").get(0).get("peak_vram_bytes").isNumber(), j.toString());
            assertEquals(StandInCuda.gpu(), j.get("total_vram_bytes").isNumber(), j.toString());
            // a device not in nanochat's peak table (the stand-in, cudasim): no ceiling, MBU or MFU, rather than 0
            if (j.get("peak_bandwidth_bytes_per_sec").isNull()) {
                assertTrue(j.get("ceiling_bs1_tok_per_sec").isNull() && j.get("sweep").get(0).get("mbu_percent").isNull(), j.toString());
            }
            if (j.get("peak_flops_per_sec").isNull()) {
                assertTrue(j.get("prefill").get("mfu_percent").isNull() && j.get("sweep").get(0).get("mfu_percent").isNull(), j.toString());
            }
            r = run("--device", "cuda", "--prompt-tokens", "20", "--decode-tokens", "8", "--batch-sizes", "1", "--weights", "bf16");
            assertEquals("1", r[0]);
            assertTrue(r[2].contains("--weights bf16 is a CPU decoder option"), r[2]);
        }
    }

    @Test
    void cudaWithoutAGpuSaysWhy() {
        Assumptions.assumeTrue(!StandInCuda.gpu(), "a GPU is usable here");
        String[] r = run("--device", "cuda");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("--device cuda: ") && r[2].contains("--device cpu always works"), r[2]);
    }
}
