package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import nanochat4j.tensor.StandInCuda;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** The targets summary at the end of gpu-check: each issue figure read from the stages' JSON lines and judged. */
class GpuTargetsTest {
    private static final ObjectMapper M = new ObjectMapper();

    /** A bench kernels --device cuda row as CudaKernels prints it. */
    private static String row(String op, String shape, double ms, double tflops) {
        return String.format(java.util.Locale.ROOT, "{\"device\":\"cuda\",\"op\":\"%s\",\"shape\":\"%s\",\"ms\":%s,\"tflops\":%s,\"peak_tflops\":989.0,\"note\":null}",
                op, shape, ms, tflops);
    }

    /** Our decode line: bench infer's real CUDA-path JSON (on StandInCuda here), moved to depth 20 and given figures. */
    private static String decodeLine(double tokPerS) throws Exception {
        ObjectNode j;
        try (var device = StandInCuda.unlessGpu()) {
            j = (ObjectNode) InferBenchTest.tinyRun("--device", "cuda");
        }
        j.put("depth", 20).put("decode_tok_per_sec", tokPerS).put("ms_per_step", 1e3 / tokPerS).put("issued_ms_per_step", 1e3 / tokPerS + 2.5)
                .put("launch_ms_per_step", 2.5).put("device_busy_ms_per_step", 1.5);
        return j.toString();
    }

    /** A whole run's lines: gpu-check's own (probe, stages, base-train), the benches', nanochat's, and a line cut short. */
    private static List<String> run(double oursDecode, double oursTrainTok, double oursMfu, double oursPeak, double wgmmaTflops) throws Exception {
        List<String> l = new ArrayList<>();
        l.add("{\"kind\":\"probe\",\"ok\":true,\"device\":\"NVIDIA H200, sm_90, 132 SMs, driver 13.0\",\"free_bytes\":1,\"total_bytes\":2}");
        l.add("{\"kind\":\"conformance\",\"exit\":0,\"summary\":\"101 tests successful;0 tests failed;\"}");
        l.add("{\"kind\":\"train-tests\",\"exit\":0,\"summary\":\"5 tests successful;0 tests failed;\"}");
        String d12 = "d12 attn CxC 65536x768x768", fc = "d12 mlp c_fc 65536x3072x768", odd = "d24 lm_head 16384x32768x1536";
        l.add(row(CudaKernels.GEMM_CUBLAS, d12, 0.100, 772));
        l.add(row(CudaKernels.GEMM_OURS, d12, 0.105, 735));   // 95%
        l.add(row(CudaKernels.GEMM_OURS, d12, 0.200, 386));   // the other tile: the best one counts
        l.add(row(CudaKernels.GEMM_CUBLAS, fc, 0.400, 772));
        l.add(row(CudaKernels.GEMM_OURS, fc, 0.500, 618));    // 80%
        l.add(row(CudaKernels.GEMM_CUBLAS, odd, 2.0, 800));    // no tile of ours
        l.add(row("gemm pick", d12, 0.1, 772));
        // the training step's GEMM choices, as gpu-check writes them from the chooser's log: a split-K dW faster, a dx slower
        l.add("{\"kind\":\"gemm-choice\",\"depth\":12,\"shape\":\"768x768x65536 TN\",\"ours_ms\":0.0900,\"tile\":\"wgmma 128x128x64/6 stages, split-K 4\",\"cublas_ms\":0.1050}");
        l.add("{\"kind\":\"gemm-choice\",\"depth\":12,\"shape\":\"65536x768x768 NN\",\"ours_ms\":0.2,\"tile\":\"wgmma 128x256x64/4 stages\",\"cublas_ms\":0.1}");
        String att = "B=4 T=2048 H=10 D=128 causal";
        l.add(row(CudaKernels.ATTENTION_FWD_BWD_TC + " (wgmma)", att, 1.0, wgmmaTflops));
        l.add(row(CudaKernels.ATTENTION_FWD_BWD_TC + " (mma.sync)", att, 2.0, 250));
        l.add(row(CudaKernels.ATTENTION_FWD_BWD_TC + " (wgmma)", "B=8 T=512 H=6 D=64 causal", 1.0, 900)); // another shape: not the target's
        l.add(decodeLine(oursDecode));
        l.add(String.format(java.util.Locale.ROOT, "{\"kind\":\"base-train\",\"depth\":12,\"batch\":32,\"seq\":2048,\"precision\":\"bf16\",\"activations\":\"bf16\",\"exit\":0,"
                + "\"steps\":30,\"dt_ms\":120.5,\"tok_per_s\":%s,\"mfu_pct\":%s,\"peak_gpu_mem_gib\":40.10,\"peak_tensors_gib\":%s,\"pool_flushes\":0}",
                oursTrainTok, oursMfu, oursPeak));
        l.add("{\"kind\": \"nanochat-decode\", \"attention\": \"sdpa\", \"depth\": 20, \"batch\": 1, \"tok_per_s\": 200.0, \"ms_per_token\": 5.0}");
        l.add("{\"kind\": \"nanochat-train\", \"attention\": \"sdpa\", \"depth\": 12, \"batch\": 32, \"seq\": 2048, \"tok_per_s\": 437712, "
                + "\"mfu_pct\": 33.6, \"peak_mem_gib\": 27.4}");
        l.add("{\"kind\":\"nanochat-run\",\"exit\":0,\"peak_gpu_mem_gib\":30.50}");
        l.add("{\"kind\":\"nanochat\",\"skipped\":\"bu"); // a stage killed while writing
        l.add("gpu-check: not a JSON line");
        return l;
    }

