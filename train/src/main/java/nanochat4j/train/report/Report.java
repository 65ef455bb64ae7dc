package nanochat4j.train.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;
import nanochat4j.train.tasks.TaskData;
import nanochat4j.train.tokenizer.EvalSamples;

/**
 * The report card (nanochat's historical report.py, generated from what the stages left in the base dir rather than
 * from section files each stage logs): system, tokenizer, base training, base eval (CORE), SFT, RL (when run), chat-eval, and a
 * summary table Metric × {BASE, SFT, RL} with ChatCORE, plus the total wall-clock time from the tokenizer's files to
 * the newest result. Writes {@code <base>/report.md} atomically with the training plots copied beside it. Stages that
 * did not run are named as missing.
 */
public final class Report {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Report() {}

    public static Path write(Path base) throws IOException {
        if (!Files.isDirectory(base)) throw new IOException("no base dir " + base + ": nothing to report (run the pipeline first)");
        StringBuilder md = new StringBuilder("# nanochat4j training report\n\n");
        md.append("Generated: ").append(Instant.now()).append("\n\n");
        List<FileTime> times = new ArrayList<>();
        system(md);
        tokenizer(base, md, times);
        Map<String, Map<String, String>> summary = new LinkedHashMap<>(); // metric -> stage -> value
        base(base, md, times, summary);
        sft(base, md, times);
        rl(base, md, times);
        chatEval(base, md, times, summary);
        md.append("## Summary\n\n| Metric | BASE | SFT | RL |\n|---|---|---|---|\n");
        List<String> rows = new ArrayList<>(List.of("CORE"));
        rows.addAll(TaskData.EVAL_TASKS);
        rows.add("ChatCORE");
        for (String metric : rows) {
            Map<String, String> v = summary.getOrDefault(metric, Map.of());
            md.append("| ").append(metric).append(" | ").append(v.getOrDefault("base", "-")).append(" | ").append(v.getOrDefault("sft", "-"))
                    .append(" | ").append(v.getOrDefault("rl", "-")).append(" |\n");
        }
        if (times.size() >= 2) {
            FileTime first = times.stream().min(FileTime::compareTo).orElseThrow(), last = times.stream().max(FileTime::compareTo).orElseThrow();
            Duration d = Duration.between(first.toInstant(), last.toInstant());
            md.append(String.format(Locale.ROOT, "%nTotal wall clock time: %dh%dm (tokenizer files to the newest result)%n", d.toHours(), d.toMinutesPart()));
        }
        Path out = base.resolve("report.md");
        TokenizerFiles.writeAtomically(out, md.toString().getBytes(StandardCharsets.UTF_8));
        return out;
    }

    private static void system(StringBuilder md) {
        md.append("## System\n\n");
        item(md, "OS", System.getProperty("os.name") + " " + System.getProperty("os.version") + " (" + System.getProperty("os.arch") + ")");
        item(md, "CPUs (logical)", Integer.toString(Runtime.getRuntime().availableProcessors()));
        if (ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os) {
            item(md, "RAM", String.format(Locale.ROOT, "%.1f GiB", os.getTotalMemorySize() / (double) (1L << 30)));
        }
        String cpu = cpuModel();
        if (cpu != null) item(md, "CPU", cpu);
        String gpu = run("nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader");
        item(md, "GPU", gpu == null || gpu.isBlank() ? "none found" : gpu.strip().replace("\n", "; "));
        item(md, "JVM", System.getProperty("java.vm.name") + " " + Runtime.version());
        String commit = run("git", "rev-parse", "--short", "HEAD");
        String dirty = run("git", "status", "--porcelain");
        item(md, "Commit", commit == null ? "unknown (not in a git checkout)" : commit.strip() + (dirty != null && !dirty.isBlank() ? " (dirty)" : ""));
        md.append('\n');
    }

