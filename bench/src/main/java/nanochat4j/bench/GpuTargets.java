package nanochat4j.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code nanochat4j bench gpu-targets gpu-check.jsonl…}: the GPU issues' targets beside what runs of
 * {@code scripts/gpu-check.sh} measured — ours against real nanochat run on the same GPU in the same session — each
 * MET, MISSED or NOT MEASURED (with why). gpu-check ends with it; it reads only the JSON lines the stages wrote, so
 * it can be run again on a copied {@code $OUT}, and on the files of two calls together (the default stages, then
 * {@code GPU_CHECK_STAGES=d24,allreduce,gemm-bwd}). A report, not a check: it exits 0 whatever the verdicts.
 */
@Command(name = "gpu-targets", mixinStandardHelpOptions = true,
        description = "The GPU issues' speed and memory targets against a gpu-check.jsonl (ours beside nanochat on the same GPU).")
public final class GpuTargets implements Callable<Integer> {

    @Parameters(arity = "1..*", paramLabel = "JSONL", description = "gpu-check.jsonl (scripts/gpu-check.sh writes it under $OUT); several: "
            + "their lines together, a later file's figure replacing an earlier one's")
    List<Path> jsonl;

    @Option(names = "--json", description = "one JSON object (kind \"targets\") instead of text")
    boolean json;

    PrintStream out = System.out;

    enum Verdict { MET, MISSED, NOT_MEASURED }

    /** One target: its issue, what it asks, what the run measured (text), and the verdict. */
    record Target(int issue, String name, String goal, String measured, Verdict verdict) {}

    // The issues' figures (20: GPU offload part 1, 21: part 2).
    static final double DECODE_VS_NANOCHAT = 2.0, ATTENTION_PEAK_FRACTION = 0.40;
    static final double TRAIN_VS_NANOCHAT = 1.2, TRAIN_MFU_PCT = 40, TRAIN_D24_MFU_PCT = 45, GEMM_VS_CUBLAS = 0.90;

    @Override
    public Integer call() throws IOException {
        List<JsonNode> rows = new ArrayList<>();
        for (Path f : jsonl) {
            if (!Files.isRegularFile(f)) throw new IOException(f + ": no such file (gpu-check.sh writes gpu-check.jsonl under $OUT)");
            rows.addAll(read(f));
        }
        List<Target> targets = evaluate(rows);
        String device = rows.stream().filter(r -> "probe".equals(r.path("kind").asText())).map(r -> r.path("device").asText()).findFirst()
                .orElse("an unknown device (no probe line)");
        if (json) out.println(toJson(device, targets));
        else {
            out.println("targets of issues 20-21 on " + device + " (ours beside nanochat, same GPU, "
                    + (jsonl.size() == 1 ? "same run" : jsonl.size() + " gpu-check calls") + "):");
            for (Target t : targets) {
                out.printf(Locale.ROOT, "  %-12s [%d] %s: %s (target %s)%n", t.verdict().toString().replace('_', ' '), t.issue(), t.name(),
                        t.measured(), t.goal());
            }
            out.printf(Locale.ROOT, "  %d met, %d missed, %d not measured%n", count(targets, Verdict.MET), count(targets, Verdict.MISSED),
                    count(targets, Verdict.NOT_MEASURED));
        }
        return 0;
    }