    private static Map<String, GpuTargets.Target> byName(List<GpuTargets.Target> t) {
        return t.stream().collect(Collectors.toMap(GpuTargets.Target::name, x -> x));
    }

    private static List<GpuTargets.Target> evaluate(Path dir, List<String> lines) throws Exception {
        Path f = dir.resolve("gpu-check.jsonl");
        Files.write(f, lines);
        return GpuTargets.evaluate(GpuTargets.read(f));
    }

    @Test
    void eachTargetIsJudgedFromTheRunsFiguresAgainstNanochatsOnTheSameGpu(@TempDir Path dir) throws Exception {
        // decode 2.5x, attention 45% (wgmma), train 1.3x at 42% MFU, 25 GiB in tensors: met; our GEMM 95% and 80%: missed
        Map<String, GpuTargets.Target> t = byName(evaluate(dir, run(500, 569_000, 42, 25.0, 445)));
        assertEquals(GpuTargets.Verdict.MET, t.get("conformance and GPU training tests").verdict());
        assertEquals("conformance exit 0 (101 tests successful; 0 tests failed), train-extras exit 0 (5 tests successful; 0 tests failed)",
                t.get("conformance and GPU training tests").measured());
        GpuTargets.Target decode = t.get("decode d20 batch 1, bf16");
        assertEquals(GpuTargets.Verdict.MET, decode.verdict(), decode.toString());
        assertTrue(decode.measured().contains("2.50x nanochat's 200.0"), decode.measured());
        assertEquals("launching kernel by kernel costs 2.500 ms a step (4.500 ms a step issued so, 2.000 replayed as a CUDA graph; its kernels keep the "
                + "device busy 1.500 ms of it)", t.get("launch overhead per decode step, d20").measured());
        GpuTargets.Target att = t.get("attention fwd+bwd T=2048 D=128");
        assertEquals(GpuTargets.Verdict.MET, att.verdict(), att.toString());
        assertEquals("(wgmma) 445.0 TFLOP/s = 45.0%, (mma.sync) 250.0 TFLOP/s = 25.3%", att.measured());
        GpuTargets.Target train = t.get("d12 batch 32 x 2048 training step, bf16");
        assertEquals(GpuTargets.Verdict.MET, train.verdict(), train.toString());
        assertTrue(train.measured().contains("1.30x nanochat's 437,712"), train.measured());
        GpuTargets.Target mem = t.get("d12 training step peak device memory");
        assertEquals(GpuTargets.Verdict.MET, mem.verdict(), mem.toString());
        assertTrue(mem.measured().contains("25.00 GiB in tensors against 27.40 GiB") && mem.measured().contains("nanochat's 30.50 GiB"), mem.measured());
        GpuTargets.Target gemm = t.get("our GEMM on the d12/d20/d24 layer shapes");
        assertEquals(GpuTargets.Verdict.MISSED, gemm.verdict());
        assertEquals("2 of 5 shapes, ours 50-117% of cuBLAS; below: d12 mlp c_fc 65536x3072x768 80%, d24 lm_head 16384x32768x1536 (no tile of ours fits), "
                + "d12 train step 65536x768x768 NN 50%", gemm.measured());
        for (String name : List.of("d24 batch 16 x 2048 training step, bf16", "d24 training step peak device memory",
                "the gradient all-reduce's share of a step, one process a GPU")) {
            assertEquals(GpuTargets.Verdict.NOT_MEASURED, t.get(name).verdict(), t.get(name).toString());
            assertTrue(t.get(name).measured().contains("GPU_CHECK_STAGES="), t.get(name).measured());
        }
    }