    private static void tokenizer(Path base, StringBuilder md, List<FileTime> times) throws IOException {
        md.append("## Tokenizer\n\n");
        Path dir = base.resolve("tokenizer");
        if (!Files.isRegularFile(dir.resolve(TokenizerFiles.MODEL_FILE))) {
            md.append("missing: no tokenizer in ").append(dir).append("\n\n");
            return;
        }
        times.add(Files.getLastModifiedTime(dir.resolve(TokenizerFiles.MODEL_FILE)));
        Tokenizer tok = Tokenizer.load(dir);
        item(md, "vocab size", String.format(Locale.ROOT, "%,d (%d special)", tok.vocabSize(), tok.specialTokens().size()));
        long bytes = 0, tokens = 0;
        for (var e : EvalSamples.all().entrySet()) {
            int b = e.getValue().getBytes(StandardCharsets.UTF_8).length, t = tok.encode(e.getValue()).length;
            bytes += b;
            tokens += t;
            item(md, "compression (" + e.getKey() + ")", String.format(Locale.ROOT, "%.2f bytes/token", (double) b / t));
        }
        item(md, "compression (all samples)", String.format(Locale.ROOT, "%.2f bytes/token", (double) bytes / tokens));
        md.append('\n');
    }

    private static void base(Path base, StringBuilder md, List<FileTime> times, Map<String, Map<String, String>> summary) throws IOException {
        md.append("## Base model training\n\n");
        Path ck = latest(base.resolve("base_checkpoints"));
        if (ck == null) {
            md.append("missing: no base checkpoint in ").append(base.resolve("base_checkpoints")).append("\n\n");
            return;
        }
        long step = Checkpoint.lastStep(ck);
        Checkpoint.Meta meta = Checkpoint.readMeta(ck, step);
        times.add(Files.getLastModifiedTime(Checkpoint.metaFile(ck, step)));
        GPTConfig c = meta.config();
        item(md, "checkpoint", ck + " step " + step);
        item(md, "model", c.toString());
        item(md, "parameters", String.format(Locale.ROOT, "%,d", c.numScalingParams().total()));
        Object total = meta.extra().get("total_batch_size");
        if (total instanceof Number n) item(md, "tokens trained", String.format(Locale.ROOT, "%,d (%d steps × %,d)", n.longValue() * step, step, n.longValue()));
        if (meta.extra().get("loop_state") instanceof Map<?, ?> loop) {
            double t = Double.parseDouble(String.valueOf(loop.get("total_training_time")));
            item(md, "training time", String.format(Locale.ROOT, "%.1f min (steps after the 10th)", t / 60));
            item(md, "min val bpb", String.valueOf(loop.get("min_val_bpb")));
        }
        if (meta.extra().get("val_bpb") != null) item(md, "final val bpb", String.format(Locale.ROOT, "%.4f", ((Number) meta.extra().get("val_bpb")).doubleValue()));
        JsonNode lastStep = lastMetric(ck.resolve("metrics.jsonl"), "mfu");
        if (lastStep != null) item(md, "MFU (last step, as base-train logged it)", String.format(Locale.ROOT, "%.2f%%", lastStep.get("mfu").asDouble()));
        copyPlot(ck.resolve("base_train.png"), base.resolve("base_train.png"), md, "base training loss and val bpb");
        Path eval = base.resolve("base_eval").resolve(String.format(Locale.ROOT, "base_model_%06d.json", step));
        md.append("\n### Base model evaluation\n\n");
        if (Files.isRegularFile(eval)) {
            times.add(Files.getLastModifiedTime(eval));
            JsonNode e = JSON.readTree(eval.toFile());
            if (e.has("train_bpb")) item(md, "train bpb", String.format(Locale.ROOT, "%.4f", e.get("train_bpb").asDouble()));
            if (e.has("val_bpb")) item(md, "val bpb", String.format(Locale.ROOT, "%.4f", e.get("val_bpb").asDouble()));
            if (e.path("core").has("core")) {
                double core = e.get("core").get("core").asDouble();
                item(md, "CORE", String.format(Locale.ROOT, "%.4f", core));
                summary.computeIfAbsent("CORE", k -> new LinkedHashMap<>()).put("base", String.format(Locale.ROOT, "%.4f", core));
            }
            if (e.has("samples")) {
                md.append("\nSamples:\n\n");
                for (JsonNode s : e.get("samples")) md.append("    ").append(s.asText().replace("\n", " ")).append('\n');
            }
        } else {
            md.append("missing: no base-eval results ").append(eval).append('\n');
        }
        md.append('\n');
    }

