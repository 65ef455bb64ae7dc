package nanochat4j.train.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.tokenizer.Conversation;

/**
 * General conversations from a file (nanochat's SmolTalk and CustomJSON roles): JSONL with one conversation per line,
 * or a single JSON array (e.g. {@code alpaca_5000.json}). A record is {@code {"messages": [...]}}, a bare message
 * array, or alpaca-style {@code {"instruction", "input", "output"}} (user = instruction, plus "\n\n" + input when the
 * input is not empty; assistant = output). Roles must alternate user/assistant after an optional system message,
 * with at least one exchange. Kept in file order (the mixture shuffles).
 */
public final class ConversationFile implements Task {
    private final String name;
    private final List<Example> examples;

    public ConversationFile(Path file, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        this.name = file.getFileName().toString();
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "conversation file not found");
        if (startsWithArray(file)) {
            JsonNode all;
            try {
                all = JsonLines.JSON.readTree(file.toFile());
            } catch (IOException e) {
                throw new IOException(file + ": not a valid JSON array (" + e.getMessage() + ")", e);
            }
            examples = new ArrayList<>();
            for (int i = 0; i < all.size(); i++) {
                try {
                    examples.add(Example.of(parse(all.get(i))));
                } catch (IllegalArgumentException | NullPointerException | IllegalStateException e) {
                    String msg = file + " record " + (i + 1) + ": " + JsonLines.describe(e);
                    if (onBad == JsonLines.OnBadLine.STOP) throw new IOException(msg + " (use --on-bad-line skip to skip such records)", e);
                    warnings.add("skipped " + msg);
                }
            }
        } else {
            examples = JsonLines.read(file, onBad, warnings, n -> Example.of(parse(n)));
        }
        if (examples.isEmpty()) throw new IOException(file + ": no conversations");
    }

    private static boolean startsWithArray(Path file) throws IOException {
        try (var in = Files.newInputStream(file)) {
            int c;
            while ((c = in.read()) != -1) {
                if (c == 0xEF || c == 0xBB || c == 0xBF || Character.isWhitespace(c)) continue; // BOM, blanks
                return c == '[';
            }
        }
        return false;
    }

    /** One record as a conversation, validated as nanochat's SmolTalk validates its rows. */
    public static Conversation parse(JsonNode n) {
        Conversation c;
        if (n.isObject() && n.has("instruction") && n.has("output") && !n.has("messages")) {
            String user = JsonLines.text(n, "instruction");
            String input = n.has("input") && n.get("input").isTextual() ? n.get("input").asText() : "";
            if (!input.isEmpty()) user = user + "\n\n" + input;
            c = Conversation.of(Conversation.Message.user(user), Conversation.Message.assistant(JsonLines.text(n, "output")));
        } else {
            c = Conversation.fromJson(n);
        }
        List<Conversation.Message> rest = c.messages();
        if (!rest.isEmpty() && rest.get(0).role().equals("system")) rest = rest.subList(1, rest.size());
        if (rest.size() < 2) throw new IllegalArgumentException("a conversation needs at least a user and an assistant message");
        for (int i = 0; i < rest.size(); i++) {
            String expected = i % 2 == 0 ? "user" : "assistant";
            if (!rest.get(i).role().equals(expected)) {
                throw new IllegalArgumentException("message " + i + " is from '" + rest.get(i).role() + "' but must be from " + expected);
            }
        }
        return c;
    }

    @Override public String name() { return name; }
    @Override public int size() { return examples.size(); }
    @Override public Example get(int index) { return examples.get(index); }
}
