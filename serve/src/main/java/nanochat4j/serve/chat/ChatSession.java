package nanochat4j.serve.chat;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * One terminal conversation, as nanochat's chat_cli: the conversation's messages, rendered for each turn by
 * {@link ChatRenderer} (the training format: {@code <|bos|>}, then {@code <|user_start|>text<|user_end|>} and
 * {@code <|assistant_start|>reply<|assistant_end|>} per exchange) with {@code <|assistant_start|>} appended; the reply
 * streams out token by token and is kept as nanochat's assistant message, its calculator calls and their outputs as
 * parts. A base model has no chat format: there each input is a prompt completed on its own ({@code completion} mode).
 */
public final class ChatSession {
    /** Longest input line kept; the engine also cuts over-long prompts from the left. */
    static final int MAX_INPUT_CHARS = 200_000;

    private final Engine engine;
    private final Tokenizer tok;
    private final boolean completion;
    private final int maxTokens;
    private final double temperature;
    private final int topK;
    private final double topP;
    private final List<Conversation.Message> messages = new ArrayList<>();
    private long seed;

    public ChatSession(Engine engine, boolean completion, int maxTokens, double temperature, int topK, double topP, long seed) {
        this.engine = engine;
        this.tok = engine.tokenizer();
        this.completion = completion;
        this.maxTokens = maxTokens;
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.seed = seed;
        clear();
    }

    public void clear() {
        messages.clear();
    }

    /** Tokens of the conversation so far (chat mode). */
    List<Integer> history() {
        int[] ids = messages.isEmpty() ? new int[] {tok.bosId()} : ChatRenderer.render(tok, new Conversation(messages), Integer.MAX_VALUE).ids();
        return Arrays.stream(ids).boxed().toList();
    }

    /** The tokens the model reads to answer {@code user} after the exchanges so far: their rendering and {@code <|assistant_start|>}. */
    int[] prompt(Conversation.Message user) {
        List<Conversation.Message> next = new ArrayList<>(messages);
        next.add(user);
        int[] rendered = ChatRenderer.render(tok, new Conversation(next), Integer.MAX_VALUE).ids();
        int[] ids = Arrays.copyOf(rendered, rendered.length + 1);
        ids[rendered.length] = tok.encodeSpecial("<|assistant_start|>");
        return ids;
    }

    /** Keeps a finished exchange: {@code user}'s message and the reply's tokens (without {@code <|assistant_end|>}). */
    void record(Conversation.Message user, List<Integer> reply) {
        messages.add(user);
        messages.add(assistantMessage(reply));
    }

    /**
     * The reply as nanochat's assistant message: plain text, or parts split at the calculator's special tokens
     * ({@code <|python_start|>code<|python_end|>}, {@code <|output_start|>result<|output_end|>}) around the text.
     */
    private Conversation.Message assistantMessage(List<Integer> reply) {
        int pythonStart = tok.encodeSpecial("<|python_start|>"), pythonEnd = tok.encodeSpecial("<|python_end|>");
        int outputStart = tok.encodeSpecial("<|output_start|>"), outputEnd = tok.encodeSpecial("<|output_end|>");
        List<Conversation.Part> parts = new ArrayList<>();
        String type = "text";
        List<Integer> run = new ArrayList<>();
        for (int t : reply) {
            if (t == pythonStart || t == pythonEnd || t == outputStart || t == outputEnd) {
                addPart(parts, type, run);
                type = t == pythonStart ? "python" : t == outputStart ? "python_output" : "text";
            } else {
                run.add(t);
            }
        }
        addPart(parts, type, run);
        if (parts.isEmpty()) return Conversation.Message.assistant("");
        if (parts.size() == 1 && parts.getFirst().type().equals("text")) return Conversation.Message.assistant(parts.getFirst().text());
        return Conversation.Message.assistant(parts);
    }

    /** Adds {@code run}'s text as a part (a tool part even when empty: its markers were generated) and empties it. */
    private void addPart(List<Conversation.Part> parts, String type, List<Integer> run) {
        if (!run.isEmpty() || !type.equals("text")) parts.add(new Conversation.Part(type, tok.decode(ids(run))));
        run.clear();
    }

    private static int[] ids(List<Integer> tokens) {
        return tokens.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * Removes what a terminal can send but a prompt should not hold: control characters other than tab and newline
     * (escape sequences, NULs, DEL), and anything past {@link #MAX_INPUT_CHARS}.
     */
    static String sanitize(String line) {
        StringBuilder sb = new StringBuilder(Math.min(line.length(), MAX_INPUT_CHARS));
        for (int i = 0; i < line.length() && sb.length() < MAX_INPUT_CHARS; i++) {
            char c = line.charAt(i);
            if (c == '\t' || c == '\n' || (c >= 0x20 && c != 0x7f && !(c >= 0x80 && c < 0xa0))) sb.append(c);
        }
        return sb.toString();
    }

    /** Runs one turn, streaming the reply to {@code out}; returns the reply text. */
    public String turn(String input, PrintStream out) {
        String text = sanitize(input).strip();
        if (text.isEmpty()) return "";
        Conversation.Message user = Conversation.Message.user(text);
        int[] prompt = completion ? tok.encode(text, tok.bosId(), -1) : prompt(user);
        if (completion) out.print(text);
        int assistantEnd = tok.encodeSpecial("<|assistant_end|>");
        List<Integer> reply = new ArrayList<>();
        StringBuilder shown = new StringBuilder();
        Engine.Run run = engine.generate(prompt, new Engine.Settings(1, maxTokens, temperature, topK, topP, seed++), (col, sampled) -> {
            int t = col[0];
            if (t == assistantEnd || t == tok.bosId()) return;
            reply.add(t);
            // Print only whole characters: a token may end in the middle of a UTF-8 sequence.
            String all = tok.decode(ids(reply));
            if (!all.endsWith("\uFFFD") && all.length() > shown.length()) {
                out.print(all.substring(shown.length()));
                out.flush();
                shown.setLength(0);
                shown.append(all);
            }
        });
        String all = tok.decode(ids(reply));
        if (all.length() > shown.length()) out.print(all.substring(shown.length()));
        out.println();
        if (run.truncatedPromptTokens() > 0) {
            out.println("[the conversation is longer than the model's context: its first " + run.truncatedPromptTokens()
                    + " tokens were left out]");
        }
        if (!completion) record(user, reply);
        return all;
    }
}
