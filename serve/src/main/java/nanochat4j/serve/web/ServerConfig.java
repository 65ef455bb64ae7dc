package nanochat4j.serve.web;

import java.time.Duration;

/**
 * Everything {@link ChatServer} is told at start: where it listens, its queue, the limits it enforces on every request
 * and the sampling defaults of nanochat's chat_web (temperature 0.8, top-k 50, 512 tokens).
 *
 * @param host          interface to bind (localhost by default: the API has no authentication unless {@code apiKey} is set)
 * @param port          TCP port; 0 picks a free one (tests)
 * @param queueLimit    requests that may wait for a free worker; one more is answered 429 with Retry-After
 * @param timeout       per request, from arrival: queue wait plus generation
 * @param maxBodyBytes  largest request body read (413 beyond)
 * @param apiKey        Bearer token the API requires; null for none
 * @param modelId       the name {@code /v1/models} lists and requests may name
 */
public record ServerConfig(String host, int port, int queueLimit, Duration timeout, int maxBodyBytes, int maxMessages,
                           int maxMessageChars, int maxTotalChars, int maxTokensLimit, int defaultMaxTokens,
                           double defaultTemperature, int defaultTopK, String apiKey, String modelId) {

    public ServerConfig {
        if (port < 0 || port > 65535) throw new IllegalArgumentException("port " + port + " is not in 0..65535");
        if (queueLimit < 0) throw new IllegalArgumentException("queue limit " + queueLimit + " must be >= 0");
        if (timeout.isNegative() || timeout.isZero()) throw new IllegalArgumentException("timeout " + timeout + " must be positive");
        if (maxBodyBytes < 1024) throw new IllegalArgumentException("max body " + maxBodyBytes + " bytes is below 1024");
        if (maxTokensLimit < 1) throw new IllegalArgumentException("max tokens limit " + maxTokensLimit + " must be >= 1");
        if (defaultMaxTokens < 1 || defaultMaxTokens > maxTokensLimit) {
            throw new IllegalArgumentException("default max tokens " + defaultMaxTokens + " must be in 1.." + maxTokensLimit);
        }
        if (apiKey != null && apiKey.isBlank()) throw new IllegalArgumentException("the API key is blank");
    }

    /** nanochat's chat_web limits (500 messages, 8000 chars each, 32000 in all, max_tokens ≤ 4096) on localhost:8000. */
    public static ServerConfig defaults(String modelId) {
        return new ServerConfig("127.0.0.1", 8000, 32, Duration.ofSeconds(300), 1 << 20, 500, 8000, 32000, 4096, 512,
                0.8, 50, null, modelId);
    }

    public ServerConfig withPort(int p) {
        return new ServerConfig(host, p, queueLimit, timeout, maxBodyBytes, maxMessages, maxMessageChars, maxTotalChars,
                maxTokensLimit, defaultMaxTokens, defaultTemperature, defaultTopK, apiKey, modelId);
    }

    public ServerConfig withQueueLimit(int q) {
        return new ServerConfig(host, port, q, timeout, maxBodyBytes, maxMessages, maxMessageChars, maxTotalChars,
                maxTokensLimit, defaultMaxTokens, defaultTemperature, defaultTopK, apiKey, modelId);
    }

}