    private static void sft(Path base, StringBuilder md, List<FileTime> times) throws IOException {
        md.append("## Chat SFT\n\n");
        Path ck = latest(base.resolve("chatsft_checkpoints"));
        if (ck == null) {
            md.append("missing: no SFT checkpoint in ").append(base.resolve("chatsft_checkpoints")).append("\n\n");
            return;
        }
        long step = Checkpoint.lastStep(ck);
        Checkpoint.Meta meta = Checkpoint.readMeta(ck, step);
        times.add(Files.getLastModifiedTime(Checkpoint.metaFile(ck, step)));
        item(md, "checkpoint", ck + " step " + step);
        if (meta.extra().get("base_checkpoint") != null) item(md, "from base", String.valueOf(meta.extra().get("base_checkpoint")));
        if (meta.extra().get("total_batch_size") instanceof Number n) item(md, "tokens per step", String.format(Locale.ROOT, "%,d", n.longValue()));
        if (meta.extra().get("loop_state") instanceof Map<?, ?> loop) {
            item(md, "training time", String.format(Locale.ROOT, "%.1f min", Double.parseDouble(String.valueOf(loop.get("total_training_time"))) / 60));
            item(md, "micro-batches skipped (no supervised token)", String.valueOf(loop.get("skipped_micro_batches")));
            item(md, "conversations cropped to the row", String.valueOf(loop.get("cropped_conversations")));
        }
        List<JsonNode> vals = metrics(ck.resolve("metrics.jsonl"), "val_loss");
        if (!vals.isEmpty()) {
            item(md, "val loss (first → last)", String.format(Locale.ROOT, "%.4f → %.4f", vals.getFirst().get("val_loss").asDouble(), vals.getLast().get("val_loss").asDouble()));
            item(md, "val bpb (first → last)", String.format(Locale.ROOT, "%.4f → %.4f", vals.getFirst().get("val_bpb").asDouble(), vals.getLast().get("val_bpb").asDouble()));
        }
        copyPlot(ck.resolve("chat_sft.png"), base.resolve("chat_sft.png"), md, "SFT loss and val bpb");
        md.append('\n');
    }

    private static void rl(Path base, StringBuilder md, List<FileTime> times) throws IOException {
        Path ck = latest(base.resolve("chatrl_checkpoints"));
        if (ck == null) return; // RL is optional in nanochat's pipeline: no section, not "missing"
        md.append("## Chat RL\n\n");
        long step = Checkpoint.lastStep(ck);
        Checkpoint.Meta meta = Checkpoint.readMeta(ck, step);
        times.add(Files.getLastModifiedTime(Checkpoint.metaFile(ck, step)));
        item(md, "checkpoint", ck + " step " + step);
        if (meta.extra().get("sft_checkpoint") != null) item(md, "from SFT", String.valueOf(meta.extra().get("sft_checkpoint")));
        List<JsonNode> steps = metrics(ck.resolve("metrics.jsonl"), "reward");
        if (!steps.isEmpty()) {
            item(md, "mean reward (first → last step)", String.format(Locale.ROOT, "%.4f → %.4f", steps.getFirst().get("reward").asDouble(),
                    steps.getLast().get("reward").asDouble()));
            double sampling = 0, tokens = 0;
            for (JsonNode n : steps) {
                sampling += n.path("sampling_seconds").asDouble();
                tokens += n.path("sampled_tokens").asDouble();
            }
            if (sampling > 0) item(md, "sampling", String.format(Locale.ROOT, "%,.0f tokens in %.1f s (%,.0f tok/s)", tokens, sampling, tokens / sampling));
        }
        List<JsonNode> evals = metrics(ck.resolve("metrics.jsonl"), "pass@1");
        if (!evals.isEmpty()) {
            JsonNode last = evals.getLast();
            StringBuilder pk = new StringBuilder();
            for (var it = last.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (k.startsWith("pass@")) pk.append(pk.isEmpty() ? "" : ", ").append(k).append(String.format(Locale.ROOT, " %.4f", last.get(k).asDouble()));
            }
            item(md, "GSM8K test at step " + last.path("step").asInt(), pk.toString());
        }
        copyPlot(ck.resolve("chat_rl.png"), base.resolve("chat_rl.png"), md, "RL mean reward and pass@k");
        md.append('\n');
    }

