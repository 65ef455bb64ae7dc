package nanochat4j.serve.web;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import nanochat4j.model.tokenizer.Conversation;

/**
 * One chat completion request, validated: nanochat's chat_web fields ({@code messages}, {@code temperature},
 * {@code top_k}, {@code max_tokens}) and OpenAI's ({@code stream}, {@code stream_options.include_usage}, {@code stop},
 * {@code seed}, {@code max_completion_tokens}, {@code n} (up to {@link #MAX_N} replies, decoded together), {@code top_p}
 * (nucleus sampling after top-k), {@code model}). Fields OpenAI clients
 * send that do not change what we generate (user, penalties of 0, …) are ignored.
 * <p>
 * Messages: an optional leading system (or OpenAI's newer "developer") message, then user and assistant turns
 * alternating, ending with a user turn. Content is a string or a list of parts: {@code {"type": "text", "text"}} as
 * OpenAI clients send them, and for the assistant also nanochat's {@code python} / {@code python_output} parts, so
 * the page can send a reply that used the calculator back as the model wrote it.
 */
record ChatRequest(Conversation conversation, double temperature, int topK, double topP, int maxTokens, int n, long seed, boolean stream,
                   boolean includeUsage, List<String> stop, String model) {

    /**
     * Most replies one request may ask for: they decode together, each with its KV cache row (at d20 and 2,048 tokens,
     * ~0.4 GB a row on a GPU).
     */
    static final int MAX_N = 16;

    /** OpenAI allows at most 4 stop sequences. */
    static final int MAX_STOPS = 4;

    static ChatRequest parse(JsonNode root, ServerConfig c) throws ApiError {
        if (root == null || !root.isObject()) throw ApiError.badRequest(null, "the request body must be a JSON object");
        Conversation conversation = messages(root.get("messages"), c);
        double temperature = number(root, "temperature", c.defaultTemperature(), 0, 2);
        int topK = (int) integer(root, "top_k", c.defaultTopK(), 0, 200);
        double topP = number(root, "top_p", 1, 0, 1);
        String maxField = root.hasNonNull("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        int maxTokens = (int) integer(root, maxField, c.defaultMaxTokens(), 1, c.maxTokensLimit());
        int n = (int) integer(root, "n", 1, 1, MAX_N);
        long seed = root.hasNonNull("seed") ? integer(root, "seed", 0, Long.MIN_VALUE, Long.MAX_VALUE)
                : ThreadLocalRandom.current().nextLong(1L << 31);   // nanochat: a random seed per request
        boolean stream = bool(root, "stream", false);
        JsonNode options = root.get("stream_options");
        boolean includeUsage = options != null && options.isObject() && bool(options, "include_usage", false);
        if (bool(root, "logprobs", false)) throw ApiError.badRequest("logprobs", "logprobs are not supported");
        JsonNode tools = root.get("tools");
        if (tools != null && !tools.isNull() && !(tools.isArray() && tools.isEmpty())) {
            throw ApiError.badRequest("tools", "function tools are not supported (the model's only tool is its built-in calculator)");
        }
        JsonNode model = root.get("model");
        if (model != null && !model.isNull() && !model.isTextual()) throw ApiError.badRequest("model", "model must be a string");
        return new ChatRequest(conversation, temperature, topK, topP, maxTokens, n, seed, stream, includeUsage, stops(root.get("stop")),
                model == null || model.isNull() ? null : model.asText());
    }

    private static Conversation messages(JsonNode msgs, ServerConfig c) throws ApiError {
        if (msgs == null || !msgs.isArray()) throw ApiError.badRequest("messages", "messages must be an array of {role, content}");
        if (msgs.isEmpty()) throw ApiError.badRequest("messages", "at least one message is required");
        if (msgs.size() > c.maxMessages()) {
            throw ApiError.badRequest("messages", "too many messages: " + msgs.size() + " (at most " + c.maxMessages() + ")");
        }
        List<Conversation.Message> out = new ArrayList<>();
        long total = 0;
        for (int i = 0; i < msgs.size(); i++) {
            String where = "messages[" + i + "]";
            JsonNode m = msgs.get(i);
            if (!m.isObject()) throw ApiError.badRequest(where, where + " must be an object {role, content}");
            JsonNode roleNode = m.get("role");
            if (roleNode == null || !roleNode.isTextual()) throw ApiError.badRequest(where + ".role", where + " has no string role");
            String role = roleNode.asText().equals("developer") ? "system" : roleNode.asText();
            int turn = i - (out.isEmpty() || !out.get(0).role().equals("system") ? 0 : 1);
            String expected = role.equals("system") && i == 0 ? "system" : turn % 2 == 0 ? "user" : "assistant";
            if (!role.equals(expected)) {
                throw ApiError.badRequest(where + ".role", where + " has role '" + roleNode.asText() + "' but " + expected
                        + " was expected (an optional first system message, then user and assistant alternate, starting with user)");
            }
            JsonNode content = m.get("content");
            Conversation.Message msg;
            int chars;
            if (content != null && content.isTextual()) {
                msg = new Conversation.Message(role, content.asText(), null);
                chars = content.asText().length();
            } else if (content != null && content.isArray()) {
                List<Conversation.Part> parts = new ArrayList<>();
                StringBuilder text = new StringBuilder();
                chars = 0;
                for (int p = 0; p < content.size(); p++) {
                    JsonNode part = content.get(p);
                    String type = part.path("type").asText("");
                    JsonNode t = part.get("text");
                    boolean allowed = type.equals("text") || (role.equals("assistant") && (type.equals("python") || type.equals("python_output")));
                    if (!allowed || t == null || !t.isTextual()) {
                        throw ApiError.badRequest(where + ".content[" + p + "]", where + ".content[" + p + "] must be {\"type\": \"text\""
                                + (role.equals("assistant") ? " | \"python\" | \"python_output\"" : "") + ", \"text\": string}");
                    }
                    parts.add(new Conversation.Part(type, t.asText()));
                    text.append(t.asText());
                    chars += t.asText().length();
                }
                msg = role.equals("assistant") ? Conversation.Message.assistant(parts) : new Conversation.Message(role, text.toString(), null);
            } else {
                throw ApiError.badRequest(where + ".content", where + " content must be a string or a list of text parts");
            }
            if (chars == 0) throw ApiError.badRequest(where + ".content", where + " has empty content");
            if (chars > c.maxMessageChars()) {
                throw ApiError.badRequest(where + ".content", where + " is " + chars + " characters long (at most " + c.maxMessageChars() + ")");
            }
            total += chars;
            out.add(msg);
        }
        if (total > c.maxTotalChars()) {
            throw ApiError.badRequest("messages", "the messages hold " + total + " characters in all (at most " + c.maxTotalChars() + ")");
        }
        if (!out.get(out.size() - 1).role().equals("user")) {
            throw ApiError.badRequest("messages", "the last message must be from the user (the reply continues the conversation)");
        }
        return new Conversation(out);
    }

    private static List<String> stops(JsonNode stop) throws ApiError {
        List<String> out = new ArrayList<>();
        if (stop == null || stop.isNull()) return out;
        if (stop.isTextual()) {
            out.add(stop.asText());
        } else if (stop.isArray() && stop.size() <= MAX_STOPS) {
            for (JsonNode s : stop) {
                if (!s.isTextual()) throw ApiError.badRequest("stop", "stop must be a string or a list of up to " + MAX_STOPS + " strings");
                out.add(s.asText());
            }
        } else {
            throw ApiError.badRequest("stop", "stop must be a string or a list of up to " + MAX_STOPS + " strings");
        }
        for (String s : out) if (s.isEmpty()) throw ApiError.badRequest("stop", "stop sequences must not be empty");
        return List.copyOf(out);
    }

    private static double number(JsonNode root, String field, double dflt, double lo, double hi) throws ApiError {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isNumber()) throw ApiError.badRequest(field, field + " must be a number, got " + v);
        double d = v.asDouble();
        if (!(d >= lo && d <= hi)) throw ApiError.badRequest(field, field + " " + d + " is outside [" + lo + ", " + hi + "]");
        return d;
    }

    private static long integer(JsonNode root, String field, long dflt, long lo, long hi) throws ApiError {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isIntegralNumber() || !v.canConvertToLong()) throw ApiError.badRequest(field, field + " must be an integer, got " + v);
        long l = v.asLong();
        if (l < lo || l > hi) throw ApiError.badRequest(field, field + " " + l + " is outside [" + lo + ", " + hi + "]");
        return l;
    }

    private static boolean bool(JsonNode root, String field, boolean dflt) throws ApiError {
        JsonNode v = root.get(field);
        if (v == null || v.isNull()) return dflt;
        if (!v.isBoolean()) throw ApiError.badRequest(field, field + " must be true or false, got " + v);
        return v.asBoolean();
    }
}
