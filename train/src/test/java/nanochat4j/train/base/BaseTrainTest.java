package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.CudaException;
import nanochat4j.tensor.cuda.CudaOutOfMemoryException;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.collective.CollectiveException;
import nanochat4j.train.collective.InProcessRing;
import nanochat4j.train.collective.Job;
import nanochat4j.train.eval.CoreBundle;
import nanochat4j.train.eval.CoreEval;
import nanochat4j.train.eval.ModelScorer;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** base-train end to end at depth 2 on a byte-level vocabulary: a run, bitwise resume, and the bad-input messages. */
class BaseTrainTest {
    @TempDir
    static Path shared;

    @TempDir
    Path tmp;

    /** Bytes are tokens 0..255, BOS is 256. */
    static final TokenizerView BYTES = bytes();

    static TokenizerView bytes() {
        int[] tokenBytes = new int[257];
        Arrays.fill(tokenBytes, 0, 256, 1);
        return new TokenizerView(s -> {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            int[] ids = new int[b.length];
            for (int i = 0; i < b.length; i++) ids[i] = b[i] & 0xff;
            return ids;
        }, ids -> {
            byte[] b = new byte[ids.length];
            for (int i = 0; i < ids.length; i++) b[i] = (byte) Math.min(255, ids[i]);
            return new String(b, StandardCharsets.UTF_8);
        }, 256, 257, tokenBytes, "bytes");
    }

    static Path data(Path dir) throws IOException {
        Path d = dir.resolve("data");
        if (Files.isDirectory(d)) return d;
        Files.createDirectories(d);
        String[] words = "the cat sat on a mat and then the dog ran to the park where a bird sang".split(" ");
        Random r = new Random(3);
        for (int f = 0; f < 3; f++) {
            StringBuilder sb = new StringBuilder();
            for (int doc = 0; doc < 300; doc++) {
                StringBuilder text = new StringBuilder();
                int n = 5 + r.nextInt(40);
                for (int w = 0; w < n; w++) text.append(w == 0 ? "" : " ").append(words[r.nextInt(words.length)]);
                sb.append("{\"text\":\"").append(text).append(".\"}\n");
            }
            Files.writeString(d.resolve("part_" + f + ".jsonl"), sb);
        }
        return d;
    }

