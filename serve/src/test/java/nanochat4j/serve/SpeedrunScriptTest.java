package nanochat4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * runs/speedrun.sh's stage list without a GPU: the script runs against a stand-in launcher that records each command
 * line, and every recorded line must parse with this build's real command line — so a flag the script passes that a
 * command does not have (or a renamed stage) fails here, not hours into a GPU run.
 */
class SpeedrunScriptTest {
    private static final Path SCRIPT = Path.of("..").toAbsolutePath().normalize().resolve("runs/speedrun.sh");

    @TempDir
    Path tmp;

    @Test
    void everyStageGetsTheGpuAndThePrecisionAndParsesWithTheRealCommands() throws Exception {
        assumeTrue(Files.isReadable(SCRIPT), "skipped: runs/speedrun.sh not found at " + SCRIPT);
        Files.createDirectories(tmp.resolve("runs"));
        Files.copy(SCRIPT, tmp.resolve("runs/speedrun.sh"));
        Path calls = tmp.resolve("calls.txt");
        // the stand-in: records its arguments, and its --help offers --device and --precision as every chat stage does
        Path fake = tmp.resolve("nanochat4j");
        Files.writeString(fake, "#!/usr/bin/env bash\nif [ \"${2:-}\" = --help ]; then echo '--device --precision'; exit 0; fi\n"
                + "printf '%s\\n' \"$*\" >> '" + calls + "'\n");
        Files.setPosixFilePermissions(fake, PosixFilePermissions.fromString("rwxr-xr-x"));
        ProcessBuilder pb = new ProcessBuilder("bash", tmp.resolve("runs/speedrun.sh").toString(), "--quick", "--rl", "--precision", "fp32",
                "--data", tmp.resolve("data").toString()).redirectErrorStream(true);
        pb.environment().put("CUDA_VISIBLE_DEVICES", "0");
        pb.environment().put("NANOCHAT_BASE_DIR", tmp.resolve("base").toString());
        Process p = pb.start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "speedrun.sh hangs");
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.exitValue(), out);
        List<String> lines = Files.readAllLines(calls);
        List<String> stages = lines.stream().map(l -> l.split(" ")[0]).toList();
        assertEquals(List.of("--version", "tok-train", "tok-eval", "base-train", "base-eval", "chat-data", "chat-sft", "chat-eval", "chat-rl",
                "chat-eval", "report"), stages, out);
        for (String l : lines) {
            String[] args = l.split(" ");
            if (!args[0].startsWith("-")) Nanochat4j.commandLine().parseArgs(args);   // throws on a flag the command lacks
            if (List.of("base-train", "chat-sft", "chat-eval", "chat-rl").contains(args[0])) {
                assertTrue(l.contains("--device cuda"), "on the GPU: " + l);
            }
            if (List.of("base-train", "base-eval", "chat-sft", "chat-eval", "chat-rl").contains(args[0])) {
                assertTrue(l.contains("--precision fp32"), "at the run's precision: " + l);
            }
        }
        assertTrue(lines.contains("chat-eval -i rl -g d12 -a GSM8K --device cuda --precision fp32"), String.join("\n", lines));
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("base-train ") && l.contains("--depth 12")), String.join("\n", lines));
    }
}
