package nanochat4j.serve.web;

import java.io.IOException;
import java.net.InetAddress;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.DecodeWeights;
import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.train.cli.BaseDirOption;
import nanochat4j.train.cli.CheckpointChoice;
import nanochat4j.train.cli.PrecisionOption;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j serve}: nanochat's chat_web — the chat page and an OpenAI-compatible API over a pool of workers,
 * each with its own copy of the model on {@code --device} (nanochat: one per GPU; on the CPU the workers share the
 * decode team, on the GPU its stream).
 */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve a web chat page at / and an OpenAI-compatible API (/v1/chat/completions, /v1/models; nanochat's /chat/completions; /health).")
public final class ServeCommand implements Callable<Integer> {

    @Option(names = {"-i", "--source"}, description = "Checkpoint source: base, sft or rl (default: sft if any, else base).")
    String source;

    @Mixin
    CheckpointChoice checkpoint;

    @Option(names = {"-p", "--port"}, defaultValue = "8000", description = "TCP port (default: ${DEFAULT-VALUE}; 0: any free one).")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1",
            description = "Address to listen on (default: ${DEFAULT-VALUE}, this machine only; 0.0.0.0 for every interface — set --api-key then).")
    String host;

    @Option(names = {"-n", "--workers"}, defaultValue = "1", description = "Workers, each with its own model copy, serving one request at a time (default: ${DEFAULT-VALUE}).")
    int workers;

    @Option(names = "--device", defaultValue = "auto",
            description = "auto (the GPU when CUDA is usable, else the CPU), cpu or cuda; every worker's model copy lives there (default: ${DEFAULT-VALUE}).")
    InferenceDevice device;

    @Option(names = "--queue", defaultValue = "32", description = "Requests that may wait for a free worker; more are answered 429 (default: ${DEFAULT-VALUE}).")
    int queue;

    @Option(names = "--timeout", defaultValue = "300", description = "Seconds a request may take, waiting included (default: ${DEFAULT-VALUE}).")
    int timeoutSeconds;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.8", description = "Default temperature (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = {"-k", "--top-k"}, defaultValue = "50", description = "Default top-k (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = {"-m", "--max-tokens"}, defaultValue = "512", description = "Default tokens per reply (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--max-tokens-limit", defaultValue = "4096", description = "Most tokens a request may ask for (default: ${DEFAULT-VALUE}).")
    int maxTokensLimit;

    @Option(names = "--max-body", defaultValue = "1048576", description = "Largest request body in bytes (default: ${DEFAULT-VALUE}).")
    int maxBody;

    @Option(names = "--max-messages", defaultValue = "500", description = "Most messages per request (default: ${DEFAULT-VALUE}).")
    int maxMessages;

    @Option(names = "--max-message-chars", defaultValue = "8000", description = "Longest message in characters (default: ${DEFAULT-VALUE}).")
    int maxMessageChars;

    @Option(names = "--max-total-chars", defaultValue = "32000", description = "Most characters of all messages together (default: ${DEFAULT-VALUE}).")
    int maxTotalChars;

    @Option(names = "--api-key", description = "Require 'Authorization: Bearer <key>' on the API (default: $NANOCHAT4J_API_KEY if set, else none).")
    String apiKey;

    @Option(names = "--weights", defaultValue = "fp32", description = "Decode weights: fp32 (exact) or bf16 (about twice the tokens/s; default: ${DEFAULT-VALUE}).")
    DecodeWeights weights;

    @Mixin
    BaseDirOption baseDir;

    @Mixin
    PrecisionOption precision;

    @Override
    public Integer call() throws IOException {
        if (workers < 1) throw new IllegalArgumentException("--workers " + workers + " must be >= 1");
        if (port < 0 || port > 65535) throw new IllegalArgumentException("--port " + port + " is not in 0..65535");   // before the slow load
        Device where = device.resolve();
        return precision.get().during(Backend.forDevice(where), () -> serve(where));
    }

    private int serve(Device where) throws IOException {
        Path base = baseDir.get();
        ModelSource src = source != null ? ModelSource.parse(source)
                : ModelSource.SFT.exists(base) ? ModelSource.SFT : ModelSource.BASE;
        ModelSource.Loaded m = checkpoint.load(src, base);
        String key = apiKey != null ? apiKey : System.getenv("NANOCHAT4J_API_KEY");
        String name = src.name().toLowerCase(Locale.ROOT);
        ServerConfig config = new ServerConfig(host, port, queue, Duration.ofSeconds(timeoutSeconds), maxBody, maxMessages,
                maxMessageChars, maxTotalChars, maxTokensLimit, maxTokens, temperature, topK, key,
                "nanochat4j-" + name + "-" + m.dir().getFileName());
        List<Engine> engines = replicas(m, workers, weights, where);
        ChatServer server = new ChatServer(config, engines, System.err);
        Thread hook = new Thread(server::close, "serve-shutdown");
        Runtime.getRuntime().addShutdownHook(hook);   // Ctrl-C: stop accepting, end the streams
        try {
            server.start();
            if (src == ModelSource.BASE) {
                System.err.println("nanochat4j serve: note: a base model has not learned the chat format; replies continue the text (train SFT for chat)");
            }
            if (!InetAddress.getByName(host).isLoopbackAddress() && key == null) {
                System.err.println("nanochat4j serve: warning: listening on " + host + " without --api-key: anyone who reaches this port can use the model");
            }
            System.out.println("nanochat4j serve: " + name + " model " + m.dir().getFileName() + " step " + m.step() + " on " + workers
                    + " worker" + (workers == 1 ? "" : "s") + " on " + where + " (model id " + config.modelId() + ")");
            System.out.println("open " + server.url() + "   API: " + server.url() + "v1/chat/completions   Ctrl-C stops");
            System.out.flush();
            new CountDownLatch(1).await();                // serve until the JVM exits or this thread is interrupted
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            server.close();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or has run
            }
        }
        return 0;
    }

    /** One model per worker on {@code device}: the loaded one (moved there), and copies of its weights for the others (read once from disk). */
    static List<Engine> replicas(ModelSource.Loaded m, int n, DecodeWeights weights, Device device) {
        List<Engine> engines = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            GPT model = i == 0 ? InferenceDevice.place(m.model(), device) : m.model().to(device);
            model.decodeWeights(weights);
            engines.add(new Engine(model, m.tokenizer()));
        }
        return engines;
    }
}
