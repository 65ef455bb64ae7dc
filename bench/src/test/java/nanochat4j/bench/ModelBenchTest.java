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

class ModelBenchTest {
    @Test
    void benchModelPrintsOneJsonObjectWithTheAgreedKeys() throws Exception {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        CommandLine cl = Main.commandLine();
        ModelBench bench = cl.getSubcommands().get("bench").getSubcommands().get("model").getCommand();
        bench.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        int rc = cl.execute("bench", "model", "--depth", "1", "--batch", "2", "--seq", "32", "--vocab", "300",
                "--warmup", "1", "--iters", "3", "--json");
        assertEquals(0, rc);
        String[] lines = buf.toString(StandardCharsets.UTF_8).strip().split("\n");
        assertEquals(1, lines.length);
        JsonNode j = new ObjectMapper().readTree(lines[0]);
        assertEquals(1, j.get("depth").asInt());
        assertEquals(2, j.get("batch").asInt());
        assertEquals(32, j.get("seq").asInt());
        for (String k : new String[] {"fwd_s", "fwdbwd_s", "tok_per_sec", "gflops"}) assertTrue(j.get(k).asDouble() > 0, k);
        // no comparison of the two timings: at this size they are microseconds of noise on a shared machine
        assertTrue(j.has("activations_mb") && j.get("live_heap_mb").asDouble() > 0, lines[0]);
        assertEquals(64.0, j.get("tok_per_sec").asDouble() * j.get("fwdbwd_s").asDouble(), 0.5);
    }

    @Test
    void benchModelHumanOutputNamesTheFigures() {
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        CommandLine cl = Main.commandLine();
        ModelBench bench = cl.getSubcommands().get("bench").getSubcommands().get("model").getCommand();
        bench.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        assertEquals(0, cl.execute("bench", "model", "--depth", "1", "--batch", "1", "--seq", "16", "--vocab", "100",
                "--warmup", "0", "--iters", "1"));
        String s = buf.toString(StandardCharsets.UTF_8);
        assertTrue(s.contains("forward+backward") && s.contains("GFLOP/s") && s.contains("tok/s"), s);
    }
}