    /** gpu-check's lines of a second call, GPU_CHECK_STAGES=d24,allreduce: its train() and nanochat() JSON, as the script writes them. */
    private static List<String> secondCall(double oursTok, double oursMfu, double oursPeak, int gpus) {
        List<String> l = new ArrayList<>();
        l.add("{\"kind\":\"probe\",\"ok\":true,\"device\":\"NVIDIA H200, sm_90, 132 SMs, driver 13.0\",\"free_bytes\":1,\"total_bytes\":2}");
        l.add(String.format(java.util.Locale.ROOT, "{\"kind\":\"base-train\",\"depth\":24,\"batch\":16,\"seq\":2048,\"precision\":\"bf16\",\"activations\":\"bf16\","
                + "\"ranks\":1,\"gpus\":%d,\"exit\":0,\"steps\":12,\"dt_ms\":350.0,\"tok_per_s\":%s,\"mfu_pct\":%s,\"peak_gpu_mem_gib\":60.00,"
                + "\"peak_tensors_gib\":%s,\"pool_flushes\":0,\"reduce_wait_pct\":null}", gpus, oursTok, oursMfu, oursPeak));
        l.add("{\"kind\": \"nanochat-train\", \"attention\": \"sdpa\", \"depth\": 24, \"batch\": 16, \"seq\": 2048, \"tok_per_s\": 77968, "
                + "\"mfu_pct\": 37.7, \"peak_mem_gib\": 54.9}");
        l.add("{\"kind\":\"nanochat-d24-run\",\"exit\":0,\"peak_gpu_mem_gib\":58.25}");
        l.add(String.format(java.util.Locale.ROOT, "{\"kind\":\"allreduce\",\"depth\":12,\"batch\":16,\"seq\":2048,\"precision\":\"bf16\",\"activations\":\"bf16\","
                + "\"ranks\":2,\"gpus\":%d,\"exit\":0,\"steps\":10,\"dt_ms\":200.0,\"tok_per_s\":327680,\"mfu_pct\":30.0,\"peak_gpu_mem_gib\":30.00,"
                + "\"peak_tensors_gib\":12.5,\"pool_flushes\":0,\"reduce_wait_pct\":7.5}", gpus));
        return l;
    }

