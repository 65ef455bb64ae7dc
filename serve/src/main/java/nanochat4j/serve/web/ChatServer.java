package nanochat4j.serve.web;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.time.Instant;
import java.util.EnumMap;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * The web chat and its API on a {@link WebServer} (Netty), in the spirit of nanochat's chat_web.py:
 * <ul>
 *   <li>{@code GET /} the chat page and its three assets, from the jar — nothing fetched from elsewhere, which the
 *       Content-Security-Policy also enforces in the browser; only these names are served (no file system access);</li>
 *   <li>{@code POST /chat/completions}: nanochat's API (always streams {@code data: {"token", "gpu"}} events, then
 *       {@code data: {"done": true}}), with a {@code part} field telling text from calculator calls and results;</li>
 *   <li>{@code POST /v1/chat/completions} and {@code GET /v1/models}: OpenAI's shapes, streamed ({@code
 *       chat.completion.chunk} events and {@code data: [DONE]}) or not, errors as {@code {"error": {…}}};</li>
 *   <li>{@code GET /health}: worker and queue status.</li>
 * </ul>
 * Requests run on a fixed pool of handler threads (workers + queue + a few for the cheap endpoints), each holding a
 * {@link WorkerPool} worker while it generates; a client that closes its connection ends its generation at the next
 * token, streamed or not. With an API key, everything but the page and /health needs it.
 */
