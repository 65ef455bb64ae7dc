package nanochat4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * runs/scaling_laws.sh and runs/miniseries.sh against a stand-in launcher that records each command line: the loops
 * over budgets and depths, every line parsing with this build's real command line, finished runs skipped, a failed run
 * named at the end without stopping the sweep, and the GPU's workers and sizes.
 */
class SweepScriptsTest {
    private static final Path RUNS = Path.of("..").toAbsolutePath().normalize().resolve("runs");

    @TempDir
    Path tmp;

    private record Result(int exit, String out, List<String> calls) {}

    private Result run(Map<String, String> env, String script, String... args) throws Exception {
        assumeTrue(Files.isReadable(RUNS.resolve(script)), "skipped: runs/" + script + " not found at " + RUNS);
        Files.createDirectories(tmp.resolve("runs"));
        for (String f : List.of(script, "sweep-lib.sh")) {
            Files.copy(RUNS.resolve(f), tmp.resolve("runs").resolve(f), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }
        Files.createDirectories(tmp.resolve("data"));
        Path calls = tmp.resolve("calls.txt");
        Files.deleteIfExists(calls);
        // the stand-in: records its arguments; fails the run whose tag is $FAIL_TAG; a run leaves its checkpoint files
        Path fake = tmp.resolve("nanochat4j");
        Files.writeString(fake, "#!/usr/bin/env bash\nprintf '%s\\n' \"$*\" >> '" + calls + "'\n"
                + "if [ -n \"${FAIL_TAG:-}\" ] && [[ \" $* \" == *\" $FAIL_TAG \"* ]]; then echo 'out of memory' >&2; exit 3; fi\n"
                + "prev=; for a in \"$@\"; do if [ \"$prev\" = --model-tag ]; then d=\"$NANOCHAT_BASE_DIR/base_checkpoints/$a\"; mkdir -p \"$d\"; "
                + "touch \"$d/meta_000010.json\" \"$d/model_000010.safetensors\" \"$d/optim_000010_rank0.safetensors\"; fi; prev=$a; done\n");
        Files.setPosixFilePermissions(fake, PosixFilePermissions.fromString("rwxr-xr-x"));
        List<String> cmd = new java.util.ArrayList<>(List.of("bash", tmp.resolve("runs").resolve(script).toString()));
        cmd.addAll(Arrays.asList(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().remove("CUDA_VISIBLE_DEVICES");
        pb.environment().put("NANOCHAT_BASE_DIR", tmp.resolve("base").toString());
        pb.environment().putAll(env);
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), script + " hangs");
        String out = new String(p.getInputStream().readAllBytes());
        return new Result(p.exitValue(), out, Files.exists(calls) ? Files.readAllLines(calls) : List.of());
    }

    /** Parses every recorded command with the real command line (a launch's inner command too); throws on an unknown flag. */
    private static void parsesWithTheRealCommands(List<String> lines) {
        for (String l : lines) {
            String[] args = l.split(" ");
            if (args[0].startsWith("-")) continue;
            Nanochat4j.commandLine().parseArgs(args);
            if (args[0].equals("launch")) Nanochat4j.commandLine().parseArgs(Arrays.copyOfRange(args, 3, args.length));
        }
    }

    @Test
    void scalingLawsOnTheCpuRunsEveryBudgetAndDepthSkipsFinishedOnesAndNamesAFailure() throws Exception {
        Path done = Files.createDirectories(tmp.resolve("base/base_checkpoints/scaling_t_1e13_d2"));
        Files.writeString(done.resolve("meta_000103.json"), "{}");
        Result r = run(Map.of("DEVICE", "cpu", "FAIL_TAG", "scaling_t_3e13_d1"), "scaling_laws.sh", "--label", "t", "--data",
                tmp.resolve("data").toString());
        assertEquals(1, r.exit(), r.out());
        assertTrue(r.out().contains("1 run(s) failed") && r.out().contains("scaling_t_3e13_d1"), r.out());
        assertTrue(r.out().contains("scaling_t_1e13_d2 already finished"), r.out());
        List<String> train = r.calls().stream().filter(l -> l.startsWith("base-train ")).toList();
        assertEquals(11, train.size(), String.join("\n", r.calls())); // 3 budgets × 4 depths, one finished
        for (String l : train) {
            assertTrue(l.contains("--device cpu") && l.contains("--target-param-data-ratio -1") && l.contains("--eval-every 999999")
                    && l.contains("--save-every -1") && l.contains("--core-metric-every -1"), l);
        }
        assertTrue(train.contains("base-train --depth 4 --device cpu --head-dim 64 --window-pattern L --max-seq-len 256 --device-batch-size 8 "
                + "--total-batch-size 2048 --warmup-steps 10 --target-flops 1e14 --target-param-data-ratio -1 --model-tag scaling_t_1e14_d4 "
                + "--data " + tmp.resolve("data") + " --eval-every 999999 --eval-tokens 65536 --core-metric-every -1 --sample-every -1 "
                + "--save-every -1"), String.join("\n", train));
        assertTrue(r.calls().contains("tok-train --data " + tmp.resolve("data") + " --vocab-size 2048"), String.join("\n", r.calls()));
        // the analysis runs after a failure too, over what finished
        assertEquals("scaling --prefix scaling_t_ --out " + tmp.resolve("base/scaling_t_results"), r.calls().getLast());
        assertTrue(Files.exists(tmp.resolve("base/base_checkpoints/scaling_t_1e14_d4/model_000010.safetensors")), "weights kept by default");
        parsesWithTheRealCommands(r.calls());
    }

    @Test
    void aMiniseriesOnTwoGpusRunsEachDepthAsTwoWorkersAtNanochatsSizesWithCore() throws Exception {
        Files.createDirectories(tmp.resolve("base/tokenizer"));
        Files.writeString(tmp.resolve("base/tokenizer/tokenizer.bpe"), "");
        Result r = run(Map.of("DEVICE", "cuda", "CUDA_VISIBLE_DEVICES", "0,1", "DEPTHS", "12 20 28", "KEEP_WEIGHTS", "0"),
                "miniseries.sh", "s1", "--data", tmp.resolve("data").toString());
        assertEquals(0, r.exit(), r.out());
        assertTrue(r.calls().stream().noneMatch(l -> l.startsWith("tok-train")), "the tokenizer there is kept: " + r.calls());
        List<String> train = r.calls().stream().filter(l -> l.startsWith("launch ")).toList();
        assertEquals(3, train.size(), String.join("\n", r.calls()));
        for (String l : train) {
            assertTrue(l.startsWith("launch --nproc 2 base-train ") && l.contains("--device cuda") && l.contains("--target-param-data-ratio 12")
                    && l.contains("--core-metric-every 999999 --core-metric-max-per-task -1"), l);
        }
        assertTrue(train.get(0).contains("--depth 12 ") && train.get(0).contains("--device-batch-size 32 ")
                && train.get(0).contains("--model-tag s1_miniseries_d12"), train.get(0));
        assertTrue(train.get(1).contains("--device-batch-size 16 ") && train.get(2).contains("--device-batch-size 8 "), String.join("\n", train));
        assertEquals("scaling --prefix s1_miniseries_ --out " + tmp.resolve("base/s1_miniseries_results"), r.calls().getLast());
        Path d20 = tmp.resolve("base/base_checkpoints/s1_miniseries_d20");
        assertTrue(Files.exists(d20.resolve("meta_000010.json")), "KEEP_WEIGHTS=0 keeps the meta file `scaling` reads");
        assertTrue(!Files.exists(d20.resolve("model_000010.safetensors")) && !Files.exists(d20.resolve("optim_000010_rank0.safetensors")),
                "KEEP_WEIGHTS=0 deletes the weights and optimizer state");
        parsesWithTheRealCommands(r.calls());
    }

    @Test
    void anUnknownArgumentOrDeviceIsRefused() throws Exception {
        Result r = run(Map.of("DEVICE", "cpu"), "scaling_laws.sh", "--depth", "3");
        assertEquals(2, r.exit(), r.out());
        assertTrue(r.out().contains("unknown argument --depth"), r.out());
        Result d = run(Map.of("DEVICE", "tpu"), "miniseries.sh");
        assertEquals(2, d.exit(), d.out());
        assertTrue(d.out().contains("DEVICE=tpu: cpu or cuda"), d.out());
    }
}
