package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class InferBenchTest {
    @Test
    void jsonReportHasEveryKeyWithPlausibleValues() throws Exception {
        InferBench b = new InferBench();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        b.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        int code = new CommandLine(b).execute("--depth", "1", "--vocab", "512", "--seq", "64", "--prompt-tokens", "8",
                "--decode-tokens", "8", "--iters", "1", "--bandwidth-mb", "32", "--json");
        assertEquals(0, code);
        JsonNode j = new ObjectMapper().readTree(buf.toString(StandardCharsets.UTF_8));
        for (String k : new String[] {"depth", "prefill_ms", "decode_tok_per_sec", "batch8_tok_per_sec", "weights_gb_per_s", "mem_bw_gb_per_s"}) {
            assertTrue(j.has(k), k);
        }
        assertEquals(1, j.get("depth").asInt());
        assertTrue(j.get("decode_tok_per_sec").asDouble() > 0 && j.get("mem_bw_gb_per_s").asDouble() > 0, j.toString());
        assertEquals("fp32", j.get("weights").asText());
    }

    @Test
    void bf16WeightsAreReportedAndAnotherValueIsRejected() throws Exception {
        InferBench b = new InferBench();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        b.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        int code = new CommandLine(b).execute("--depth", "1", "--vocab", "512", "--seq", "64", "--prompt-tokens", "8",
                "--decode-tokens", "8", "--iters", "1", "--bandwidth-mb", "32", "--weights", "bf16", "--json");
        assertEquals(0, code);
        JsonNode j = new ObjectMapper().readTree(buf.toString(StandardCharsets.UTF_8));
        assertEquals("bf16", j.get("weights").asText());
        assertTrue(j.get("weights_gb_per_s").asDouble() > 0, j.toString());

        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new InferBench());
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--weights", "int8"));
        assertTrue(err.toString().contains("Invalid value for option '--weights'") && err.toString().contains("'int8'"), err.toString());
    }
}