    private static void chatEval(Path base, StringBuilder md, List<FileTime> times, Map<String, Map<String, String>> summary) throws IOException {
        md.append("## Chat evaluation\n\n");
        Path dir = base.resolve("chat_eval");
        List<Path> files = new ArrayList<>();
        if (Files.isDirectory(dir)) {
            try (Stream<Path> s = Files.list(dir)) {
                s.filter(p -> p.getFileName().toString().endsWith(".json")).forEach(files::add);
            }
        }
        if (files.isEmpty()) {
            md.append("missing: no chat-eval results in ").append(dir).append("\n\n");
            return;
        }
        files.sort((a, b) -> {
            try {
                return Files.getLastModifiedTime(a).compareTo(Files.getLastModifiedTime(b));
            } catch (IOException e) {
                return 0;
            }
        });
        for (Path f : files) { // oldest first: the newest result of each source wins the summary
            times.add(Files.getLastModifiedTime(f));
            JsonNode r = JSON.readTree(f.toFile());
            String src = r.path("source").asText("?");
            md.append("### ").append(src).append(" — ").append(r.path("model_tag").asText()).append(" step ").append(r.path("step").asLong())
                    .append(r.path("max_problems").asInt(-1) > 0 ? " (first " + r.path("max_problems").asInt() + " problems per task)" : "").append("\n\n");
            md.append("| Task | Accuracy | Centered |\n|---|---|---|\n");
            for (var it = r.path("accuracy").fields(); it.hasNext(); ) {
                var e = it.next();
                double acc = e.getValue().asDouble(), b = TaskData.baseline(e.getKey());
                md.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f |%n", e.getKey(), acc, (acc - b) / (1 - b)));
                summary.computeIfAbsent(e.getKey(), k -> new LinkedHashMap<>()).put(src, String.format(Locale.ROOT, "%.4f", acc));
            }
            for (var it = r.path("skipped").fields(); it.hasNext(); ) {
                var e = it.next();
                md.append("| ").append(e.getKey()).append(" | skipped: ").append(e.getValue().asText()).append(" | |\n");
            }
            if (!r.path("chatcore").isNull() && r.has("chatcore")) {
                md.append(String.format(Locale.ROOT, "| ChatCORE | | %.4f |%n", r.get("chatcore").asDouble()));
                summary.computeIfAbsent("ChatCORE", k -> new LinkedHashMap<>()).put(src, String.format(Locale.ROOT, "%.4f", r.get("chatcore").asDouble()));
            }
            md.append('\n');
        }
    }

    private static void copyPlot(Path from, Path to, StringBuilder md, String what) throws IOException {
        if (!Files.isRegularFile(from)) return;
        Path tmp = to.resolveSibling(to.getFileName() + ".tmp");
        Files.copy(from, tmp, StandardCopyOption.REPLACE_EXISTING);
        Files.move(tmp, to, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        md.append("\n![").append(what).append("](").append(to.getFileName()).append(")\n");
    }

    /** The checkpoint folder of the largest d&lt;N&gt; tag, else the newest; null when none. */
    private static Path latest(Path root) {
        try {
            Path dir = root.resolve(Checkpoint.largestTag(root));
            Checkpoint.lastStep(dir);
            return dir;
        } catch (IOException e) {
            return null;
        }
    }

    private static List<JsonNode> metrics(Path file, String key) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        if (!Files.isRegularFile(file)) return out;
        for (String line : Files.readAllLines(file)) {
            if (line.isBlank()) continue;
            JsonNode n = JSON.readTree(line);
            if (n.has(key) && !n.get(key).isNull()) out.add(n);
        }
        return out;
    }

    private static JsonNode lastMetric(Path file, String key) throws IOException {
        List<JsonNode> m = metrics(file, key);
        return m.isEmpty() ? null : m.getLast();
    }

    private static void item(StringBuilder md, String k, String v) {
        md.append("- ").append(k).append(": ").append(v).append('\n');
    }

    /** The CPU's model name from /proc/cpuinfo (Linux), or null. */
    public static String cpuModel() {
        return firstMatch(Path.of("/proc/cpuinfo"), "model name");
    }

    private static String firstMatch(Path file, String prefix) {
        try (Stream<String> lines = Files.lines(file)) {
            return lines.filter(l -> l.startsWith(prefix)).map(l -> l.substring(l.indexOf(':') + 1).strip()).findFirst().orElse(null);
        } catch (IOException | RuntimeException e) {
            return null;
        }
    }

    /** A command's stdout, or null when it cannot run (no git, no nvidia-smi). */
    private static String run(String... cmd) {
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(false).redirectError(ProcessBuilder.Redirect.DISCARD).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!p.waitFor(10, TimeUnit.SECONDS) || p.exitValue() != 0) return null;
            return out;
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }
}
