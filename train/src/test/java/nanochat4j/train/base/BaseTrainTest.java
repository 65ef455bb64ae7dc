package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
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
import nanochat4j.model.checkpoint.Checkpoint;
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
                "--warmup-steps=2", "--eval-every=3", "--eval-tokens=128", "--sample-every=-1",
                "--data=" + data(shared), "--checkpoint-dir=" + ckpt));
        args.addAll(List.of(extra));
        BaseTrainOptions o = new BaseTrainOptions();
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args.toArray(String[]::new));
        return o;
    }

    static BaseTrain.Result run(BaseTrainOptions o, ByteArrayOutputStream log) throws IOException {
        return BaseTrain.run(o, BYTES, new PrintStream(log, true, StandardCharsets.UTF_8));
    }

    /**
     * Bitwise resume. The kernels' vector EXP/TANH and lane reductions give different last bits when C2 has
     * intrinsified them than in the interpreter or C1, so two runs in one JVM can differ wherever the JIT changed
     * tiers in between. The check therefore runs in a child JVM with the Vector API intrinsics off
     * ({@code -XX:-EnableVectorSupport}): the same math in every tier, hence a fair bitwise comparison.
     */
    @Test
    void resumingFromAMidRunCheckpointGivesIdenticalLossesAndParameters() throws Exception {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString()));
        for (String a : java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("--add-") || a.startsWith("--enable-native") || a.startsWith("--sun-misc") || a.startsWith("-Xss")
                    || a.startsWith("-Dshared.dir")) cmd.add(a);
        }
        cmd.addAll(List.of("-XX:+UnlockExperimentalVMOptions", "-XX:-EnableVectorSupport", "-cp", System.getProperty("java.class.path"),
                ResumeCheck.class.getName(), tmp.toString(), data(shared).toString()));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(300, java.util.concurrent.TimeUnit.SECONDS));
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("RESUME OK"), out);
    }

    /** The resume scenario, run in a child JVM by the test above. */
    public static final class ResumeCheck {
        public static void main(String[] args) throws Exception {
            Path tmp = Path.of(args[0]);
            BaseTrainTest t = new BaseTrainTest();
            shared = Path.of(args[1]).getParent();
            t.tmp = tmp;
            t.resumeScenario();
            System.out.println("RESUME OK");
            System.exit(0);
        }
    }

    void resumeScenario() throws IOException {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BaseTrain.Result straight = run(options(tmp.resolve("a")), log);
        assertEquals(6, straight.trainLosses().size());
        assertEquals(6, straight.finalStep());
        String out = log.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("step 00006/00006 (100.00%) | loss: ") && out.contains("tok/sec") && out.contains("mfu"), out);
        assertTrue(out.contains("Step 00000 | Validation bpb") && out.contains("Step 00006 | Validation bpb"), out);
        assertEquals(List.of(0, 3, 6), List.copyOf(straight.valBpb().keySet()));
        assertTrue(Files.size(tmp.resolve("a/base_train.png")) > 1000);
        assertTrue(Files.readString(tmp.resolve("a/metrics.jsonl")).contains("\"val_bpb\""));
        // loss goes down from the uniform-guess start (ln 257 = 5.55) within 6 steps
        assertTrue(straight.trainLosses().getFirst() > 5.0 && straight.trainLosses().getLast() < straight.trainLosses().getFirst(),
                straight.trainLosses().toString());

        Path b = tmp.resolve("b");
        BaseTrain.Result firstHalf = run(options(b, "--save-every=3"), new ByteArrayOutputStream());
        assertEquals(straight.trainLosses(), firstHalf.trainLosses());
        Map<String, float[]> straightParams = Checkpoint.load(tmp.resolve("a"), 6).params();
        Files.delete(Checkpoint.metaFile(b, 6)); // only step 3 remains to resume from
        BaseTrain.Result resumed = run(options(b, "--resume-from-step=3"), new ByteArrayOutputStream());
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
