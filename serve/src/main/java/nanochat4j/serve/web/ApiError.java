package nanochat4j.serve.web;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;

/**
 * A request the server refuses, answered in OpenAI's error shape
 * {@code {"error": {"message", "type", "param", "code"}}} with its HTTP status (and a Retry-After for 429/503), so
 * OpenAI client libraries raise their usual exceptions (BadRequestError, RateLimitError, …).
 */
final class ApiError extends Exception {
    final int status;
    final String type;
    final String param;
    final String code;
    /** Seconds a client should wait before retrying; 0 for none. */
    final int retryAfter;

    ApiError(int status, String type, String code, String param, String message, int retryAfter) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.code = code;
        this.param = param;
        this.retryAfter = retryAfter;
    }

    static ApiError badRequest(String param, String message) {
        return new ApiError(400, "invalid_request_error", null, param, message, 0);
    }

    static ApiError notFound(String code, String message) {
        return new ApiError(404, "invalid_request_error", code, null, message, 0);
    }

    ObjectNode toJson(ObjectMapper json) {
        ObjectNode root = json.createObjectNode();
        ObjectNode e = root.putObject("error");
        e.put("message", getMessage());
        e.put("type", type);
        e.put("param", param);
        e.put("code", code);
        return root;
    }
}