    @Test
    void aSecondCallsD24AndAllReduceFiguresAreJudgedWithTheFirstCalls(@TempDir Path dir) throws Exception {
        Path first = dir.resolve("first.jsonl"), second = dir.resolve("second.jsonl");
        Files.write(first, run(500, 569_000, 42, 25.0, 445));
        // d24: 1.25x nanochat's tok/s at 47% MFU, 50 GiB against 54.9: met; the all-reduce on two GPUs: measured
        Files.write(second, secondCall(97_460, 47, 50.0, 2));
        Map<String, GpuTargets.Target> t = byName(GpuTargets.evaluate(both(first, second)));
        GpuTargets.Target d24 = t.get("d24 batch 16 x 2048 training step, bf16");
        assertEquals(GpuTargets.Verdict.MET, d24.verdict(), d24.toString());
        assertEquals("97,460 tok/s (MFU 47.0%) = 1.25x nanochat's 77,968 (MFU 37.7%)", d24.measured());
        GpuTargets.Target mem = t.get("d24 training step peak device memory");
        assertEquals(GpuTargets.Verdict.MET, mem.verdict(), mem.toString());
        assertEquals("50.00 GiB in tensors against 54.90 GiB (nvidia-smi, whole device: ours 60.00 GiB, nanochat's 58.25 GiB)", mem.measured());
        GpuTargets.Target ar = t.get("the gradient all-reduce's share of a step, one process a GPU");
        assertEquals(GpuTargets.Verdict.MET, ar.verdict(), ar.toString());
        assertEquals("2 ranks on 2 GPUs (d12, 16 x 2048 a rank): waited 7.5% of the step, 327,680 tok/s", ar.measured());
        // the d24 line (the last base-train line) leaves the d12 targets on the d12 line and nanochat's d12 step
        assertTrue(t.get("d12 batch 32 x 2048 training step, bf16").measured().startsWith("569,000 tok/s (MFU 42.0%) = 1.30x nanochat's 437,712"),
                t.get("d12 batch 32 x 2048 training step, bf16").measured());
        assertTrue(t.get("d12 training step peak device memory").measured().startsWith("25.00 GiB in tensors against 27.40 GiB"));

        // d24 at 1.25x but 44% MFU, and over nanochat's memory; both ranks on one GPU: a figure, not the issue's
        Files.write(second, secondCall(97_460, 44, 55.0, 1));
        t = byName(GpuTargets.evaluate(both(first, second)));
        assertEquals(GpuTargets.Verdict.MISSED, t.get("d24 batch 16 x 2048 training step, bf16").verdict());
        assertEquals(GpuTargets.Verdict.MISSED, t.get("d24 training step peak device memory").verdict());
        ar = t.get("the gradient all-reduce's share of a step, one process a GPU");
        assertEquals(GpuTargets.Verdict.NOT_MEASURED, ar.verdict(), ar.toString());
        assertTrue(ar.measured().startsWith("2 ranks on 1 GPU (d12, 16 x 2048 a rank): waited 7.5% of the step") && ar.measured().contains("a proxy"),
                ar.measured());
        // ours at d24 without nanochat's d24 step (its stage timed out): not measured, and the first call alone knows no d24
        List<String> noTheirs = secondCall(97_460, 47, 50.0, 2);
        noTheirs.removeIf(l -> l.contains("nanochat-train"));
        Files.write(second, noTheirs);
        assertEquals(GpuTargets.Verdict.NOT_MEASURED, byName(GpuTargets.evaluate(both(first, second))).get("d24 batch 16 x 2048 training step, bf16").verdict());
    }

    private static List<JsonNode> both(Path first, Path second) throws Exception {
        List<JsonNode> rows = new ArrayList<>(GpuTargets.read(first));
        rows.addAll(GpuTargets.read(second));
        return rows;
    }

    @Test
    void aFigureShortOfItsTargetIsMissed(@TempDir Path dir) throws Exception {
        // decode 1.9x, attention 39%, MFU 39% (tok/s 1.3x), 28 GiB: each just short
        Map<String, GpuTargets.Target> t = byName(evaluate(dir, run(380, 569_000, 39, 28.0, 385)));
        for (String name : List.of("decode d20 batch 1, bf16", "attention fwd+bwd T=2048 D=128", "d12 batch 32 x 2048 training step, bf16",
                "d12 training step peak device memory")) {
            assertEquals(GpuTargets.Verdict.MISSED, t.get(name).verdict(), t.get(name).toString());
        }
        // and tok/s short with the MFU met
        assertEquals(GpuTargets.Verdict.MISSED, byName(evaluate(dir, run(500, 520_000, 45, 25, 445))).get("d12 batch 32 x 2048 training step, bf16").verdict());
    }