    BaseTrainOptions options(Path ckpt, String... extra) throws IOException {
        List<String> args = new ArrayList<>(List.of("--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=32",
                "--window-pattern=L", "--device-batch-size=2", "--total-batch-size=128", "--num-iterations=6",
                "--warmup-steps=2", "--eval-every=3", "--eval-tokens=128", "--sample-every=-1", "--core-metric-every=-1",
                "--data=" + data(shared), "--checkpoint-dir=" + ckpt));
        args.addAll(List.of(extra));
        BaseTrainOptions o = new BaseTrainOptions();
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args.toArray(String[]::new));
        return o;
    }

    static String[] concat(String[] a, String... b) {
        String[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    static BaseTrain.Result run(BaseTrainOptions o, ByteArrayOutputStream log) throws IOException {
        return BaseTrain.run(o, BYTES, new PrintStream(log, true, StandardCharsets.UTF_8));
    }

    /**
     * Bitwise resume, in this JVM with the Vector API intrinsics on: the first run's kernels start interpreted and
     * end compiled by C2, the resumed run's are compiled throughout, so this also checks that every kernel gives
     * the same bits in every JIT tier (VecMath; JitTierDeterminismTest checks the kernels one by one).
     */
    @Test
    void resumingFromAMidRunCheckpointGivesIdenticalLossesAndParameters() throws Exception {
        resumeScenario();
    }

    /**
     * The same run and bitwise resume with the model, gradients and activations on the GPU; without one on
     * {@link StandInCuda} (base-train's device code path: eval, samples, checkpoints, resume, with the CPU's arithmetic).
     */
    @Test
    void resumingOnTheGpuIsExact() throws Exception {
        try (var device = StandInCuda.unlessGpu()) {
            resumeScenario("--device=cuda");
        }
    }

    /**
     * base-train on a device that keeps its saved activations in bf16, as a GPU under bf16 matmuls does (the stand-in's
     * bf16 saves, with the CPU's arithmetic): each block's activations are shelved in bf16, which moves every parameter
     * (bf16's rounding of the gradients) but no logged loss by more than 1e-3 over the run against
     * {@code --no-bf16-activations}, and the run resumes bit for bit. Where a GPU is usable its own run covers this.
     */
    @Test
    void withActivationsShelvedInBf16TheRunMovesByRoundingAndResumesExactly() throws Exception {
        Assumptions.assumeFalse(StandInCuda.gpu(), "a GPU is usable: resumingOnTheGpuIsExact shelves on it");
        try (var device = StandInCuda.installWithBf16Saves()) {
            List<Float> shelved = run(options(tmp.resolve("bf"), "--device=cuda", "--eval-every=-1"), new ByteArrayOutputStream()).trainLosses();
            List<Float> fp32 = run(options(tmp.resolve("fp"), "--device=cuda", "--eval-every=-1", "--no-bf16-activations"),
                    new ByteArrayOutputStream()).trainLosses();
            for (int i = 0; i < fp32.size(); i++) assertEquals(fp32.get(i), shelved.get(i), 1e-3 * fp32.get(i), "loss at step " + (i + 1));
            Map<String, float[]> a = Checkpoint.load(tmp.resolve("bf"), 6).params(), b = Checkpoint.load(tmp.resolve("fp"), 6).params();
            for (String k : a.keySet()) assertFalse(Arrays.equals(a.get(k), b.get(k)), k + " is the same bits: nothing was shelved");
            resumeScenario("--device=cuda");
        }
    }

    /** --no-save-final: the run trains and reports, and leaves no checkpoint; --save-every still saves on its steps. */
    @Test
    void noSaveFinalKeepsNoCheckpointButTheIntervalOnes() throws IOException {
        Path c = tmp.resolve("nosave");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BaseTrain.Result r = run(options(c, "--no-save-final", "--eval-every=-1"), log);
        assertEquals(6, r.finalStep());
        assertFalse(Files.exists(Checkpoint.metaFile(c, 6)), "a checkpoint at the end");
        assertFalse(log.toString(StandardCharsets.UTF_8).contains("Saved checkpoint"), log.toString(StandardCharsets.UTF_8));
        run(options(tmp.resolve("nosave2"), "--no-save-final", "--save-every=4", "--eval-every=-1"), new ByteArrayOutputStream());
        assertTrue(Files.exists(Checkpoint.metaFile(tmp.resolve("nosave2"), 4)));
        assertFalse(Files.exists(Checkpoint.metaFile(tmp.resolve("nosave2"), 6)));
    }

    @Test
    void aProfileStepOutsideTheRunIsRefused() {
        for (String step : List.of("0", "7", "-2")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> run(options(tmp.resolve("p"), "--profile-step=" + step), new ByteArrayOutputStream()));
            assertEquals("--profile-step " + step + ": expected -1 (off) or a step from 1 to 6 (the run's last)", e.getMessage());
        }
    }

    /** A profiled step that fails ends its profile: the next run (the same process, the same GPU) can profile again. */
    @Test
    void aProfiledStepThatFailsLeavesNoProfileOn() throws IOException {
        Assumptions.assumeTrue(StandInCuda.gpu(), "needs a GPU (or cudasim): the stand-in has no kernels to profile");
        String m = failWithOutOfMemoryAt("the optimizer step of step 2",
                options(tmp.resolve("oom-profiled"), "--device=cuda", "--profile-step=2", "--eval-every=-1"));
        assertTrue(m.startsWith("out of GPU memory during the optimizer step of step 2"), m);
        assertTrue(CudaBackend.get().startProfile(), "a profile was left on");
        CudaBackend.get().stopProfile();
    }

    @Test
    void deviceFlagGetsClearMessages() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> run(options(tmp.resolve("x"), "--device=tpu"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("--device tpu: expected cpu or cuda"), e.getMessage());
        String why = CudaContext.unavailableReason();
        if (why != null) { // no GPU here: a one-line reason instead of a stack of FFM errors
            e = assertThrows(IllegalArgumentException.class, () -> run(options(tmp.resolve("x"), "--device=cuda"), new ByteArrayOutputStream()));
            assertTrue(e.getMessage().startsWith("--device cuda: ") && e.getMessage().contains("--device cpu always works"), e.getMessage());
        }
    }

    void resumeScenario(String... device) throws IOException {
        boolean cuda = List.of(device).contains("--device=cuda") && StandInCuda.gpu(); // the real one: its precision and GEMM choices
        MatmulPrecision before = cuda ? CudaBackend.get().matmulPrecision() : null;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BaseTrain.Result straight = run(options(tmp.resolve("a"), concat(device, "--profile-step=2")), log);
        if (cuda) assertEquals(before, CudaBackend.get().matmulPrecision(), "the run's --precision ends with the run");
        assertEquals(6, straight.trainLosses().size());
        assertEquals(6, straight.finalStep());
        String out = log.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("step 00006/00006 (100.00%) | loss: ") && out.contains("tok/sec") && out.contains("mfu"), out);
        assertTrue(out.contains("Step 00000 | Validation bpb") && out.contains("Step 00006 | Validation bpb"), out);
        assertEquals(List.of(0, 3, 6), List.copyOf(straight.valBpb().keySet()));
        // a GPU image may have no fonts to draw with: then the run says so instead of failing
        if (!(device.length > 0 && out.contains("No chart base_train.png"))) assertTrue(Files.size(tmp.resolve("a/base_train.png")) > 1000, out);
        assertTrue(Files.readString(tmp.resolve("a/metrics.jsonl")).contains("\"val_bpb\""));
        // on a device, the allocator's peak (as nanochat's max_memory_allocated); on the CPU no such line
        assertEquals(device.length > 0, out.contains("\nActivations kept for the backward: bf16 (--no-bf16-activations: fp32)\n"), out);
        assertEquals(device.length > 0, out.matches("(?s).*\nPeak device memory: [0-9.]+ GiB in tensors, [0-9.]+ GiB reserved from the driver; [0-9]+ pool flush(es)?\n.*"), out);
        // --profile-step (and the unprofiled first half below gives the same losses): on a GPU, step 2's kernels by
        // device time; elsewhere (the CPU, the stand-in) a line that says why not
        if (cuda) {
            assertTrue(out.matches("(?s).*\nDevice time of step 2 by kernel \\(CUDA events around each of its [0-9,]+ launches\\): [0-9.]+ ms busy.*"), out);
            assertTrue(out.contains("  share  calls  kernel\n") && out.contains("cublasGemmEx("), out);
        } else {
            assertTrue(out.contains("--profile-step 2: per-kernel device times need a GPU (--device cuda)"), out);
        }
        // loss goes down from the uniform-guess start (ln 257 = 5.55) within 6 steps
        assertTrue(straight.trainLosses().getFirst() > 5.0 && straight.trainLosses().getLast() < straight.trainLosses().getFirst(),
                straight.trainLosses().toString());

        Path b = tmp.resolve("b");
        BaseTrain.Result firstHalf = run(options(b, concat(device, "--save-every=3")), new ByteArrayOutputStream());
        assertEquals(straight.trainLosses(), firstHalf.trainLosses());
        Map<String, float[]> straightParams = Checkpoint.load(tmp.resolve("a"), 6).params();
        Files.delete(Checkpoint.metaFile(b, 6)); // only step 3 remains to resume from
        // as in a new process: the resumed half must take each GEMM shape's kernel and each attention check from the
        // checkpoint, not from memory
        if (cuda) {
            CudaBackend.get().gemmChooser().forget();
            CudaBackend.get().tensorCoreAttention().forget();
        }
        BaseTrain.Result resumed = run(options(b, concat(device, "--resume-from-step=3")), new ByteArrayOutputStream());
        if (cuda) {
            List<?> saved = (List<?>) Checkpoint.load(b, 3).meta().extra().get("gemm_choices");
            assertTrue(saved != null && !saved.isEmpty(), "the checkpoint names the GEMM kernels: " + saved);
            assertTrue(CudaBackend.get().gemmChooser().saved().containsAll(saved), CudaBackend.get().gemmChooser().saved() + " vs " + saved);
            List<?> checks = (List<?>) Checkpoint.load(b, 3).meta().extra().get("attention_checks");
            assertTrue(checks != null && checks.contains("fwd 32 tc"), "the checkpoint names the attention kernels: " + checks);
            assertEquals(checks, CudaBackend.get().tensorCoreAttention().saved(), "restored, not checked again");
        }
        assertEquals(straight.trainLosses().subList(3, 6), resumed.trainLosses(), "losses after resuming");
        assertEquals(straight.valBpb().get(6), resumed.valBpb().get(6));
        Map<String, float[]> resumedParams = Checkpoint.load(b, 6).params();
        for (Map.Entry<String, float[]> e : straightParams.entrySet()) {
            assertArrayEquals(e.getValue(), resumedParams.get(e.getKey()), e.getKey() + " differs after resume");
        }
    }

    @Test
    void samplesTheSevenPrompts() throws IOException {
        BaseTrain.Result r = run(options(tmp.resolve("s"), "--num-iterations=1", "--sample-every=1", "--eval-every=-1"),
                new ByteArrayOutputStream());
        assertEquals(7, r.samples().size());
        assertTrue(r.samples().getFirst().startsWith("The capital of France is"), r.samples().getFirst());
        assertEquals(Double.POSITIVE_INFINITY, r.minValBpb());
    }

    /** A bundle with one task of each CORE type (byte tokens, so prompts longer than 32 get cropped from the left). */
    static Path coreBundle(Path dir, String mcLines) throws IOException {
        Files.createDirectories(dir.resolve("eval_data/t"));
        Files.writeString(dir.resolve("core.yaml"), """
                icl_tasks:
                - {label: mc, dataset_uri: t/mc.jsonl, num_fewshot: [1], icl_task_type: multiple_choice}
                - {label: sc, dataset_uri: t/sc.jsonl, num_fewshot: [0], icl_task_type: schema}
                - {label: lm, dataset_uri: t/lm.jsonl, num_fewshot: [0], icl_task_type: language_modeling}
                """);
        Files.writeString(dir.resolve("eval_meta_data.csv"), "Eval Task,Task Category,Random baseline,Description\nmc,x,50,d\nsc,x,50,d\nlm,x,0,d\n");
        Files.writeString(dir.resolve("eval_data/t/mc.jsonl"), mcLines);
        Files.writeString(dir.resolve("eval_data/t/sc.jsonl"), """
                {"context_options":["the cat sat","the dog ran"],"continuation":"on a mat","gold":0}
                {"context_options":["a bird","the park"],"continuation":"sang","gold":0}
                """);
        Files.writeString(dir.resolve("eval_data/t/lm.jsonl"), """
                {"context":"the cat sat on","continuation":"a mat"}
                {"context":"then the dog ran to the","continuation":"park"}
                {"context":"where a bird","continuation":"sang"}
                """);
        return dir;
    }

    static final String MC = """
            {"query":"the cat sat on a","choices":["mat","park"],"gold":0}
            {"query":"the dog ran to the","choices":["sang","park"],"gold":1}
            {"query":"where a bird sang and then the dog ran to the park where a bird","choices":["sang","mat"],"gold":0}
            """;

    /** The loop's CORE (every 3 steps and at the end) is base-eval's CoreEval on the model the run saved. */
    @Test
    void coreMetricEveryNStepsAndAtTheEndIsBaseEvalsCore() throws IOException {
        Path bundle = coreBundle(tmp.resolve("bundle"), MC);
        Path ckpt = tmp.resolve("core");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BaseTrain.Result r = run(options(ckpt, "--core-metric-every=4", "--core-metric-max-per-task=2", "--bundle=" + bundle), log);
        String out = log.toString(StandardCharsets.UTF_8);
        assertEquals(List.of(4, 6), List.copyOf(r.core().keySet()), out);
        assertTrue(out.contains("Step 00004 | CORE metric: ") && out.contains("Step 00006 | CORE metric: "), out);

        GPT saved = new GPT(Checkpoint.load(ckpt, 6).meta().config());
        saved.loadStateDict(Checkpoint.load(ckpt, 6).params());
        CoreEval.Result direct = new CoreEval(new ModelScorer(saved), BaseTrain.encoderWithBos(BYTES))
                .run(CoreBundle.load(bundle), 2, label -> true, CoreBundle.OnBadLine.STOP, t -> {});
        assertEquals(3, direct.tasks().size());
        assertEquals(direct.core(), r.core().get(6), 0.0);
        assertEquals(direct.core(), ((Number) Checkpoint.load(ckpt, 6).meta().metrics().get("core_metric")).doubleValue(), 0.0);
        assertTrue(Files.readString(ckpt.resolve("metrics.jsonl")).contains("\"core_metric\""));
    }

    /** base-train's CORE with the examples split over 2 ranks (in-process ring) equals the one-process CORE. */
    @Test
    void coreSplitOverTwoRanksEqualsOneProcess() throws Exception {
        Path bundleDir = coreBundle(tmp.resolve("bundle2"), MC);
        CoreBundle bundle = CoreBundle.load(bundleDir);
        GPT model = GPT.create(GPTConfig.fromDepth(2, 32, 32, 32, "L", 257), 7);
        CoreEval core = new CoreEval(new ModelScorer(model), BaseTrain.encoderWithBos(BYTES));
        double single = core.run(bundle, -1, label -> true, CoreBundle.OnBadLine.STOP, t -> {}).core();
        List<Double> ranks = InProcessRing.run(2, "core", c -> BaseTrain.evaluateCore(core, bundle, -1, c));
        assertEquals(List.of(single, single), ranks);
    }

    /** A missing or malformed bundle stops the run before the first step, naming the file (and line). */
    @Test
    void aBadCoreBundleFailsBeforeTraining() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        IOException e = assertThrows(IOException.class, () -> run(options(tmp.resolve("m"), "--core-metric-every=2",
                "--bundle=" + tmp.resolve("nobundle")), log));
        assertTrue(e.getMessage().contains("nobundle") && e.getMessage().contains("--download-bundle"), e.getMessage());
        Path bad = coreBundle(tmp.resolve("bad"), MC + "{\"query\": oops\n");
        e = assertThrows(IOException.class, () -> run(options(tmp.resolve("m"), "--core-metric-every=2", "--bundle=" + bad), log));
        assertTrue(e.getMessage().contains("mc.jsonl") && e.getMessage().contains("line 4"), e.getMessage());
        assertTrue(!log.toString(StandardCharsets.UTF_8).contains("step 00001"), "no step may run before the bundle is checked");
    }

    /**
     * A device allocation failure mid-run (injected where the optimizer step starts, so no GPU is needed): one message
     * with the phase, the sizes, the flag to lower and the last complete checkpoint, which then resumes.
     */
    @Test
    void outOfDeviceMemoryInTheOptimizerNamesTheSizesAndTheIntactCheckpoint() throws IOException {
        Path c = tmp.resolve("oom");
        String m = failWithOutOfMemoryAt("the optimizer step of step 3", options(c, "--save-every=2", "--eval-every=-1"));
        assertTrue(m.startsWith("out of GPU memory during the optimizer step of step 3: allocating 3.00 GiB failed with 512.0 MiB free "
                + "of 141.00 GiB on the device (device batch 2 × 32 tokens); rerun with a smaller --device-batch-size (e.g. 1"), m);
        assertTrue(m.contains("the last checkpoint on disk, step 2 (" + Checkpoint.metaFile(c, 2) + "), is intact")
                && m.endsWith("--resume-from-step=2"), m);
        BaseTrain.Result resumed = run(options(c, "--save-every=2", "--eval-every=-1", "--resume-from-step=2"), new ByteArrayOutputStream());
        assertEquals(6, resumed.finalStep());
        assertEquals(4, resumed.trainLosses().size());

        // while a checkpoint is being written: the one before it is named, not the half-written one
        Path d = tmp.resolve("oom-save");
        m = failWithOutOfMemoryAt("saving checkpoint step 4 (model and optimizer state copied to the host)",
                options(d, "--save-every=2", "--eval-every=-1"));
        assertTrue(m.contains("during saving checkpoint step 4") && m.contains("step 2 (" + Checkpoint.metaFile(d, 2) + ")"), m);
        // before any checkpoint, and at device batch 1 (nothing left to halve)
        m = failWithOutOfMemoryAt("the forward/backward of step 1 (micro-step 1 of 2)",
                options(tmp.resolve("oom-start"), "--device-batch-size=1", "--total-batch-size=64", "--eval-every=-1"));
        assertTrue(m.contains("during the forward/backward of step 1 (micro-step 1 of 2)") && m.contains("--device-batch-size is already 1")
                && m.contains("no checkpoint had been saved yet in " + tmp.resolve("oom-start")), m);
        // while the model and its optimizer state are created: the batch is not the cause, the model's size is
        BaseTrainOptions small = options(tmp.resolve("oom-model"), "--eval-every=-1");
        long params = DepthDial.derive(small, BYTES.vocabSize()).config().numScalingParams().total();
        m = failWithOutOfMemoryAt("creating the model and optimizer on the CPU", small);
        assertTrue(m.startsWith("out of GPU memory during creating the model and optimizer on the CPU: allocating 3.00 GiB failed")
                && m.contains(String.format(java.util.Locale.ROOT, "the model alone needs about %s (its %,d parameters' fp32 weights, gradients and "
                        + "optimizer state, ~16 bytes each) before any activation: use a smaller --depth", CudaOutOfMemoryException.human(16 * params), params))
                && !m.contains("smaller --device-batch-size"), m);
        // CUDA's own allocation (cuBLAS's workspace at the first optimizer step): the call is named, not a size
        m = failWithOutOfMemoryAt("the optimizer step of step 1", options(tmp.resolve("oom-cublas"), "--eval-every=-1"),
                new CudaOutOfMemoryException("cublasSgemm(64x64x64)", -1, 1L << 29, 141L << 30));
        assertTrue(m.startsWith("out of GPU memory during the optimizer step of step 1: cublasSgemm(64x64x64) failed for lack of memory "
                + "with 512.0 MiB free of 141.00 GiB on the device"), m);
    }

    private static String failWithOutOfMemoryAt(String phase, BaseTrainOptions o) {
        return failWithOutOfMemoryAt(phase, o, new CudaOutOfMemoryException(3L << 30, 1L << 29, 141L << 30));
    }

    private static String failWithOutOfMemoryAt(String phase, BaseTrainOptions o, CudaOutOfMemoryException failure) {
        List<String> seen = new ArrayList<>();
        BaseTrainRun.phaseProbe = (rank, p) -> {
            seen.add(p);
            if (p.equals(phase)) throw failure;
        };
        try {
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> run(o, new ByteArrayOutputStream()));
            assertTrue(e.getCause() instanceof CudaOutOfMemoryException, e.toString());
            return e.getMessage();
        } finally {
            BaseTrainRun.phaseProbe = (rank, p) -> {};
            assertTrue(seen.contains(phase), "the run never entered '" + phase + "': " + seen);
        }
    }

    /**
     * Two ranks whose only difference is the device (one fell back to the CPU) stop at the handshake, each naming both
     * ranks and the field that differs, before any step.
     */
    @Test
    void ranksOnDifferentDevicesStopAtTheHandshakeNamingBoth() throws Exception {
        BaseTrainOptions cpu = options(tmp.resolve("mix"), "--device=cpu"), cuda = options(tmp.resolve("mix"), "--device=cuda");
        DepthDial dial = DepthDial.derive(cpu, BYTES.vocabSize());
        String cpuPrint = BaseTrain.fingerprint(cpu, dial, BYTES), cudaPrint = BaseTrain.fingerprint(cuda, dial, BYTES);
        List<Object> res = InProcessRing.runCollecting(2, 1, r -> r == 0 ? cudaPrint : cpuPrint, Duration.ofSeconds(30), c -> {
            c.barrier(); // base-train's first collective
            return "completed";
        });
        // auto --overlap-reduce follows the device: the optimizer split differs with it
        assertTrue(((Throwable) res.get(0)).getMessage().startsWith("ranks 1 and 0 disagree on device=CPU vs device=CUDA, "
                + "optimizer=sharded vs optimizer=replicated: "), res.get(0).toString());
        assertTrue(((Throwable) res.get(1)).getMessage().startsWith("ranks 0 and 1 disagree on device=CUDA vs device=CPU, "
                + "optimizer=replicated vs optimizer=sharded: "), res.get(1).toString());
        String fp32 = BaseTrain.fingerprint(options(tmp.resolve("mix"), "--device=cpu", "--precision=fp32"), dial, BYTES);
        assertEquals(cpuPrint.replace("; precision=bf16;", "; precision=fp32;"), fp32, "the matmul precision is agreed on too");
        String fp32Saves = BaseTrain.fingerprint(options(tmp.resolve("mix"), "--device=cpu", "--no-bf16-activations"), dial, BYTES);
        assertEquals(cpuPrint.replace("; bf16 activations=true;", "; bf16 activations=false;"), fp32Saves, "and the saved activations' form");
    }

    /**
     * A rank whose GPU fails mid-run (a CUDA error injected into rank 1's step 2) stops the other rank with an error
     * naming it and the CUDA error, within seconds instead of the job's timeout.
     */
    @Test
    void aRankWhoseDeviceFailsStopsTheOthersNamingIt() throws Exception {
        Path data = tmp.resolve("data2");
        Files.createDirectories(data);
        String docs = Files.readString(data(shared).resolve("part_0.jsonl"));
        Files.writeString(data.resolve("a_train.jsonl"), docs.repeat(8)); // 2,400 lines: row groups of 1,024 for both ranks
        Files.writeString(data.resolve("z_val.jsonl"), docs);
        BaseTrainOptions o = options(tmp.resolve("dead"), "--eval-every=-1", "--total-batch-size=128", "--data=" + data);
        DepthDial dial = DepthDial.derive(o, BYTES.vocabSize());
        BaseTrainRun.phaseProbe = (rank, p) -> {
            if (rank == 1 && p.startsWith("the forward/backward of step 2")) {
                throw new CudaException("cuLaunchKernel(attn_fwd): CUDA_ERROR_ILLEGAL_ADDRESS (an illegal memory access was encountered)", 700);
            }
        };
        long t0 = System.nanoTime();
        List<Object> res;
        try {
            res = InProcessRing.runCollecting(2, 1, r -> BaseTrain.fingerprint(o, dial, BYTES), Duration.ofSeconds(120),
                    c -> Job.runOn(c, new PrintStream(new ByteArrayOutputStream()), (comm, log) -> BaseTrain.run(o, dial, BYTES, log, comm)));
        } finally {
            BaseTrainRun.phaseProbe = (rank, p) -> {};
        }
        double seconds = (System.nanoTime() - t0) / 1e9;
        Object failed = res.get(1);
        assertInstanceOf(CudaException.class, failed, () -> "rank 1: " + failed + (failed instanceof Throwable t ? " caused by " + t.getCause() : ""));
        CollectiveException e = assertInstanceOf(CollectiveException.class, res.get(0), "rank 0 must fail, not finish or hang");
        assertTrue(e.getMessage().contains("rank 1 failed: ") && e.getMessage().contains("CUDA_ERROR_ILLEGAL_ADDRESS"), e.getMessage());
        assertTrue(seconds < 60, "took " + seconds + " s: rank 0 waited for the timeout instead of the abort");
    }

    @Test
    void badInputGetsClearMessages() throws IOException {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> run(options(tmp.resolve("x"), "--device-batch-size=3"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("not a multiple of --device-batch-size") && e.getMessage().contains("3 × 32 = 96"), e.getMessage());

        e = assertThrows(IllegalArgumentException.class,
                () -> run(options(tmp.resolve("x"), "--resume-from-step=5"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("--resume-from-step 5") && e.getMessage().contains("does not exist"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> run(options(tmp.resolve("x"), "--data=" + tmp.resolve("nodata")), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("nodata") && e.getMessage().contains("--data DIR") && e.getMessage().contains("nanochat4j dataset -n"),
                e.getMessage());

        Path c = tmp.resolve("c");
        run(options(c, "--num-iterations=1", "--eval-every=-1"), new ByteArrayOutputStream());
        e = assertThrows(IllegalArgumentException.class,
                () -> run(options(c, "--resume-from-step=4"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("available steps: 000001"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> run(options(c, "--depth=3", "--resume-from-step=1"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("different model") && e.getMessage().contains("n_layer=2") && e.getMessage().contains("n_layer=3"),
                e.getMessage());
        Files.delete(c.resolve("optim_000001_rank0.safetensors"));
        e = assertThrows(IllegalArgumentException.class, () -> run(options(c, "--resume-from-step=1"), new ByteArrayOutputStream()));
        assertTrue(e.getMessage().contains("no optimizer state optim_000001_rank0.safetensors"), e.getMessage());
    }
}
