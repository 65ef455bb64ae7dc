package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class ServeBenchTest {
    @Test
    void oneJsonLinePerConcurrencyWithTimingsAndTheOverhead() throws Exception {
        ServeBench b = new ServeBench();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        b.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        assertEquals(0, new CommandLine(b).execute("--depth", "1", "--seq", "128", "--streams", "1,3", "--max-tokens", "6", "--json"));
        List<String> lines = buf.toString(StandardCharsets.UTF_8).strip().lines().toList();
        assertEquals(2, lines.size(), lines.toString());
        ObjectMapper json = new ObjectMapper();
        JsonNode one = json.readTree(lines.get(0)), three = json.readTree(lines.get(1));
        assertEquals(1, one.get("streams").asInt());
        assertEquals(3, three.get("streams").asInt());
        assertTrue(one.has("overhead_pct") && one.get("engine_tok_per_sec").asDouble() > 0, one.toString());
        assertTrue(three.get("ttft_ms_median").asDouble() > 0 && three.get("tok_per_sec_total").asDouble() > 0, three.toString());
        assertTrue(three.get("tokens").asInt() <= 18, three.toString());
    }

    @Test
    void theSyntheticTokenizerHasNanochatsVocabulary() {
        assertEquals(32768, ServeBench.syntheticTokenizer().vocabSize());
    }
}
