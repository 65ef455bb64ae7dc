package nanochat4j.model.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.ArrayList;
import java.util.List;

/**
 * A chat as nanochat stores it: {@code {"messages": [{"role", "content"}, …]}}. Roles alternate user/assistant
 * starting with user, after an optional leading system message. User and system content is a string; assistant
 * content is a string or a list of parts {@code {"type": "text"|"python"|"python_output", "text"}}.
 */
public record Conversation(List<Message> messages) {

    public Conversation {
        messages = List.copyOf(messages);
    }

    public static Conversation of(Message... messages) {
        return new Conversation(List.of(messages));
    }

    /** One message; {@code parts} is null when the content is the plain string {@code text}. */
    public record Message(String role, String text, List<Part> parts) {
        public Message {
            if (role == null) throw new IllegalArgumentException("message without a role");
            if ((text == null) == (parts == null)) throw new IllegalArgumentException("a message has either text or parts");
            if (parts != null) parts = List.copyOf(parts);
        }

        public static Message system(String text) {
            return new Message("system", text, null);
        }

        public static Message user(String text) {
            return new Message("user", text, null);
        }

        public static Message assistant(String text) {
            return new Message("assistant", text, null);
        }

        public static Message assistant(List<Part> parts) {
            return new Message("assistant", null, parts);
        }
    }

    /** A piece of an assistant message. */
    public record Part(String type, String text) {
        public Part {
            if (!type.equals("text") && !type.equals("python") && !type.equals("python_output")) {
                throw new IllegalArgumentException("unknown part type '" + type + "' (text, python, python_output)");
            }
            if (text == null) throw new IllegalArgumentException("part of type " + type + " without text");
        }

        public static Part text(String text) {
            return new Part("text", text);
        }

        public static Part python(String code) {
            return new Part("python", code);
        }

        public static Part pythonOutput(String output) {
            return new Part("python_output", output);
        }
    }

    /** Reads {@code {"messages": [...]}} or a bare array of messages, as in nanochat's JSONL task files. */
    public static Conversation fromJson(JsonNode node) {
        JsonNode msgs = node.isArray() ? node : node.get("messages");
        if (msgs == null || !msgs.isArray()) throw new IllegalArgumentException("conversation JSON needs a \"messages\" array: " + abbreviate(node));
        List<Message> out = new ArrayList<>();
        for (int i = 0; i < msgs.size(); i++) {
            JsonNode m = msgs.get(i);
            JsonNode role = m.get("role"), content = m.get("content");
            if (role == null || !role.isTextual()) throw new IllegalArgumentException("message " + i + " has no string \"role\": " + abbreviate(m));
            if (content == null) throw new IllegalArgumentException("message " + i + " has no \"content\": " + abbreviate(m));
            if (content.isTextual()) {
                out.add(new Message(role.asText(), content.asText(), null));
            } else if (content.isArray()) {
                List<Part> parts = new ArrayList<>();
                for (JsonNode p : content) {
                    JsonNode type = p.get("type"), text = p.get("text");
                    if (type == null || text == null) throw new IllegalArgumentException("message " + i + " has a part without type/text: " + abbreviate(p));
                    parts.add(new Part(type.asText(), text.asText()));
                }
                out.add(new Message(role.asText(), null, parts));
            } else {
                throw new IllegalArgumentException("message " + i + " content must be a string or a list of parts: " + abbreviate(m));
            }
        }
        return new Conversation(out);
    }

    private static String abbreviate(JsonNode n) {
        String s = String.valueOf(n);
        return s.length() > 200 ? s.substring(0, 200) + "…" : s;
    }
}
