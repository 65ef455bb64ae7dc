package nanochat4j.serve.web;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * Random models and a client for the server tests. The replies are gibberish; what is tested is the serving. The
 * model is big enough (4 layers of width 256, 2048 context) that a long greedy reply takes seconds, so a test can
 * disconnect or press stop in the middle of one.
 */
final class TestServers {
    private TestServers() {}

    static final ObjectMapper JSON = new ObjectMapper();
    static final Tokenizer TOK;
    static {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 16; i++) docs.add("hello world, what is 2+2? the quick brown fox jumps " + i + " times. ```code``` ");
        TOK = Tokenizer.train(docs, 320);
    }

    static List<Engine> engines(int n) {
        List<Engine> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(new Engine(GPT.create(new GPTConfig(2048, TOK.vocabSize(), 4, 2, 2, 256, "L"), 7), TOK));
        }
        return out;
    }

    static ServerConfig config() {
        return ServerConfig.defaults("nanochat4j-test-d4").withPort(0);
    }

    /** {@link #config()} with an API key, a request timeout or a default max_tokens of its own (null / 0: unchanged). */
    static ServerConfig config(String apiKey, java.time.Duration timeout, int defaultMaxTokens) {
        ServerConfig d = config();
        return new ServerConfig(d.host(), d.port(), d.queueLimit(), timeout != null ? timeout : d.timeout(), d.maxBodyBytes(),
                d.maxMessages(), d.maxMessageChars(), d.maxTotalChars(), d.maxTokensLimit(),
                defaultMaxTokens > 0 ? defaultMaxTokens : d.defaultMaxTokens(), d.defaultTemperature(), d.defaultTopK(),
                apiKey, d.modelId());
    }

    static ChatServer start(ServerConfig config, List<Engine> engines) throws IOException {
        ChatServer s = new ChatServer(config, engines, new PrintStream(OutputStream.nullOutputStream()));
        s.start();
        return s;
    }

    static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();

    record Reply(int status, String body, java.net.http.HttpHeaders headers) {
        JsonNode json() throws IOException {
            return JSON.readTree(body);
        }
    }

    static Reply post(ChatServer s, String path, String body, String... headers) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(s.url().resolve(path)).timeout(Duration.ofSeconds(120))
                .POST(HttpRequest.BodyPublishers.ofString(body)).header("Content-Type", "application/json");
        for (int i = 0; i < headers.length; i += 2) b.header(headers[i], headers[i + 1]);
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), r.body(), r.headers());
    }

    static Reply get(ChatServer s, String path, String... headers) throws IOException, InterruptedException {
        HttpRequest.Builder b = HttpRequest.newBuilder(s.url().resolve(path)).timeout(Duration.ofSeconds(30)).GET();
        for (int i = 0; i < headers.length; i += 2) b.header(headers[i], headers[i + 1]);
        HttpResponse<String> r = HTTP.send(b.build(), HttpResponse.BodyHandlers.ofString());
        return new Reply(r.statusCode(), r.body(), r.headers());
    }

    static JsonNode health(ChatServer s) throws IOException, InterruptedException {
        return get(s, "/health").json();
    }

    /** The JSON payloads of a server-sent event stream ({@code data: …} lines), [DONE] included as text. */
    static List<String> events(String body) {
        List<String> out = new ArrayList<>();
        for (String line : body.split("\n")) if (line.startsWith("data: ")) out.add(line.substring(6));
        return out;
    }

    /**
     * A request on a plain socket, so the test decides when the connection drops: returns once the first event of
     * the stream arrived, with the socket still open.
     */
    static Socket openStream(ChatServer s, String path, String body) throws IOException {
        URI u = s.url();
        Socket socket = new Socket(u.getHost(), u.getPort());
        socket.setSoTimeout(60_000);
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        String head = "POST " + path + " HTTP/1.1\r\nHost: " + u.getHost() + ":" + u.getPort()
                + "\r\nContent-Type: application/json\r\nContent-Length: " + b.length + "\r\n\r\n";
        socket.getOutputStream().write(head.getBytes(StandardCharsets.UTF_8));
        socket.getOutputStream().write(b);
        socket.getOutputStream().flush();
        return socket;
    }

    /** Reads the socket's response until its first {@code data:} line; returns the status line. */
    static String awaitFirstEvent(Socket socket) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.UTF_8));
        String status = in.readLine();
        for (String line = in.readLine(); line != null; line = in.readLine()) {
            if (line.startsWith("data: ")) return status;
        }
        throw new IOException("stream ended before its first event (status " + status + ")");
    }

    /** Polls until {@code check} holds or {@code seconds} pass; returns whether it held. */
    static boolean eventually(double seconds, Check check) throws Exception {
        long end = System.nanoTime() + (long) (seconds * 1e9);
        while (System.nanoTime() < end) {
            if (check.ok()) return true;
            Thread.sleep(20);
        }
        return check.ok();
    }

    @FunctionalInterface
    interface Check {
        boolean ok() throws Exception;
    }

    static String chat(String extra, String... userTurns) {
        StringBuilder sb = new StringBuilder("{\"messages\": [");
        for (int i = 0; i < userTurns.length; i++) {
            if (i > 0) sb.append(", ");
            sb.append("{\"role\": \"").append(i % 2 == 0 ? "user" : "assistant").append("\", \"content\": ")
                    .append(JSON.valueToTree(userTurns[i]).toString()).append("}");
        }
        sb.append("]");
        if (!extra.isEmpty()) sb.append(", ").append(extra);
        return sb.append("}").toString();
    }
}
