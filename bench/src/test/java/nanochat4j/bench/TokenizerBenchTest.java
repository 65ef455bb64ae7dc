package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerBenchTest {

    @Test
    void benchTokenizerPrintsTheJsonKeysOnATinyInput(@TempDir Path dir) throws Exception {
        Path data = Files.createDirectories(dir.resolve("books"));
        Files.writeString(data.resolve("one.txt"), "Hello world, hello tokenizer! 12345 naïve café 你好 🙂\n\n".repeat(50));
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        int code;
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            code = Main.commandLine().execute("bench", "tokenizer", "--data", dir.toString(), "--mb", "0.05",
                    "--vocab-size", "320", "--encode-mb", "0.02", "--json");
        } finally {
            System.setOut(old);
        }
        assertEquals(0, code, out.toString(StandardCharsets.UTF_8));
        String text = out.toString(StandardCharsets.UTF_8).trim();
        JsonNode j = new ObjectMapper().readTree(text.substring(text.lastIndexOf('{')));
        for (String key : new String[] {"train_mb", "train_s", "encode_mb_per_s", "decode_mb_per_s"}) {
            assertTrue(j.has(key) && j.get(key).asDouble() > 0, key + " in " + text);
        }
        assertTrue(j.get("train_mb").asDouble() >= 0.05, "the text is repeated up to --mb: " + text);
        int vocab = j.get("vocab_size").asInt();
        assertTrue(vocab > 265 && vocab <= 320, "at most the asked 320 (this tiny text runs out of pairs first): " + vocab);
    }
}