public final class ChatServer implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Handler threads beyond workers + queue: health probes, the page, and refusing requests while the queue is full. */
    private static final int SPARE_THREADS = 8;
    /** Connections accepted but not yet handled, beyond which the server closes new ones. */
    private static final int PENDING_CONNECTIONS = 256;
    private static final String CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            + "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    /**
     * A client gets this long to send its request line, headers and body; without it one that trickles bytes
     * (slowloris) holds a connection forever. Responses (long streams) are not bounded by it: the per-request timeout
     * ends those.
     */
    private static final Duration REQUEST_TIME = Duration.ofSeconds(30);

    /** A file of the page, kept in memory. */
    private record Asset(byte[] bytes, String type) {}

    private final ServerConfig config;
    private final WorkerPool pool;
    private final Tokenizer tok;
    /** Bound to a loopback address: requests must name this machine ({@link #checkHost}). */
    private final boolean loopbackOnly;
    /** The models' context length: prompt and reply together fit in it. */
    private final int context;
    private final WebServer server;
    private final ThreadPoolExecutor executor;
    private final Map<String, Asset> assets;
    private final long created = Instant.now().getEpochSecond();
    private final PrintStream log;
    private final AtomicLong completed = new AtomicLong(), cancelled = new AtomicLong(), timedOut = new AtomicLong(),
            refused = new AtomicLong();

    /** Binds the port (not yet serving); one engine per worker, all with the same tokenizer. */
    public ChatServer(ServerConfig config, List<Engine> engines, PrintStream log) throws IOException {
        this.config = config;
        this.pool = new WorkerPool(engines, config.queueLimit());
        this.tok = engines.get(0).tokenizer();
        this.context = engines.get(0).model().config().sequenceLen();
        this.loopbackOnly = InetAddress.getByName(config.host()).isLoopbackAddress();
        for (Engine e : engines) {
            if (e.tokenizer() != tok || e.model().config().sequenceLen() != context) {
                throw new IllegalArgumentException("every worker must share one tokenizer and context length");
            }
        }
        this.log = log;
        this.assets = Map.of(
                "/", asset("index.html", "text/html; charset=utf-8"),
                "/app.js", asset("app.js", "text/javascript; charset=utf-8"),
                "/style.css", asset("style.css", "text/css; charset=utf-8"),
                "/logo.svg", asset("logo.svg", "image/svg+xml"));
        int threads = engines.size() + config.queueLimit() + SPARE_THREADS;
        AtomicInteger n = new AtomicInteger();
        executor = new ThreadPoolExecutor(threads, threads, 60, TimeUnit.SECONDS, new ArrayBlockingQueue<>(PENDING_CONNECTIONS), r -> {
            Thread t = new Thread(r, "serve-http-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        try {
            server = new WebServer(config.host(), config.port(), PENDING_CONNECTIONS, config.maxBodyBytes(), REQUEST_TIME, executor,
                    this::handle);
        } catch (IOException e) {
            executor.shutdown();
            throw new IOException("cannot listen on " + config.host() + ":" + config.port() + ": " + e.getMessage(), e);
        }
    }

    public void start() {
        server.start();
    }

    /** The page's address, e.g. {@code http://127.0.0.1:8000/}. */
    public URI url() {
        String host = config.host().contains(":") ? "[" + config.host() + "]" : config.host();
        return URI.create("http://" + host + ":" + server.address().getPort() + "/");
    }

    @Override
    public void close() {
        server.close();
        executor.shutdownNow();
    }

    private static Asset asset(String name, String type) throws IOException {
        try (InputStream in = ChatServer.class.getResourceAsStream(name)) {
            if (in == null) throw new IOException("the web page's " + name + " is missing from the jar (nanochat4j/serve/web/" + name + ")");
            return new Asset(in.readAllBytes(), type);
        }
    }

    // ------------------------------------------------------------------ routing

    private void handle(Exchange ex) {
        try {
            String path = ex.getRequestURI().getRawPath();
            String method = ex.getRequestMethod();
            checkHost(ex);
            Asset asset = assets.get(path.equals("/index.html") ? "/" : path);
            if (asset != null) {
                allow(method, "GET", "HEAD");
                sendAsset(ex, asset, method.equals("HEAD"));
                return;
            }
            switch (path) {
                case "/health" -> {
                    allow(method, "GET");
                    sendJson(ex, 200, health());
                }
                case "/v1/models" -> {
                    allow(method, "GET");
                    authorize(ex);
                    sendJson(ex, 200, models());
                }
                case "/chat/completions" -> {
                    allow(method, "POST");
                    authorize(ex);
                    requireJson(ex);
                    complete(ex, false);
                }
                case "/v1/chat/completions" -> {
                    allow(method, "POST");
                    authorize(ex);
                    requireJson(ex);
                    complete(ex, true);
                }
                default -> throw ApiError.notFound("not_found", "no such endpoint: " + method + " " + path);
            }
        } catch (ApiError e) {
            if (e.status == 429) refused.incrementAndGet();
            trySendError(ex, e);
        } catch (IOException e) {
            // the client went away while we answered: nothing to tell it
        } catch (RuntimeException e) {
            log.println("[serve] " + ex.getRequestMethod() + " " + ex.getRequestURI() + " failed: " + e);
            e.printStackTrace(log);
            trySendError(ex, new ApiError(500, "server_error", null, null, "internal error: " + e, 0));
        } finally {
            ex.close();
        }
    }

    /**
     * On a loopback address, only requests that name this machine (localhost, 127.0.0.1, ::1) are served: a web page
     * elsewhere could otherwise reach the local server through DNS rebinding (its own name resolving to 127.0.0.1).
     */
    private void checkHost(Exchange ex) throws ApiError {
        if (!loopbackOnly) return;
        String host = ex.requestHeader("Host");
        String name = host == null ? "" : host.startsWith("[") ? host.substring(0, host.indexOf(']') + 1)
                : host.contains(":") ? host.substring(0, host.lastIndexOf(':')) : host;
        name = name.toLowerCase(Locale.ROOT);
        if (!(name.equals("localhost") || name.startsWith("127.") || name.equals("[::1]") || name.equals(config.host()))) {
            throw new ApiError(403, "invalid_request_error", "host_not_allowed", null, "this server listens on "
                    + config.host() + " and answers only requests addressed to localhost, not '" + host + "'", 0);
        }
    }

    /**
     * POSTs must say they carry JSON: a page on another site can send a form or plain text to localhost without
     * asking first, but a JSON request makes the browser ask (CORS preflight), which this server never grants.
     */
    private static void requireJson(Exchange ex) throws ApiError {
        String type = ex.requestHeader("Content-Type");
        String media = type == null ? "" : type.split(";")[0].strip().toLowerCase(Locale.ROOT);
        if (!media.equals("application/json")) {
            throw new ApiError(415, "invalid_request_error", "unsupported_media_type", null,
                    "Content-Type must be application/json" + (type == null ? "" : ", not '" + type + "'"), 0);
        }
    }

    private static void allow(String method, String... allowed) throws ApiError {
        for (String a : allowed) if (a.equals(method)) return;
        throw new ApiError(405, "invalid_request_error", "method_not_allowed", null,
                "method " + method + " is not allowed here (use " + String.join(" or ", allowed) + ")", 0);
    }

    private void authorize(Exchange ex) throws ApiError {
        if (config.apiKey() == null) return;
        String header = ex.requestHeader("Authorization");
        byte[] given = header == null ? new byte[0] : header.getBytes(StandardCharsets.UTF_8);
        byte[] wanted = ("Bearer " + config.apiKey()).getBytes(StandardCharsets.UTF_8);
        if (!MessageDigest.isEqual(given, wanted)) {   // constant time: the comparison does not leak the key
            ex.getResponseHeaders().set("WWW-Authenticate", "Bearer");
            throw new ApiError(401, "invalid_request_error", "invalid_api_key", null,
                    header == null ? "missing API key: send the header 'Authorization: Bearer <key>'" : "incorrect API key", 0);
        }
    }

    // ------------------------------------------------------------------ simple endpoints

    private ObjectNode health() {
        ObjectNode h = JSON.createObjectNode();
        h.put("status", "ok");
        h.put("ready", true);
        h.put("model", config.modelId());
        h.put("num_workers", pool.workers().size());
        h.put("available_workers", pool.available());
        h.put("busy_workers", pool.workers().size() - pool.available());
        h.put("queued", pool.waiting());
        h.put("queue_limit", pool.queueLimit());
        h.put("completed", completed.get());
        h.put("cancelled", cancelled.get());
        h.put("timed_out", timedOut.get());
        h.put("refused", refused.get());
        ArrayNode ws = h.putArray("workers");
        for (WorkerPool.Worker w : pool.workers()) {
            ws.addObject().put("id", w.id).put("busy", w.busy).put("requests", w.served.get()).put("tokens", w.tokens.get());
        }
        return h;
    }

    private ObjectNode models() {
        ObjectNode m = JSON.createObjectNode();
        m.put("object", "list");
        m.putArray("data").addObject().put("id", config.modelId()).put("object", "model").put("created", created)
                .put("owned_by", "nanochat4j");
        return m;
    }

    // ------------------------------------------------------------------ completions

    private void complete(Exchange ex, boolean openAi) throws ApiError, IOException {
        long start = System.nanoTime();
        long deadline = start + config.timeout().toNanos();
        ChatRequest req = ChatRequest.parse(readJson(ex), config);
        if (openAi && req.model() != null && !req.model().equals(config.modelId())) {
            throw ApiError.notFound("model_not_found", "model '" + req.model() + "' does not exist; this server serves '" + config.modelId() + "'");
        }
        if (!openAi && req.n() != 1) throw ApiError.badRequest("n", "n is OpenAI's field: /chat/completions streams one reply (use /v1/chat/completions)");
        Generation.Fit fit;
        try {
            fit = Generation.fit(Generation.prompt(tok, req.conversation()), req.maxTokens(), context);
        } catch (IllegalArgumentException e) {
            throw ApiError.badRequest("messages", e.getMessage());
        }
        int[] prompt = fit.prompt();
        WorkerPool.Worker w;
        try {
            w = pool.acquire(deadline - System.nanoTime());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ApiError(503, "server_error", "shutting_down", null, "the server is shutting down", 1);
        }
        Engine.Settings settings = new Engine.Settings(req.n(), fit.maxTokens(), req.temperature(), req.topK(), req.topP(), req.seed());
        int[] counts = new int[1];
        String outcome = "failed";
        try {
            outcome = openAi ? (req.stream() ? openAiStream(ex, req, w, prompt, settings, deadline, counts)
                    : openAiJson(ex, req, w, prompt, settings, deadline, counts))
                    : nanochatStream(ex, w, prompt, fit.truncated(), settings, deadline, counts);
        } catch (ApiError e) {
            if ("timeout".equals(e.code)) outcome = "timeout";
            throw e;
        } finally {
            w.tokens.addAndGet(counts[0]);
            pool.release(w);
            switch (outcome) {
                case "ok" -> completed.incrementAndGet();
                case "cancelled" -> cancelled.incrementAndGet();
                case "timeout" -> timedOut.incrementAndGet();
                default -> { }
            }
            double s = (System.nanoTime() - start) / 1e9;
            log.printf("[serve] POST %s worker %d: %d prompt + %d tokens in %.2f s (%s)%n", ex.getRequestURI().getPath(), w.id,
                    prompt.length, counts[0], s, outcome);
        }
    }

    private JsonNode readJson(Exchange ex) throws ApiError, IOException {
        String length = ex.requestHeader("Content-Length");
        long declared = -1;
        if (length != null) {
            try {
                declared = Long.parseLong(length.strip());
            } catch (NumberFormatException e) {
                throw ApiError.badRequest(null, "Content-Length '" + length + "' is not a number");
            }
        }
        if (declared > config.maxBodyBytes()) throw tooLarge(declared);
        byte[] body = ex.getRequestBody().readAllBytes();   // the server keeps at most the limit + 1 byte
        if (body.length > config.maxBodyBytes()) throw tooLarge(-1);
        try {
            return JSON.readTree(body);
        } catch (JsonProcessingException e) {
            throw ApiError.badRequest(null, "invalid JSON: " + e.getOriginalMessage()
                    + (e.getLocation() == null ? "" : " at line " + e.getLocation().getLineNr() + " column " + e.getLocation().getColumnNr()));
        }
    }

    private ApiError tooLarge(long declared) {
        return new ApiError(413, "invalid_request_error", "request_too_large", null, "the request body is "
                + (declared >= 0 ? declared + " bytes" : "larger than that") + "; at most " + config.maxBodyBytes() + " bytes are accepted", 0);
    }

    /** OpenAI, not streamed: one {@code chat.completion} object with a choice per reply. */
    private String openAiJson(Exchange ex, ChatRequest req, WorkerPool.Worker w, int[] prompt, Engine.Settings settings,
                              long deadline, int[] counts) throws IOException, ApiError {
        int n = req.n();
        StringBuilder[] content = new StringBuilder[n];
        Generation.Sink[] sinks = new Generation.Sink[n];
        for (int r = 0; r < n; r++) {
            StringBuilder c = content[r] = new StringBuilder();
            sinks[r] = sinkTo(new StopFilter(req.stop(), text -> {
                // nothing is written before the end, so ask the connection whether the client is still there
                if (ex.clientGone()) throw new IOException("the client closed the connection");
                c.append(text);
            }));
        }
        String[] finish;
        try {
            finish = Generation.run(w.engine, prompt, settings, deadline, sinks, counts);
        } catch (Generation.Stopped s) {
            if (s.why == Generation.Stopped.Why.CLIENT_GONE) return "cancelled";
            throw new ApiError(504, "server_error", "timeout", null, "the reply took longer than the request timeout of "
                    + config.timeout().toSeconds() + " s; ask for fewer max_tokens", 0);
        }
        ObjectNode r = completionObject("chat.completion");
        var choices = r.putArray("choices");
        for (int i = 0; i < n; i++) {
            ObjectNode choice = choices.addObject();
            choice.put("index", i);
            choice.putObject("message").put("role", "assistant").put("content", content[i].toString());
            choice.putNull("logprobs");
            choice.put("finish_reason", finish[i]);
        }
        r.set("usage", usage(prompt, counts));
        sendJson(ex, 200, r);
        return "ok";
    }

    /**
     * OpenAI, streamed: a chunk with every choice's role, content chunks (each of one choice, by its index), a chunk
     * with every choice's finish reason, optionally usage, then [DONE].
     */
    private String openAiStream(Exchange ex, ChatRequest req, WorkerPool.Worker w, int[] prompt, Engine.Settings settings,
                                long deadline, int[] counts) throws IOException {
        int n = req.n();
        OutputStream os = startEvents(ex);
        String id = completionId();
        long now = Instant.now().getEpochSecond();
        ObjectNode first = chunk(id, now);
        for (int i = 0; i < n; i++) {
            first.withArray("choices").addObject().put("index", i).putNull("finish_reason").putObject("delta")
                    .put("role", "assistant").put("content", "");
        }
        try {
            event(os, first);
        } catch (IOException e) {
            return "cancelled";
        }
        Generation.Sink[] sinks = new Generation.Sink[n];
        for (int i = 0; i < n; i++) {
            ObjectNode template = chunk(id, now);
            template.withArray("choices").addObject().put("index", i).putNull("finish_reason").putObject("delta")
                    .put("content", TextEvent.PLACEHOLDER);
            TextEvent content = new TextEvent(JSON, template);
            sinks[i] = sinkTo(new StopFilter(req.stop(), text -> {
                content.write(os, text);
                os.flush();
            }));
        }
        String[] finish;
        try {
            finish = Generation.run(w.engine, prompt, settings, deadline, sinks, counts);
        } catch (Generation.Stopped s) {
            return s.why == Generation.Stopped.Why.TIMEOUT ? streamTimeout(os) : "cancelled";
        }
        try {
            ObjectNode last = chunk(id, now);
            for (int i = 0; i < n; i++) last.withArray("choices").addObject().put("index", i).put("finish_reason", finish[i]).putObject("delta");
            event(os, last);
            if (req.includeUsage()) {
                ObjectNode u = chunk(id, now);
                u.putArray("choices");
                u.set("usage", usage(prompt, counts));
                event(os, u);
            }
            done(os);
        } catch (IOException e) {
            return "cancelled";
        }
        return "ok";
    }

    /**
     * nanochat's stream: {@code data: {"token": text, "gpu": worker}} per piece — here with {@code "part"}: text,
     * python (a calculator call) or python_output (its result) — then {@code data: {"done": true, …}}.
     */
    private String nanochatStream(Exchange ex, WorkerPool.Worker w, int[] prompt, int truncated, Engine.Settings settings, long deadline,
                                  int[] counts) throws IOException {
        OutputStream os = startEvents(ex);
        Map<Generation.Part, TextEvent> events = new EnumMap<>(Generation.Part.class);
        for (Generation.Part part : Generation.Part.values()) {
            ObjectNode e = JSON.createObjectNode();
            e.put("token", TextEvent.PLACEHOLDER);
            e.put("gpu", w.id);
            e.put("part", part.json);
            events.put(part, new TextEvent(JSON, e));
        }
        String finish;
        try {
            finish = Generation.run(w.engine, prompt, settings, deadline, (part, delta) -> {
                events.get(part).write(os, delta);
                os.flush();
            }, counts);
        } catch (Generation.Stopped s) {
            return s.why == Generation.Stopped.Why.TIMEOUT ? streamTimeout(os) : "cancelled";
        }
        try {
            ObjectNode d = JSON.createObjectNode();
            d.put("done", true);
            d.put("finish_reason", finish);
            d.put("truncated_prompt_tokens", truncated);
            d.set("usage", usage(prompt, counts));
            event(os, d);
        } catch (IOException e) {
            return "cancelled";
        }
        return "ok";
    }

    /** Calculator parts reach OpenAI clients as the model wrote them: special-token markers around the call and result. */
    private static Generation.Sink sinkTo(StopFilter filter) {
        return new Generation.Sink() {
            @Override
            public void text(Generation.Part part, String delta) throws IOException {
                filter.add(delta);
            }

            @Override
            public void marker(String special) throws IOException {
                filter.add(special);
            }

            @Override
            public void end() throws IOException {
                filter.finish();
            }
        };
    }

    private String streamTimeout(OutputStream os) {
        try {
            ApiError e = new ApiError(504, "server_error", "timeout", null, "the reply took longer than the request timeout of "
                    + config.timeout().toSeconds() + " s", 0);
            event(os, e.toJson(JSON));
            done(os);
        } catch (IOException ignored) {
            // the client left as well
        }
        return "timeout";
    }

    private ObjectNode completionObject(String object) {
        ObjectNode r = JSON.createObjectNode();
        r.put("id", completionId());
        r.put("object", object);
        r.put("created", Instant.now().getEpochSecond());
        r.put("model", config.modelId());
        return r;
    }

    private ObjectNode chunk(String id, long createdAt) {
        ObjectNode r = JSON.createObjectNode();
        r.put("id", id);
        r.put("object", "chat.completion.chunk");
        r.put("created", createdAt);
        r.put("model", config.modelId());
        r.putNull("system_fingerprint");
        r.putArray("choices");
        return r;
    }

    private static ObjectNode usage(int[] prompt, int[] counts) {
        ObjectNode u = JSON.createObjectNode();
        u.put("prompt_tokens", prompt.length);
        u.put("completion_tokens", counts[0]);
        u.put("total_tokens", prompt.length + counts[0]);
        return u;
    }

    private static String completionId() {
        byte[] b = new byte[12];
        ThreadLocalRandom.current().nextBytes(b);
        return "chatcmpl-" + HexFormat.of().formatHex(b);
    }

    // ------------------------------------------------------------------ responses

    private static OutputStream startEvents(Exchange ex) throws IOException {
        ex.getResponseHeaders().set("Content-Type", "text/event-stream; charset=utf-8");
        ex.getResponseHeaders().set("Cache-Control", "no-cache");
        ex.getResponseHeaders().set("X-Accel-Buffering", "no");   // a reverse proxy must pass tokens on at once
        ex.sendResponseHeaders(200, 0);
        return ex.getResponseBody();
    }

    /** One server-sent event, flushed so the client sees it now; fails when the client is gone. */
    private static void event(OutputStream os, JsonNode data) throws IOException {
        os.write(("data: " + JSON.writeValueAsString(data) + "\n\n").getBytes(StandardCharsets.UTF_8));
        os.flush();
    }

    private static void done(OutputStream os) throws IOException {
        os.write("data: [DONE]\n\n".getBytes(StandardCharsets.UTF_8));
        os.flush();
    }

    private static void sendJson(Exchange ex, int status, JsonNode body) throws IOException {
        byte[] bytes = JSON.writeValueAsBytes(body);
        ex.getResponseHeaders().set("Content-Type", "application/json");
        ex.sendResponseHeaders(status, bytes.length);
        ex.getResponseBody().write(bytes);
    }

    private static void sendAsset(Exchange ex, Asset a, boolean head) throws IOException {
        var h = ex.getResponseHeaders();
        h.set("Content-Type", a.type());
        h.set("Cache-Control", "no-cache");
        h.set("Content-Security-Policy", CSP);
        h.set("X-Content-Type-Options", "nosniff");
        h.set("Referrer-Policy", "no-referrer");
        if (head) {
            ex.sendResponseHeaders(200, -1);
            return;
        }
        ex.sendResponseHeaders(200, a.bytes().length);
        ex.getResponseBody().write(a.bytes());
    }

    /** Answers with the error unless a response already started (then the connection just closes). */
    private static void trySendError(Exchange ex, ApiError e) {
        if (ex.getResponseCode() != -1) return;
        try {
            if (e.retryAfter > 0) ex.getResponseHeaders().set("Retry-After", Integer.toString(e.retryAfter));
            sendJson(ex, e.status, e.toJson(JSON));
        } catch (IOException ignored) {
            // the client is gone
        }
    }
}
