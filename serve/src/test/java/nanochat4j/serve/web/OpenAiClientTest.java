package nanochat4j.serve.web;

import static nanochat4j.serve.web.TestServers.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What the official OpenAI Python client sends and expects. The two requests in the test resources were recorded
 * byte for byte from openai-python 3.22.1 ({@code client.chat.completions.create(...)} without and with
 * {@code stream=True, stream_options={"include_usage": True}}); they are replayed on a socket and the replies are
 * checked for every field the client's response models require. With {@code -Dopenai.python=<python with openai>},
 * the real client also runs against the server.
 */
class OpenAiClientTest {
    static final String MODEL = "nanochat4j-test-d4";
    static ChatServer server;

    @BeforeAll
    static void start() throws Exception {
        server = TestServers.start(TestServers.config("sk-test-123", null, 0), TestServers.engines(1));
    }

    @AfterAll
    static void stop() {
        server.close();
    }

    /** A parsed HTTP/1.1 response (chunked bodies joined). */
    record Http(int status, Map<String, String> headers, String body) {}

    static Http replay(String resource) throws IOException {
        byte[] recorded;
        try (InputStream in = OpenAiClientTest.class.getResourceAsStream(resource)) {
            assertNotNull(in, resource);
            recorded = in.readAllBytes();
        }
        String text = new String(recorded, StandardCharsets.UTF_8)
                .replace("Host: 127.0.0.1:8000", "Host: 127.0.0.1:" + server.url().getPort())
                .replace("Connection: keep-alive", "Connection: close");
        try (Socket s = new Socket(server.url().getHost(), server.url().getPort())) {
            s.setSoTimeout(60_000);
            s.getOutputStream().write(text.getBytes(StandardCharsets.UTF_8));
            s.getOutputStream().flush();
            return read(s.getInputStream());
        }
    }

    static Http read(InputStream in) throws IOException {
        String status = line(in);
        Map<String, String> headers = new LinkedHashMap<>();
        for (String l = line(in); !l.isEmpty(); l = line(in)) {
            int c = l.indexOf(':');
            headers.put(l.substring(0, c).strip().toLowerCase(Locale.ROOT), l.substring(c + 1).strip());
        }
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        if ("chunked".equalsIgnoreCase(headers.get("transfer-encoding"))) {
            for (int n = Integer.parseInt(line(in).strip(), 16); n > 0; n = Integer.parseInt(line(in).strip(), 16)) {
                body.write(in.readNBytes(n));
                line(in);
            }
        } else {
            body.write(in.readNBytes(Integer.parseInt(headers.get("content-length"))));
        }
        return new Http(Integer.parseInt(status.split(" ")[1]), headers, body.toString(StandardCharsets.UTF_8));
    }

    private static String line(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) throw new IOException("connection closed inside a line: " + sb);
            if (c != '\r') sb.append((char) c);
        }
        return sb.toString();
    }

    /** openai-python's ChatCompletion / ChatCompletionChunk: required fields and their types. */
    static void assertCompletionShape(JsonNode j, String object) {
        assertEquals(object, j.get("object").asText(), j.toString());
        assertTrue(j.get("id").isTextual() && j.get("created").isIntegralNumber() && j.get("model").isTextual(), j.toString());
        assertTrue(j.get("choices").isArray(), j.toString());
        for (JsonNode c : j.get("choices")) {
            assertTrue(c.get("index").isInt(), c.toString());
            JsonNode finish = c.get("finish_reason");
            assertTrue(finish == null || finish.isNull() || Set.of("stop", "length").contains(finish.asText()), c.toString());
        }
    }

    @Test
    void theRecordedNonStreamingRequestGetsAChatCompletion() throws Exception {
        Http r = replay("openai-python-chat.http");
        assertEquals(200, r.status(), r.body());
        assertTrue(r.headers().get("content-type").startsWith("application/json"));
        JsonNode j = JSON.readTree(r.body());
        assertCompletionShape(j, "chat.completion");
        assertEquals(MODEL, j.get("model").asText());
        JsonNode choice = j.at("/choices/0");
        assertEquals("assistant", choice.at("/message/role").asText());
        assertTrue(choice.at("/message/content").isTextual());
        assertFalse(choice.get("finish_reason").isNull());
        JsonNode u = j.get("usage");
        assertTrue(u.at("/completion_tokens").asInt() <= 16, r.body());
        assertEquals(u.at("/prompt_tokens").asInt() + u.at("/completion_tokens").asInt(), u.at("/total_tokens").asInt());
    }

    @Test
    void theRecordedStreamingRequestGetsChunksUsageAndDone() throws Exception {
        Http r = replay("openai-python-chat-stream.http");
        assertEquals(200, r.status(), r.body());
        assertTrue(r.headers().get("content-type").startsWith("text/event-stream"), r.headers().toString());
        List<String> events = TestServers.events(r.body());
        assertEquals("[DONE]", events.getLast());
        List<JsonNode> chunks = new ArrayList<>();
        for (String e : events.subList(0, events.size() - 1)) chunks.add(JSON.readTree(e));
        for (JsonNode c : chunks) {
            assertCompletionShape(c, "chat.completion.chunk");
            assertFalse(c.has("error"), "the client raises on an error event: " + c);
        }
        assertEquals("assistant", chunks.getFirst().at("/choices/0/delta/role").asText());
        JsonNode usage = chunks.getLast();
        assertEquals(0, usage.get("choices").size(), "include_usage: a last chunk with empty choices and the usage");
        assertTrue(usage.at("/usage/completion_tokens").asInt() <= 16);
        assertFalse(chunks.get(chunks.size() - 2).at("/choices/0/finish_reason").isNull(), "the finish reason before the usage");
        // Same seed and settings: the stream spells out the non-streaming reply.
        StringBuilder text = new StringBuilder();
        for (JsonNode c : chunks) text.append(c.at("/choices/0/delta/content").asText(""));
        JsonNode whole = JSON.readTree(replay("openai-python-chat.http").body());
        assertEquals(whole.at("/choices/0/message/content").asText(), text.toString());
    }

    @Test
    void theRealPythonClientWorksAgainstTheServer(@TempDir Path tmp) throws Exception {
        String python = System.getProperty("openai.python");
        assumeTrue(python != null && !python.isBlank(),
                "skipped: set -Dopenai.python=<a python with the openai package> to run the official client (the recorded requests above always run)");
        Path script = tmp.resolve("openai_client_check.py");
        try (InputStream in = OpenAiClientTest.class.getResourceAsStream("openai_client_check.py")) {
            Files.write(script, in.readAllBytes());
        }
        Process p = new ProcessBuilder(python, script.toString(), server.url().toString(), MODEL, "sk-test-123")
                .redirectErrorStream(true).start();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "the client hung");
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("ok:"), out);
    }
}
