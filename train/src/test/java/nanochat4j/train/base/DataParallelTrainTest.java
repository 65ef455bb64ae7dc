package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.tensor.cuda.CudaTesting;
import nanochat4j.train.collective.Launcher;
import nanochat4j.train.optim.MuonAdamW;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * Data-parallel base-train: 2 worker processes with device batch B against 1 process with 2 micro-batches of B.
 * The data is built so both see the same rows: every document is exactly T tokens (a row holds one whole document,
 * in stream order) and every row group of the JSONL files holds exactly B documents (the rest of its 1024 lines are
 * blank), so the single process's micro-batches k = 0, 1 of step s are row groups 2s and 2s+1 — exactly what ranks
 * 0 and 1 read at step s. Losses and parameters then agree up to the order of the gradient sums. Depth 3, not 2:
 * at depth 2 the backout layer is the last block, so x − λ·x_mid = (1−λ)·x and the RMS norm after it makes the loss
 * independent of backout_λ; its gradient is pure rounding noise, which Adam turns into ±lr steps.
 */
@Timeout(300)
class DataParallelTrainTest {
    @TempDir
    static Path tmp;

    static Path data;

    static final int T = 32, B = 2;

    @BeforeAll
    static void writeData() throws IOException {
        data = tmp.resolve("data");
        Files.createDirectories(data);
        Random r = new Random(7);
        String letters = "abcdefghijklmnopqrstuvwxyz    ";
        for (String name : new String[] {"a_train.jsonl", "z_val.jsonl"}) {
            StringBuilder sb = new StringBuilder();
            for (int group = 0; group < 16; group++) {
                for (int line = 0; line < 1024; line++) {
                    if (line >= B) {
                        sb.append('\n');
                        continue;
                    }
                    StringBuilder doc = new StringBuilder();
                    for (int i = 0; i < T; i++) doc.append(letters.charAt(r.nextInt(letters.length())));
                    sb.append("{\"text\":\"").append(doc).append("\"}\n");
                }
            }
            Files.writeString(data.resolve(name), sb);
        }
    }

    static List<String> args(Path ckpt, String... extra) {
        List<String> a = new ArrayList<>(List.of("--depth=3", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=" + T,
                "--window-pattern=L", "--device-batch-size=" + B, "--total-batch-size=" + 2 * B * T, "--num-iterations=5",
                "--warmup-steps=2", "--eval-every=5", "--eval-tokens=" + 2 * B * T, "--sample-every=-1", "--core-metric-every=-1",
                "--data=" + data, "--checkpoint-dir=" + ckpt));
        a.addAll(List.of(extra));
        return a;
    }

