package nanochat4j.model.tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Conversation → token ids and loss mask, exactly as nanochat's render_conversation:
 * <ul>
 *   <li>a leading system message is merged into the first user message as {@code system + "\n\n" + user};</li>
 *   <li>BOS (mask 0); user: user_start, text, user_end (all 0); assistant: assistant_start (0), then a string
 *       (1) or parts — text (1), python: python_start, code, python_end (all 1), python_output: output_start,
 *       text, output_end (all 0) — then assistant_end (1);</li>
 *   <li>ids and mask truncated to {@code maxTokens}; render_for_completion drops the last (assistant) message,
 *       renders with the default 2048, and appends assistant_start.</li>
 * </ul>
 */
public final class ChatRenderer {
    private ChatRenderer() {}

    public static final int DEFAULT_MAX_TOKENS = 2048;

    /** Ids and the parallel 0/1 mask (1 = the model is trained to predict this token). */
    public record Rendered(int[] ids, int[] mask) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Rendered r && Arrays.equals(ids, r.ids) && Arrays.equals(mask, r.mask);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(ids) + Arrays.hashCode(mask);
        }

        @Override
        public String toString() {
            return "Rendered[ids=" + Arrays.toString(ids) + ", mask=" + Arrays.toString(mask) + "]";
        }
    }

    public static Rendered render(Tokenizer tok, Conversation conversation, int maxTokens) {
        if (maxTokens < 0) throw new IllegalArgumentException("maxTokens must be >= 0, got " + maxTokens);
        List<Conversation.Message> messages = conversation.messages();
        if (!messages.isEmpty() && messages.get(0).role().equals("system")) {
            if (messages.size() < 2 || !messages.get(1).role().equals("user")) {
                throw new IllegalArgumentException("a system message must be followed by a user message");
            }
            Conversation.Message sys = messages.get(0), user = messages.get(1);
            if (sys.text() == null || user.text() == null) throw new IllegalArgumentException("system and user messages must be strings");
            List<Conversation.Message> merged = new ArrayList<>(messages.subList(1, messages.size()));
            merged.set(0, Conversation.Message.user(sys.text() + "\n\n" + user.text()));
            messages = merged;
        }
        if (messages.isEmpty()) throw new IllegalArgumentException("conversation has no messages");
        int bos = tok.bosId();
        int userStart = tok.encodeSpecial("<|user_start|>"), userEnd = tok.encodeSpecial("<|user_end|>");
        int asstStart = tok.encodeSpecial("<|assistant_start|>"), asstEnd = tok.encodeSpecial("<|assistant_end|>");
        int pyStart = tok.encodeSpecial("<|python_start|>"), pyEnd = tok.encodeSpecial("<|python_end|>");
        int outStart = tok.encodeSpecial("<|output_start|>"), outEnd = tok.encodeSpecial("<|output_end|>");

        IntList ids = new IntList(), mask = new IntList();
        add(ids, mask, bos, 0);
        for (int i = 0; i < messages.size(); i++) {
            Conversation.Message m = messages.get(i);
            String expected = i % 2 == 0 ? "user" : "assistant";
            if (!m.role().equals(expected)) {
                throw new IllegalArgumentException("message " + i + " is from '" + m.role() + "' but must be from " + expected
                        + " (roles alternate user/assistant, starting with user)");
            }
            if (expected.equals("user")) {
                if (m.text() == null) throw new IllegalArgumentException("user message " + i + " must be a string");
                add(ids, mask, userStart, 0);
                add(ids, mask, tok.encode(m.text()), 0);
                add(ids, mask, userEnd, 0);
            } else {
                add(ids, mask, asstStart, 0);
                if (m.text() != null) {
                    add(ids, mask, tok.encode(m.text()), 1);
                } else {
                    for (Conversation.Part part : m.parts()) {
                        int[] value = tok.encode(part.text());
                        switch (part.type()) {
                            case "text" -> add(ids, mask, value, 1);
                            case "python" -> {
                                add(ids, mask, pyStart, 1);
                                add(ids, mask, value, 1);
                                add(ids, mask, pyEnd, 1);
                            }
                            case "python_output" -> {
                                add(ids, mask, outStart, 0);
                                add(ids, mask, value, 0);
                                add(ids, mask, outEnd, 0);
                            }
                            default -> throw new IllegalArgumentException("unknown part type " + part.type());
                        }
                    }
                }
                add(ids, mask, asstEnd, 1);
            }
        }
        int n = Math.min(ids.size(), maxTokens);
        return new Rendered(Arrays.copyOf(ids.toArray(), n), Arrays.copyOf(mask.toArray(), n));
    }

    public static int[] renderForCompletion(Tokenizer tok, Conversation conversation) {
        List<Conversation.Message> messages = conversation.messages();
        if (messages.isEmpty() || !messages.get(messages.size() - 1).role().equals("assistant")) {
            throw new IllegalArgumentException("the last message must be from the assistant (it is replaced by the completion)");
        }
        Rendered r = render(tok, new Conversation(messages.subList(0, messages.size() - 1)), DEFAULT_MAX_TOKENS);
        int[] ids = Arrays.copyOf(r.ids(), r.ids().length + 1);
        ids[ids.length - 1] = tok.encodeSpecial("<|assistant_start|>");
        return ids;
    }

    private static void add(IntList ids, IntList mask, int id, int m) {
        ids.add(id);
        mask.add(m);
    }

    private static void add(IntList ids, IntList mask, int[] values, int m) {
        for (int v : values) add(ids, mask, v, m);
    }
}
