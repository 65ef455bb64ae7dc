package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class TrainBenchTest {
    private static String run(String... args) {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        CommandLine cl = Main.commandLine();
        TrainBench bench = cl.getSubcommands().get("bench").getSubcommands().get("train").getCommand();
        bench.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        assertEquals(0, cl.execute(args));
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void benchTrainPrintsOneJsonObjectWithTheAgreedKeys() throws Exception {
        String[] lines = run("bench", "train", "--depth", "2", "--batch", "2", "--seq", "32", "--vocab", "300",
                "--warmup", "1", "--iters", "5", "--json").strip().split("\n");
        assertEquals(1, lines.length);
        JsonNode j = new ObjectMapper().readTree(lines[0]);
        assertEquals(2, j.get("depth").asInt());
        assertEquals(2, j.get("batch").asInt());
        assertEquals(32, j.get("seq").asInt());
        double stepS = j.get("step_s").asDouble(), tps = j.get("tok_per_sec").asDouble(), rss = j.get("peak_rss_gb").asDouble();
        assertTrue(stepS > 0 && stepS < 60, lines[0]);
        assertEquals(64.0, tps * stepS, 0.5, "tok/s × s/step = tokens per step");
        long deopts = j.get("deopts").asLong();
        assertTrue(deopts >= 0 && deopts < Deopts.STORM, "deoptimizations in the timed steps: " + lines[0]);
        // a JVM with a loaded model needs tens of MB at least and, for this toy, far less than 64 GB
        assertTrue(rss > 0.02 && rss < 64, lines[0]);
        // a step does work on the CPU: the process's CPU seconds for it are positive (0 only where the JVM cannot tell)
        assertTrue(j.get("cpu_s_per_step").asDouble() > 0, lines[0]);
    }

    @Test
    void benchTrainHumanOutputNamesTheFigures() {
        String s = run("bench", "train", "--depth", "1", "--batch", "1", "--seq", "16", "--vocab", "100", "--warmup", "0", "--iters", "1");
        assertTrue(s.contains("tok/s") && s.contains("step") && s.contains("peak memory"), s);
    }
}