    static BaseTrainOptions options(List<String> args) {
        BaseTrainOptions o = new BaseTrainOptions();
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args.toArray(String[]::new));
        return o;
    }

    /** A worker of the 2-process runs: base-train on the byte tokenizer, then its own losses and val bpb. */
    public static final class Worker {
        public static void main(String[] args) throws Exception {
            BaseTrain.Result r = BaseTrain.run(options(List.of(args)), BaseTrainTest.bytes(), System.out);
            String rank = System.getenv("RANK");
            System.out.println("LOSSES " + rank + " " + r.trainLosses());
            System.out.println("BPB " + rank + " " + r.valBpb());
        }
    }

    /**
     * Runs nproc workers through the launcher; returns their output. The workers run the real vector kernels, whose
     * results do not depend on when the JIT compiled them (VecMath), so runs can be compared bit for bit.
     */
    static String runProcesses(int nproc, List<String> args) throws IOException {
        return runProcesses(nproc, args, true);
    }

    /** {@link #runProcesses}, asserting that the launcher exits 0 (ok) or not (a run that must fail). */
    static String runProcesses(int nproc, List<String> args, boolean ok) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("--add-") || a.startsWith("--enable-native") || a.startsWith("-Xss")) cmd.add(a);
        }
        // and the suite's own settings (poisoned recycling, the PTX cache folder): Maven sets them as properties
        for (String k : System.getProperties().stringPropertyNames()) {
            if (k.startsWith("nanochat4j.")) cmd.add("-D" + k + "=" + System.getProperty(k));
        }
        cmd.addAll(List.of("-XX:+UseParallelGC", "-cp",
                System.getProperty("java.class.path"), Worker.class.getName()));
        cmd.addAll(args);
        var out = new ByteArrayOutputStream();
        PrintStream ps = new PrintStream(out, true, StandardCharsets.UTF_8);
        int code = Launcher.run(cmd, Launcher.Spec.local(nproc), ps, ps);
        String log = out.toString(StandardCharsets.UTF_8);
        if (ok) assertEquals(0, code, log);
        else assertTrue(code != 0, log);
        return log;
    }

    static List<Float> losses(String log, int rank) {
        Matcher m = Pattern.compile("\\[rank " + rank + "] LOSSES " + rank + " \\[(.*)]").matcher(log);
        assertTrue(m.find(), log);
        return Arrays.stream(m.group(1).split(", ")).map(Float::parseFloat).toList();
    }

    static double bpbAt(String log, int rank, int step) {
        Matcher m = Pattern.compile("\\[rank " + rank + "] BPB " + rank + " \\{.*\\b" + step + "=([0-9.eE-]+)").matcher(log);
        assertTrue(m.find(), log);
        return Double.parseDouble(m.group(1));
    }

    static void assertClose(Map<String, float[]> expected, Map<String, float[]> actual, double atol, String what) {
        assertEquals(expected.keySet(), actual.keySet());
        double worst = 0;
        List<String> bad = new ArrayList<>();
        for (var e : expected.entrySet()) {
            float[] x = e.getValue(), y = actual.get(e.getKey());
            assertEquals(x.length, y.length, e.getKey());
            double tensorWorst = 0;
            for (int i = 0; i < x.length; i++) {
                double d = Math.abs(x[i] - y[i]);
                tensorWorst = Math.max(tensorWorst, d);
                if (d > atol + 1e-3 * Math.abs(x[i]) && bad.size() < 20) bad.add(e.getKey() + "[" + i + "] " + x[i] + " vs " + y[i]);
            }
            System.out.printf("%s: %s largest difference %.3g%n", what, e.getKey(), tensorWorst);
            worst = Math.max(worst, tensorWorst);
        }
        System.out.printf("%s: largest parameter difference %.3g%n", what, worst);
        assertTrue(bad.isEmpty(), what + ": " + bad);
    }

    private static String dpLog;

    /** The 2-process run both tests use (checkpoints at steps 3 and 5), run once. */
    static synchronized String dpRun() throws IOException {
        if (dpLog == null) dpLog = runProcesses(2, args(tmp.resolve("dp"), "--save-every=3"));
        return dpLog;
    }

    @Test
    void twoProcessesWithBatchBEqualOneProcessWithTwoMicroBatchesOfB() throws IOException {
        Path single = tmp.resolve("single"), dp = tmp.resolve("dp");
        String oneLog = runProcesses(1, args(single));
        String log = dpRun();
        assertTrue(oneLog.contains("[rank 0] Batch: 128 tokens/step = 2 × 32 × 2 micro-steps × 1 rank;"), oneLog);
        assertTrue(log.contains("[rank 0] Batch: 128 tokens/step = 2 × 32 × 1 micro-steps × 2 ranks"), log);
        assertFalse(log.contains("[rank 1] Batch:"), "only rank 0 logs: " + log);

        // the single process logs its last micro-batch's loss: that is rank 1's batch
        List<Float> expected = losses(oneLog, 0), actual = losses(log, 1);
        assertEquals(5, actual.size());
        for (int i = 0; i < 5; i++) assertEquals(expected.get(i), actual.get(i), 2e-4 * Math.abs(expected.get(i)), "loss of step " + (i + 1));
        assertEquals(bpbAt(oneLog, 0, 5), bpbAt(log, 0, 5), 1e-4, "val bpb after 5 steps (every rank's shard summed)");
        assertEquals(bpbAt(log, 0, 5), bpbAt(log, 1, 5), 0.0, "every rank computes the same val bpb");

        assertClose(Checkpoint.load(single, 5).params(), Checkpoint.load(dp, 5).params(), 1e-5, "2 processes vs 1");
        assertTrue(Files.exists(MuonAdamW.stateFile(dp, 5, 0)) && Files.exists(MuonAdamW.stateFile(dp, 5, 1)), "per-rank optimizer files");
        assertFalse(Files.exists(MuonAdamW.stateFile(single, 5, 1)));
    }

    /**
     * The gradient all-reduce overlapped with the backward pass (what GPU ranks do), forced on for two CPU processes:
     * the same losses, val bpb and parameters as the ZeRO-2 run that reduces after the backward pass, bit for bit;
     * rank 0 alone writes the (replicated) optimizer state, and the log gives the wait's share of the step.
     */
    @Test
    void overlappedGradientReduceEqualsReducingAfterBackwardBitForBit() throws IOException {
        Path overlap = tmp.resolve("overlap");
        String log = runProcesses(2, args(overlap, "--save-every=3", "--overlap-reduce=on"));
        String zero = dpRun();
        for (int rank = 0; rank < 2; rank++) assertEquals(losses(zero, rank), losses(log, rank), "rank " + rank + " losses");
        assertEquals(bpbAt(zero, 0, 5), bpbAt(log, 0, 5), 0.0, "val bpb after 5 steps");
        Map<String, float[]> x = Checkpoint.load(tmp.resolve("dp"), 5).params(), y = Checkpoint.load(overlap, 5).params();
        assertEquals(x.keySet(), y.keySet());
        for (String k : x.keySet()) assertArrayEquals(x.get(k), y.get(k), k + " differs from the ZeRO-2 run");
        assertTrue(Files.exists(MuonAdamW.stateFile(overlap, 5, 0)) && !Files.exists(MuonAdamW.stateFile(overlap, 5, 1)),
                "rank 0 writes the replicated optimizer state");
        log.lines().filter(l -> l.contains("Gradient all-reduce")).forEach(System.out::println);
        assertTrue(log.matches("(?s).*\\[rank 0] Gradient all-reduce \\(\\d+ buckets, overlapped with the backward\\): waited [0-9.]+% of the step time.*"), log);

        // a GPU run's layout resumed on CPU ranks: --overlap-reduce auto (off on CPU) takes the checkpoint's, bit for bit
        Path again = copyStep(overlap, tmp.resolve("overlap-resumed"), 3);
        String b = runProcesses(2, args(again, "--resume-from-step=3"));
        assertTrue(b.contains("--overlap-reduce auto: on, as checkpoint step 3 was saved"), b);
        for (int rank = 0; rank < 2; rank++) assertEquals(losses(log, rank).subList(3, 5), losses(b, rank), "rank " + rank + " losses after resuming");
        Map<String, float[]> z = Checkpoint.load(again, 5).params();
        for (String k : y.keySet()) assertArrayEquals(y.get(k), z.get(k), k + " differs after resuming");
        // an explicit other layout says which flag to give
        String c = runProcesses(2, args(copyStep(overlap, tmp.resolve("overlap-off"), 3), "--resume-from-step=3", "--overlap-reduce=off"), false);
        assertTrue(c.contains("was saved with --overlap-reduce on") && c.contains("resume it with --overlap-reduce on or auto"), c);
    }

    /** A copy of {@code from}'s checkpoint at {@code step} alone (every rank's files) in a new folder {@code to}. */
    static Path copyStep(Path from, Path to, int step) throws IOException {
        Files.createDirectories(to);
        String tag = String.format(java.util.Locale.ROOT, "_%06d", step);
        try (var files = Files.list(from)) {
            for (Path f : files.toList()) if (f.getFileName().toString().contains(tag)) Files.copy(f, to.resolve(f.getFileName()));
        }
        return to;
    }

    /**
     * Two worker processes sharing one GPU (launch gives both CUDA_VISIBLE_DEVICES of the only card; their gradients
     * go device → host → ring → device) equal one GPU process with two micro-batches, to GPU float tolerance.
     * Skipped without a GPU. With --muon-precision fp32: the runs sum each gradient in another order (the single
     * process accumulates its second micro-batch onto the first, the ring adds the two), and a polar express on bf16
     * operands can turn such a last-bit difference into a whole rounding step, which AdamW's near-zero value-embedding
     * gradients turn into steps of the learning rate (2.7e-3 apart after five steps) — what the test would then
     * measure is bf16's rounding, not the ring's. The linear layers stay bf16; DeviceMuonTest checks the bf16 Muon.
     */
    @Test
    void twoGpuWorkersOnOneGpuEqualOneGpuProcess() throws IOException {
        CudaTesting.assumeGpu("2 GPU workers");
        Path single = tmp.resolve("gpu-single"), dp = tmp.resolve("gpu-dp");
        String oneLog = runProcesses(1, args(single, "--device=cuda", "--muon-precision=fp32"));
        String log = runProcesses(2, args(dp, "--device=cuda", "--muon-precision=fp32"));
        assertTrue(log.contains("[rank 0] Device: CUDA"), log);
        List<Float> expected = losses(oneLog, 0), actual = losses(log, 1);
        for (int i = 0; i < 5; i++) assertEquals(expected.get(i), actual.get(i), 2e-3 * Math.abs(expected.get(i)), "loss of step " + (i + 1));
        assertClose(Checkpoint.load(single, 5).params(), Checkpoint.load(dp, 5).params(), 1e-4, "2 GPU workers vs 1");
    }

    @Test
    void aTwoProcessRunResumedFromItsCheckpointContinuesLikeTheUninterruptedOne() throws IOException {
        String a = dpRun();
        Path straight = tmp.resolve("dp"), resumed = copyStep(straight, tmp.resolve("resumed"), 3); // only step 3 to resume from
        String b = runProcesses(2, args(resumed, "--resume-from-step=3"));
        for (int rank = 0; rank < 2; rank++) {
            List<Float> full = losses(a, rank), tail = losses(b, rank);
            assertEquals(2, tail.size());
            for (int i = 0; i < 2; i++)
                assertEquals(full.get(3 + i), tail.get(i), "rank " + rank + " loss of step " + (4 + i)); // bitwise
        }
        Map<String, float[]> x = Checkpoint.load(straight, 5).params(), y = Checkpoint.load(resumed, 5).params();
        assertEquals(x.keySet(), y.keySet());
        for (String k : x.keySet()) assertArrayEquals(x.get(k), y.get(k), k + " differs after resuming"); // bitwise
    }
}