    @Test
    void aStageThatFailedOrNeverRanLeavesItsTargetsNotMeasuredAndATestFailureIsMissed(@TempDir Path dir) throws Exception {
        List<String> lines = run(500, 569_000, 42, 25, 445);
        lines.removeIf(l -> l.contains("nanochat-") || l.contains("\"op\":\"attention"));
        lines.replaceAll(l -> l.startsWith("{\"kind\":\"train-tests\"") ? "{\"kind\":\"train-tests\",\"exit\":124,\"summary\":\"\"}" : l);
        Map<String, GpuTargets.Target> t = byName(evaluate(dir, lines));
        assertEquals(GpuTargets.Verdict.MISSED, t.get("conformance and GPU training tests").verdict());
        for (String name : List.of("decode d20 batch 1, bf16", "attention fwd+bwd T=2048 D=128", "d12 batch 32 x 2048 training step, bf16",
                "d12 training step peak device memory")) {
            assertEquals(GpuTargets.Verdict.NOT_MEASURED, t.get(name).verdict(), t.get(name).toString());
            assertTrue(t.get(name).measured().startsWith("no figure from "), t.get(name).measured());
        }
        assertEquals("conformance exit 0 (101 tests successful; 0 tests failed), train-extras exit 124", t.get("conformance and GPU training tests").measured());
        // a figure that is there but zero or null (a side that failed mid-run) is no figure: never "infinitely faster"
        List<String> zero = run(500, 569_000, 42, 25, 445);
        zero.replaceAll(l -> l.replace("\"tok_per_s\": 200.0", "\"tok_per_s\": 0.0").replace("\"tok_per_s\": 437712", "\"tok_per_s\": null")
                .replace("\"peak_tflops\":989.0", "\"peak_tflops\":0"));
        Map<String, GpuTargets.Target> z = byName(evaluate(dir, zero));
        for (String name : List.of("decode d20 batch 1, bf16", "d12 batch 32 x 2048 training step, bf16", "attention fwd+bwd T=2048 D=128")) {
            assertEquals(GpuTargets.Verdict.NOT_MEASURED, z.get(name).verdict(), z.get(name).toString());
        }
        // conformance timed out and the next test stage was skipped for the budget (gpu-check's skip line): missed
        GpuTargets.Target timedOut = byName(evaluate(dir, List.of("{\"kind\":\"conformance\",\"exit\":124,\"summary\":\"\"}",
                "{\"kind\":\"train-extras\",\"skipped\":\"budget\"}"))).get("conformance and GPU training tests");
        assertEquals(GpuTargets.Verdict.MISSED, timedOut.verdict());
        assertEquals("conformance exit 124, train-extras skipped (budget)", timedOut.measured());
        // passed, then skipped: not measured (nothing failed, but the second stage never ran)
        assertEquals(GpuTargets.Verdict.NOT_MEASURED, byName(evaluate(dir, List.of("{\"kind\":\"conformance\",\"exit\":0,\"summary\":\"\"}",
                "{\"kind\":\"train-extras\",\"skipped\":\"budget\"}"))).get("conformance and GPU training tests").verdict());
        // an empty file (the probe found no GPU): nothing measured, nothing met
        assertTrue(evaluate(dir, List.of()).stream().allMatch(x -> x.verdict() == GpuTargets.Verdict.NOT_MEASURED));
    }

    @Test
    void theCommandPrintsTextOrOneJsonObjectAndNamesAMissingFile(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("gpu-check.jsonl");
        Files.write(f, run(500, 569_000, 42, 25, 445));
        String text = runCommand(f.toString());
        assertTrue(text.startsWith("targets of issues 20-21 on NVIDIA H200, sm_90"), text);
        assertTrue(text.contains("MET          [20] decode d20 batch 1, bf16: ") && text.contains("MISSED       [21] our GEMM")
                && text.contains("NOT MEASURED [21] d24"), text);
        assertTrue(text.strip().endsWith("6 met, 1 missed, 3 not measured"), text);

        JsonNode j = M.readTree(runCommand(f.toString(), "--json"));
        assertEquals("targets", j.get("kind").asText());
        assertEquals(6, j.get("met").asInt());
        assertEquals(1, j.get("missed").asInt());
        assertEquals(3, j.get("not_measured").asInt());
        assertEquals(10, j.get("targets").size());
        assertEquals("missed", j.get("targets").get(6).get("verdict").asText());

        // two calls' files: the second's d24 and all-reduce lines join the first's
        Path second = dir.resolve("second.jsonl");
        Files.write(second, secondCall(97_460, 47, 50.0, 2));
        String both = runCommand(f.toString(), second.toString());
        assertTrue(both.startsWith("targets of issues 20-21 on NVIDIA H200, sm_90, 132 SMs, driver 13.0 (ours beside nanochat, same GPU, 2 gpu-check calls):")
                && both.strip().endsWith("9 met, 1 missed, 0 not measured"), both);

        // through the jar's own entry point: one line naming the file, exit 1
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        assertEquals(1, cl.execute("bench", "gpu-targets", dir.resolve("absent.jsonl").toString()));
        assertTrue(err.toString().contains("absent.jsonl: no such file") && !err.toString().contains("\tat "), err.toString());
    }

    private static String runCommand(String... args) {
        GpuTargets g = new GpuTargets();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        g.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        assertEquals(0, new CommandLine(g).execute(args));
        return buf.toString(StandardCharsets.UTF_8);
    }
}
