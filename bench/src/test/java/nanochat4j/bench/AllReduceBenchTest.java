package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import nanochat4j.train.collective.Launcher;
import org.junit.jupiter.api.Test;

/** {@code bench allreduce} end to end: a child JVM launches two workers and prints the agreed JSON. */
class AllReduceBenchTest {

    @Test
    void benchAllreducePrintsOneObjectPerSizeAndTheLatency() throws Exception {
        List<String> cmd = new ArrayList<>(Launcher.thisJvmCommand());
        int main = cmd.indexOf("-cp") >= 0 ? cmd.indexOf("-cp") : cmd.indexOf("-jar");
        cmd.subList(main, cmd.size()).clear();
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(),
                "bench", "allreduce", "--nproc", "2", "--size", "0.0625", "--json"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(false).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "bench allreduce did not finish");
        assertEquals(0, p.exitValue(), out + err);
        String[] lines = out.strip().split("\n");
        assertEquals(8, lines.length, out); // 1, 2, 4, … 64 KB, then the latency
        ObjectMapper json = new ObjectMapper();
        for (int i = 0; i < 7; i++) {
            JsonNode j = json.readTree(lines[i]);
            assertEquals(2, j.get("nproc").asInt());
            assertEquals((1 << i) / 1024.0, j.get("size_mb").asDouble(), 1e-12, lines[i]);
            for (String key : new String[] {"bus_gbps", "memcpy_gbps", "heap_bus_gbps", "time_us", "heap_time_us"})
                assertTrue(j.get(key).asDouble() > 0, key + " in " + lines[i]);
            // with two ranks bus bandwidth = size / time (nccl-tests)
            assertEquals(j.get("size_mb").asDouble() * (1 << 20) / (j.get("time_us").asDouble() * 1e3),
                    j.get("bus_gbps").asDouble(), 0.01 * j.get("bus_gbps").asDouble() + 1e-3, lines[i]);
        }
        JsonNode latency = json.readTree(lines[7]);
        assertTrue(latency.get("latency_us").asDouble() > 0, lines[7]);
    }
}
