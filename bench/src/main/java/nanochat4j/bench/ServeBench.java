package nanochat4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.DecodeWeights;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Pretokenizer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.serve.web.ChatServer;
import nanochat4j.serve.web.ServerConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench serve}: the web server under load, with {@code bench infer}'s model (random weights, head
 * dim 64, window L, vocab 32768) behind a real {@link ChatServer} on localhost. For each number of concurrent streams,
 * every client sends one streaming OpenAI request at the same moment and times its events: time to first token
 * (queueing and prefill included) and the decode rate of its stream after that. The server's cost per token is the
 * single-stream decode rate against the same {@link Engine} called directly, in the same process (sampling and the
 * calculator state machine included on both sides, so what differs is JSON, SSE, the socket and the client reading
 * the stream on the same cores).
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Load the web server: time to first token and tokens/s per stream for 1, 4, 16 concurrent streams; overhead vs the engine.")
public final class ServeBench implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Option(names = "--depth", description = "model depth (default ${DEFAULT-VALUE})")
    int depth = 6;
    @Option(names = "--seq", description = "model context length (default ${DEFAULT-VALUE})")
    int seq = 512;
    @Option(names = "--streams", split = ",", description = "concurrent streams to measure (default ${DEFAULT-VALUE})")
    int[] streams = {1, 4, 16};
    @Option(names = "--workers", description = "server workers, one model copy each (default ${DEFAULT-VALUE})")
    int workers = 1;
    @Option(names = "--max-tokens", description = "tokens per reply (default ${DEFAULT-VALUE})")
    int maxTokens = 128;
    @Option(names = "--weights", defaultValue = "fp32", description = "decode weights: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    DecodeWeights weights;
    @Option(names = "--json", description = "one JSON object per line")
    boolean json;

    PrintStream out = System.out;

    /**
     * Streams run before anything is timed: with -XX:-TieredCompilation the decode path is slow until C2 compiled it, and
     * the server's write path (a call per send, one send per 16 ms: ≈ 26 per reply at 300 tok/s) reaches the launcher's
     * lowered threshold for serving code (200 calls) within them.
     */
    private static final int WARMUP = 10;
    /** Engine / single-stream pairs behind the overhead figure (medians). */
    private static final int PAIRS = 5;

    /** One stream's timings. */
    record Timing(double ttft, double decodeTokPerSec, int tokens) {}

    @Override
    public Integer call() throws Exception {
        if (workers < 1 || maxTokens < 2) throw new IllegalArgumentException("--workers must be >= 1 and --max-tokens >= 2");
        Tokenizer tok = syntheticTokenizer();
        GPTConfig cfg = GPTConfig.fromDepth(depth, 64, 64, seq, "L", tok.vocabSize());
        List<Engine> engines = new ArrayList<>();
        for (int i = 0; i < workers; i++) {
            GPT model = GPT.create(cfg, 42);
            model.decodeWeights(weights);
            engines.add(new Engine(model, tok));
        }
        String prompt = "Why is the sky blue? Please answer in a few sentences.";
        ServerConfig config = ServerConfig.defaults("bench-d" + depth).withPort(0).withQueueLimit(64);
        try (ChatServer server = new ChatServer(config, engines, new PrintStream(OutputStream.nullOutputStream()))) {
            server.start();
            for (int i = 0; i < WARMUP; i++) stream(server.url(), prompt, 1000 + i);   // compile the decode path (C2 only)
            // Engine alone and one server stream, alternated so that a noisy neighbour hits both alike.
            double[] engineRates = new double[PAIRS], serverRates = new double[PAIRS];
            for (int i = 0; i < PAIRS; i++) {
                engineRates[i] = engineTokPerSec(engines.get(0), tok, prompt, i + 1);
                serverRates[i] = stream(server.url(), prompt, i + 1).decodeTokPerSec();
            }
            Arrays.sort(engineRates);
            serverRates = Arrays.stream(serverRates).filter(r -> !Double.isNaN(r)).sorted().toArray();
            double engine = median(engineRates);
            double overhead = 1 - median(serverRates) / engine;
            for (int n : streams) {
                Round round = round(server.url(), prompt, n);
                List<Timing> runs = round.streams();
                double[] ttft = runs.stream().mapToDouble(Timing::ttft).sorted().toArray();
                double[] rate = runs.stream().mapToDouble(Timing::decodeTokPerSec).filter(r -> !Double.isNaN(r)).sorted().toArray();
                int tokens = runs.stream().mapToInt(Timing::tokens).sum();
                if (json) {
                    out.printf(Locale.ROOT, "{\"depth\": %d, \"weights\": \"%s\", \"workers\": %d, \"streams\": %d, \"ttft_ms_median\": %.1f, "
                                    + "\"ttft_ms_max\": %.1f, \"tok_per_sec_per_stream_median\": %s, \"tok_per_sec_total\": %.1f, \"tokens\": %d, "
                                    + "\"engine_tok_per_sec\": %.1f%s}%n", depth, weights, workers, n, 1e3 * median(ttft), 1e3 * ttft[ttft.length - 1],
                            num(median(rate)), tokens / round.wall(), tokens, engine,
                            n == 1 ? String.format(Locale.ROOT, ", \"server_1_stream_tok_per_sec\": %s, \"overhead_pct\": %s", num(median(serverRates)), num(100 * overhead)) : "");
                } else {
                    out.printf(Locale.ROOT, "d%d %s, %d worker(s), %2d streams: TTFT median %7.1f ms (max %7.1f), per stream %6.1f tok/s, total %6.1f tok/s%s%n",
                            depth, weights, workers, n, 1e3 * median(ttft), 1e3 * ttft[ttft.length - 1], median(rate), tokens / round.wall(),
                            n == 1 ? String.format(Locale.ROOT, "; alternated ×%d: engine alone %.1f, server %.1f tok/s → overhead %.1f%%", PAIRS, engine,
                                    median(serverRates), 100 * overhead) : "");
                }
            }
        }
        return 0;
    }

    /** The streams of one round and its wall time, from the common start to the end of the last stream. */
    record Round(List<Timing> streams, double wall) {}

    private Round round(URI base, String prompt, int n) throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(n);
        try {
            long t0 = System.nanoTime();
            List<Future<Timing>> fs = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                int seed = i + 1;
                fs.add(pool.submit(() -> stream(base, prompt, seed)));
            }
            List<Timing> out = new ArrayList<>();
            for (Future<Timing> f : fs) out.add(f.get());
            return new Round(out, (System.nanoTime() - t0) / 1e9);
        } finally {
            pool.shutdownNow();
        }
    }

    /**
     * One streaming request: TTFT at the first content chunk, decode rate from there to the last. Client and server
     * share this machine's cores, so the client costs the decode whatever CPU it spends per token: it reads the socket
     * with blocking reads on the calling thread and decodes HTTP/1.1's chunks itself, like a load generator (the
     * JDK's {@code HttpClient} woke three threads per token, {@code HttpURLConnection} + a JSON tree per event still
     * cost the decode several times what the server does: docs/BENCHMARKS.md). Only the usage event is parsed.
     */
    Timing stream(URI base, String prompt, int seed) throws IOException {
        byte[] body = JSON.writeValueAsBytes(JSON.createObjectNode()
                .put("stream", true).put("max_tokens", maxTokens).put("temperature", 1.0).put("top_k", 50).put("seed", seed)
                .<com.fasterxml.jackson.databind.node.ObjectNode>set("stream_options", JSON.createObjectNode().put("include_usage", true))
                .set("messages", JSON.valueToTree(List.of(java.util.Map.of("role", "user", "content", prompt)))));
        long t0 = System.nanoTime();
        try (Socket socket = new Socket(base.getHost(), base.getPort())) {
            socket.setTcpNoDelay(true);
            OutputStream os = socket.getOutputStream();
            os.write(("POST /v1/chat/completions HTTP/1.1\r\nHost: " + base.getHost() + ":" + base.getPort()
                    + "\r\nContent-Type: application/json\r\nContent-Length: " + body.length + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            os.write(body);
            os.flush();
            InputStream in = new BufferedInputStream(socket.getInputStream(), 1 << 16);
            String status = line(in);
            if (!status.startsWith("HTTP/1.1 200")) throw new IOException("server answered '" + status + "'");
            boolean chunked = false;
            for (String h = line(in); !h.isEmpty(); h = line(in)) {
                chunked |= h.toLowerCase(java.util.Locale.ROOT).startsWith("transfer-encoding:") && h.toLowerCase(java.util.Locale.ROOT).contains("chunked");
            }
            if (!chunked) throw new IOException("the stream is not chunked");
            long first = -1, last = -1;
            int tokens = 0;
            ByteArrayOutputStream event = new ByteArrayOutputStream();
            for (int size = chunkSize(in); size > 0; size = chunkSize(in)) {
                byte[] data = in.readNBytes(size);
                line(in);                                        // the CRLF after the chunk
                long now = System.nanoTime();
                for (byte b : data) {
                    if (b != '\n') {
                        event.write(b);
                        continue;
                    }
                    String e = event.toString(StandardCharsets.UTF_8);
                    event.reset();
                    if (!e.startsWith("data: {")) continue;
                    if (e.contains("\"usage\":{")) {
                        tokens = JSON.readTree(e.substring(6)).at("/usage/completion_tokens").asInt();
                    } else if (e.contains("\"delta\":{\"content\":\"") && !e.contains("\"delta\":{\"content\":\"\"")) {
                        if (first < 0) first = now;
                        last = now;
                    }
                }
            }
            if (first < 0) throw new IOException("a stream brought no text");
            // Pieces leave at whole UTF-8 characters, so count tokens from the usage, time from the first to the last piece.
            // A reply the model ended after one piece has no decode rate (NaN, left out of the medians).
            double decode = tokens >= 2 && last > first ? (tokens - 1) / ((last - first) / 1e9) : Double.NaN;
            return new Timing((first - t0) / 1e9, decode, tokens);
        }
    }

    /** The size line of the next HTTP/1.1 chunk (0: the last). */
    private static int chunkSize(InputStream in) throws IOException {
        String l = line(in);
        int semi = l.indexOf(';');
        try {
            return Integer.parseInt((semi < 0 ? l : l.substring(0, semi)).strip(), 16);
        } catch (NumberFormatException e) {
            throw new IOException("bad chunk size line '" + l + "'", e);
        }
    }

    /** One CRLF- (or LF-) terminated line of ASCII, without its end; fails at the end of the stream. */
    private static String line(InputStream in) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int c = in.read(); c != '\n'; c = in.read()) {
            if (c < 0) throw new IOException("the connection closed mid-response");
            if (c != '\r') sb.append((char) c);
        }
        return sb.toString();
    }

    /** Decode tokens/s of the engine called directly, with the server's prompt and sampling. */
    private double engineTokPerSec(Engine engine, Tokenizer tok, String prompt, int seed) {
        int[] ids = promptIds(tok, prompt);
        long[] first = {-1}, last = {0};
        int[] n = {0};
        engine.generate(ids, new Engine.Settings(1, maxTokens, 1.0, 50, seed), (col, sampled) -> {
            long now = System.nanoTime();
            if (first[0] < 0) first[0] = now;
            last[0] = now;
            n[0]++;
        });
        return (n[0] - 1) / ((last[0] - first[0]) / 1e9);
    }

    static int[] promptIds(Tokenizer tok, String prompt) {
        int[] r = nanochat4j.model.tokenizer.ChatRenderer.render(tok, Conversation.of(Conversation.Message.user(prompt)), Integer.MAX_VALUE).ids();
        int[] ids = Arrays.copyOf(r, r.length + 1);
        ids[r.length] = tok.encodeSpecial("<|assistant_start|>");
        return ids;
    }

    /** A tokenizer with nanochat's vocabulary size (32768) without training one: merges of every byte pair in order. */
    static Tokenizer syntheticTokenizer() {
        int merges = 32768 - 256 - Tokenizer.SPECIAL_TOKENS.size();
        int[][] m = new int[merges][];
        for (int k = 0; k < merges; k++) m[k] = new int[] {k / 256, k % 256};
        return Tokenizer.fromMerges(m, Pretokenizer.NANOCHAT_PATTERN);
    }

    /** x to one decimal for JSON, or null when there is no figure (no stream had two timed pieces). */
    private static String num(double x) {
        return Double.isNaN(x) ? "null" : String.format(Locale.ROOT, "%.1f", x);
    }

    private static double median(double[] sorted) {
        return sorted.length == 0 ? Double.NaN : sorted[sorted.length / 2];
    }
}
