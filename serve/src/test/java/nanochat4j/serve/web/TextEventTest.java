package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

class TextEventTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    private static ObjectNode chunk(String content) {
        ObjectNode c = JSON.createObjectNode();
        c.put("id", "chatcmpl-1").put("object", "chat.completion.chunk").put("created", 7).put("model", "m").putNull("system_fingerprint");
        c.putArray("choices").addObject().put("index", 0).putNull("finish_reason").putObject("delta").put("content", content);
        return c;
    }

    /** Every piece's event is byte for byte what Jackson writes for the whole event, escapes included. */
    @Test
    void writesTheSameBytesAsJacksonForTheWholeEvent() throws Exception {
        TextEvent event = new TextEvent(JSON, chunk(TextEvent.PLACEHOLDER));
        for (String text : List.of("", "Hello", " a \"quoted\" \\ back\\slash", "line\nbreak\ttab\r", "\u0001\u0000\u001f",
                "héllo wörld", "数学", "🙂 emoji", "</script><b>", "\u2028\u2029", "\uFFFD")) {
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            event.write(got, text);
            String want = "data: " + JSON.writeValueAsString(chunk(text)) + "\n\n";
            assertEquals(want, got.toString(StandardCharsets.UTF_8), "text " + text);
            assertEquals(text, JSON.readTree(got.toString(StandardCharsets.UTF_8).substring(6)).at("/choices/0/delta/content").asText());
        }
    }

    @Test
    void aTemplateMustHoldThePlaceholderExactlyOnce() {
        var none = assertThrows(IllegalArgumentException.class, () -> new TextEvent(JSON, chunk("no placeholder")));
        assertTrue(none.getMessage().contains("exactly once"), none.getMessage());
        ObjectNode twice = chunk(TextEvent.PLACEHOLDER).put("model", TextEvent.PLACEHOLDER);
        assertThrows(IllegalArgumentException.class, () -> new TextEvent(JSON, twice));
    }
}