    /** The JSON objects of a gpu-check.jsonl; other lines (a stage's stray output) are skipped. */
    static List<JsonNode> read(Path file) throws IOException {
        ObjectMapper m = new ObjectMapper();
        List<JsonNode> rows = new ArrayList<>();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (!line.startsWith("{")) continue;
            try {
                JsonNode n = m.readTree(line);
                if (n != null && n.isObject()) rows.add(n);
            } catch (JsonProcessingException e) {
                // a line cut short by a stage's timeout: nothing to read in it
            }
        }
        return rows;
    }

    static List<Target> evaluate(List<JsonNode> rows) {
        List<Target> t = new ArrayList<>();
        t.add(tests(rows));
        t.add(decode(rows));
        t.add(launch(rows));
        t.add(attention(rows));
        t.add(train(rows, 12, 32, TRAIN_MFU_PCT));
        t.add(memory(rows, 12, 32));
        t.add(gemm(rows));
        t.add(train(rows, 24, 16, TRAIN_D24_MFU_PCT));
        t.add(memory(rows, 24, 16));
        t.add(allReduce(rows));
        return t;
    }

    /** The two JUnit stages: met when both ran and passed, missed when one ran and failed, else not measured. */
    private static Target tests(List<JsonNode> rows) {
        String name = "conformance and GPU training tests", goal = "both test stages pass";
        // gpu-check's JUnit line for stage 3 is kind "train-tests"; its skip line carries the stage's name
        JsonNode conf = kind(rows, "conformance"), extras = kind(rows, "train-tests");
        if (extras == null) extras = kind(rows, "train-extras");
        String measured = "conformance " + stage(conf) + ", train-extras " + stage(extras);
        boolean failed = (conf != null && conf.path("exit").asInt(0) != 0) || (extras != null && extras.path("exit").asInt(0) != 0);
        boolean passed = conf != null && extras != null && conf.has("exit") && extras.has("exit") && !failed;
        return new Target(20, name, goal, measured, passed ? Verdict.MET : failed ? Verdict.MISSED : Verdict.NOT_MEASURED);
    }

    /** How a JUnit stage ended: "exit 0 (12 tests successful; …)", "skipped (budget)" or "did not report". */
    private static String stage(JsonNode stage) {
        if (stage == null) return "did not report";
        if (!stage.has("exit")) return "skipped (" + stage.path("skipped").asText() + ")";
        String s = stage.path("summary").asText().strip();
        return "exit " + stage.path("exit").asInt() + (s.isEmpty() ? "" : " (" + s.replaceAll(";$", "").replace(";", "; ") + ")");
    }

    private static Target decode(List<JsonNode> rows) {
        String name = "decode d20 batch 1, bf16", goal = ">= " + fmt(DECODE_VS_NANOCHAT) + "x nanochat's engine";
        JsonNode ours = oursDecode(rows), theirs = depth(kinds(rows, "nanochat-decode"), 20);
        double a = positive(ours, "decode_tok_per_sec"), b = positive(theirs, "tok_per_s");
        if (Double.isNaN(a) || Double.isNaN(b)) return missing(20, name, goal, Double.isNaN(a) ? "bench infer --device cuda --depth 20" : "nanochat's decode");
        return ratio(20, name, goal, a, b, "tok/s", DECODE_VS_NANOCHAT);
    }

    private static Target launch(List<JsonNode> rows) {
        String name = "launch overhead per decode step, d20", goal = "written down";
        JsonNode ours = oursDecode(rows);
        if (ours == null || !ours.has("launch_ms_per_step")) return missing(20, name, goal, "bench infer --device cuda --depth 20");
        String measured = String.format(Locale.ROOT, "launching kernel by kernel costs %.3f ms a step (%.3f ms a step issued so, %.3f replayed "
                + "as a CUDA graph%s)", ours.path("launch_ms_per_step").asDouble(), ours.path("issued_ms_per_step").asDouble(), ours.path("ms_per_step").asDouble(),
                ours.path("device_busy_ms_per_step").isNumber()
                        ? String.format(Locale.ROOT, "; its kernels keep the device busy %.3f ms of it", ours.path("device_busy_ms_per_step").asDouble()) : "");
        return new Target(20, name, goal, measured, Verdict.MET);
    }

    /** Attention fwd+bwd at T = 2048, head dim 128, nanochat's flop count: the best kernel family, every family listed. */
    private static Target attention(List<JsonNode> rows) {
        String name = "attention fwd+bwd T=2048 D=128", goal = ">= " + Math.round(100 * ATTENTION_PEAK_FRACTION) + "% of the bf16 peak";
        List<String> parts = new ArrayList<>();
        double best = -1;
        for (JsonNode r : rows) {
            String op = r.path("op").asText(), shape = r.path("shape").asText();
            if (!op.startsWith(CudaKernels.ATTENTION_FWD_BWD_TC) || !shape.contains(" T=2048 ") || !shape.contains(" D=128 ")) continue;
            double frac = positive(r, "tflops") / positive(r, "peak_tflops");
            if (Double.isNaN(frac)) continue;
            String family = op.substring(CudaKernels.ATTENTION_FWD_BWD_TC.length()).trim();
            parts.add(String.format(Locale.ROOT, "%s%.1f TFLOP/s = %.1f%%", family.isEmpty() ? "" : family + " ", r.path("tflops").asDouble(), 100 * frac));
            best = Math.max(best, frac);
        }
        if (parts.isEmpty()) return missing(20, name, goal, "bench kernels --device cuda --ops attention");
        return new Target(20, name, goal, String.join(", ", parts), best >= ATTENTION_PEAK_FRACTION ? Verdict.MET : Verdict.MISSED);
    }

    /** The training step at a depth and batch (× 2048, bf16): tok/s against nanochat's, and the MFU. */
    private static Target train(List<JsonNode> rows, int depth, int batch, double mfuPct) {
        String name = "d" + depth + " batch " + batch + " x 2048 training step, bf16";
        String goal = ">= " + fmt(TRAIN_VS_NANOCHAT) + "x nanochat's tok/s and >= " + fmt(mfuPct) + "% MFU";
        JsonNode ours = step(rows, "base-train", depth, batch), theirs = step(rows, "nanochat-train", depth, batch);
        double a = positive(ours, "tok_per_s"), b = positive(theirs, "tok_per_s");
        Target missing = missingStep(name, goal, depth, a, b);
        if (missing != null) return missing;
        double mfu = ours.path("mfu_pct").asDouble();
        String measured = String.format(Locale.ROOT, "%,.0f tok/s (MFU %.1f%%) = %.2fx nanochat's %,.0f (MFU %.1f%%)%s", a, mfu, a / b, b,
                theirs.path("mfu_pct").asDouble(), ours.path("exit").asInt(0) == 0 ? "" : "; base-train exit " + ours.path("exit").asInt());
        boolean met = a >= TRAIN_VS_NANOCHAT * b && mfu >= mfuPct && ours.path("exit").asInt(0) == 0;
        return new Target(21, name, goal, measured, met ? Verdict.MET : Verdict.MISSED);
    }

    /** Peak memory of a training step, like for like: our allocator's bytes in tensors against torch's max_memory_allocated. */
    private static Target memory(List<JsonNode> rows, int depth, int batch) {
        String name = "d" + depth + " training step peak device memory", goal = "<= nanochat's (torch.cuda.max_memory_allocated)";
        JsonNode ours = step(rows, "base-train", depth, batch), theirs = step(rows, "nanochat-train", depth, batch);
        double a = positive(ours, "peak_tensors_gib"), b = positive(theirs, "peak_mem_gib");
        Target missing = missingStep(name, goal, depth, a, b);
        if (missing != null) return missing;
        JsonNode smi = kind(rows, depth == 12 ? "nanochat-run" : "nanochat-d" + depth + "-run");
        String measured = String.format(Locale.ROOT, "%.2f GiB in tensors against %.2f GiB (nvidia-smi, whole device: ours %s, nanochat's %s)", a, b,
                gib(ours.path("peak_gpu_mem_gib")), smi == null ? "-" : gib(smi.path("peak_gpu_mem_gib")));
        return new Target(21, name, goal, measured, a <= b ? Verdict.MET : Verdict.MISSED);
    }

    /** A training target at {@code depth} without our figure or nanochat's (NaN): which stage to run; null when both are there. */
    private static Target missingStep(String name, String goal, int depth, double ours, double theirs) {
        String stage = depth == 12 ? "" : " (GPU_CHECK_STAGES=d24)";
        if (Double.isNaN(ours)) return missing(21, name, goal, "base-train --device cuda --depth " + depth + stage);
        if (Double.isNaN(theirs)) return missing(21, name, goal, "nanochat's d" + depth + " training step" + stage);
        return null;
    }

    /**
     * The share of a step the ranks waited for the gradient all-reduce (gpu-check's allreduce stage: launch --nproc 2).
     * Measured as the issue means it only with one rank a GPU; two ranks sharing one GPU give a figure, named as a proxy.
     */
    private static Target allReduce(List<JsonNode> rows) {
        String name = "the gradient all-reduce's share of a step, one process a GPU", goal = "measured";
        JsonNode r = kind(rows, "allreduce");
        double waited = r == null || !r.path("reduce_wait_pct").isNumber() ? Double.NaN : r.path("reduce_wait_pct").asDouble();
        if (Double.isNaN(waited) || r.path("exit").asInt(0) != 0) {
            return missing(21, name, goal, "launch --nproc 2 base-train --device cuda (GPU_CHECK_STAGES=allreduce)");
        }
        int ranks = r.path("ranks").asInt(), gpus = r.path("gpus").asInt(1);
        String measured = String.format(Locale.ROOT, "%d ranks on %d GPU%s (d%d, %d x 2048 a rank): waited %.1f%% of the step, %,.0f tok/s",
                ranks, Math.min(ranks, gpus), gpus == 1 ? "" : "s", r.path("depth").asInt(), r.path("batch").asInt(), waited, r.path("tok_per_s").asDouble());
        if (gpus >= ranks) return new Target(21, name, goal, measured, Verdict.MET);
        return new Target(21, name, goal, measured + " — ranks sharing a GPU: a proxy, not the figure the issue asks for", Verdict.NOT_MEASURED);
    }

    /**
     * Our tensor-core GEMM per layer shape: its best tile's speed against cuBLAS's on the same shape — the forward
     * products bench kernels times, and every product of a training step (forward, dx and dW layouts) as its first
     * step timed them (gpu-check's "gemm-choice" lines, from the GEMM chooser's log).
     */
    private static Target gemm(List<JsonNode> rows) {
        String name = "our GEMM on the d12/d20/d24 layer shapes", goal = ">= " + Math.round(100 * GEMM_VS_CUBLAS) + "% of cuBLAS on every shape";
        Map<String, Double> cublas = new LinkedHashMap<>(), ours = new LinkedHashMap<>();
        for (JsonNode r : rows) {
            String op = r.path("op").asText(), shape = r.path("shape").asText();
            if (r.path("kind").asText().equals("gemm-choice")) {
                String step = "d" + r.path("depth").asInt() + " train step " + shape;
                double theirs = positive(r, "cublas_ms"), own = positive(r, "ours_ms");
                if (!Double.isNaN(theirs) && !Double.isNaN(own)) {
                    cublas.put(step, theirs);
                    ours.merge(step, own, Math::min);
                }
                continue;
            }
            double ms = positive(r, "ms");
            if (Double.isNaN(ms)) continue;
            if (op.equals(CudaKernels.GEMM_CUBLAS)) cublas.put(shape, ms);
            else if (op.equals(CudaKernels.GEMM_OURS)) ours.merge(shape, ms, Math::min);
        }
        if (cublas.isEmpty()) return missing(21, name, goal, "bench kernels --device cuda --ops gemm");
        List<String> below = new ArrayList<>();
        int at = 0;
        double lo = Double.MAX_VALUE, hi = 0;
        for (Map.Entry<String, Double> e : cublas.entrySet()) {
            Double own = ours.get(e.getKey());
            if (own == null) {
                below.add(e.getKey() + " (no tile of ours fits)");
                continue;
            }
            double r = e.getValue() / own;
            lo = Math.min(lo, r);
            hi = Math.max(hi, r);
            if (r >= GEMM_VS_CUBLAS) at++;
            else below.add(String.format(Locale.ROOT, "%s %.0f%%", e.getKey(), 100 * r));
        }
        String measured = String.format(Locale.ROOT, "%d of %d shapes", at, cublas.size())
                + (hi > 0 ? String.format(Locale.ROOT, ", ours %.0f-%.0f%% of cuBLAS", 100 * lo, 100 * hi) : "")
                + (below.isEmpty() ? "" : "; below: " + String.join(", ", below));
        return new Target(21, name, goal, measured, below.isEmpty() ? Verdict.MET : Verdict.MISSED);
    }

    /** Ours against theirs: a ratio target on a rate (higher is better). */
    private static Target ratio(int issue, String name, String goal, double ours, double theirs, String unit, double want) {
        String measured = String.format(Locale.ROOT, "%,.1f %s = %.2fx nanochat's %,.1f", ours, unit, ours / theirs, theirs);
        return new Target(issue, name, goal, measured, ours >= want * theirs ? Verdict.MET : Verdict.MISSED);
    }

    /** A figure of a line, or NaN when the line, the field or a positive number is missing (a stage that failed). */
    private static double positive(JsonNode row, String field) {
        if (row == null || !row.path(field).isNumber()) return Double.NaN;
        double v = row.path(field).asDouble();
        return v > 0 && Double.isFinite(v) ? v : Double.NaN;
    }

    private static Target missing(int issue, String name, String goal, String what) {
        return new Target(issue, name, goal, "no figure from " + what + " (its stage failed, timed out or was skipped)",
                Verdict.NOT_MEASURED);
    }

    /** Our batch-1 decode at d20 (bench infer's CUDA line). */
    private static JsonNode oursDecode(List<JsonNode> rows) {
        return depth(rows.stream().filter(r -> "cuda".equals(r.path("device").asText()) && r.has("decode_tok_per_sec")).toList(), 20);
    }

    private static List<JsonNode> kinds(List<JsonNode> rows, String kind) {
        return rows.stream().filter(r -> kind.equals(r.path("kind").asText())).toList();
    }

    /** The last line of that kind (a stage appends one). */
    private static JsonNode kind(List<JsonNode> rows, String kind) {
        List<JsonNode> k = kinds(rows, kind);
        return k.isEmpty() ? null : k.get(k.size() - 1);
    }

    /** The last training line of that kind at that depth and batch. */
    private static JsonNode step(List<JsonNode> rows, String kind, int depth, int batch) {
        return depth(kinds(rows, kind).stream().filter(r -> r.path("batch").asInt() == batch).toList(), depth);
    }

    private static JsonNode depth(List<JsonNode> rows, int depth) {
        return rows.stream().filter(r -> r.path("depth").asInt() == depth).reduce((a, b) -> b).orElse(null);
    }

    private static String gib(JsonNode n) {
        return n.isNumber() ? String.format(Locale.ROOT, "%.2f GiB", n.asDouble()) : "-";
    }

    private static String fmt(double x) {
        return x == Math.rint(x) ? String.valueOf((long) x) : String.valueOf(x);
    }

    private static long count(List<Target> t, Verdict v) {
        return t.stream().filter(x -> x.verdict() == v).count();
    }

    static String toJson(String device, List<Target> targets) {
        ObjectMapper m = new ObjectMapper();
        ObjectNode o = m.createObjectNode();
        o.put("kind", "targets");
        o.put("device", device);
        for (Verdict v : Verdict.values()) o.put(v.name().toLowerCase(Locale.ROOT), count(targets, v));
        ArrayNode a = o.putArray("targets");
        for (Target t : targets) {
            a.addObject().put("issue", t.issue()).put("name", t.name()).put("target", t.goal()).put("measured", t.measured())
                    .put("verdict", t.verdict().name().toLowerCase(Locale.ROOT));
        }
        return o.toString();
    }
}
