package nanochat4j.serve.chat;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * One terminal conversation, as nanochat's chat_cli: the token history starts at {@code <|bos|>}; each user turn
 * appends {@code <|user_start|>text<|user_end|><|assistant_start|>}, the reply streams out token by token and is
 * appended (closed with {@code <|assistant_end|>}). A base model has no chat format: there each input is a prompt
 * completed on its own ({@code completion} mode).
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
    private final List<Integer> history = new ArrayList<>();
    private long seed;

    public ChatSession(Engine engine, boolean completion, int maxTokens, double temperature, int topK, long seed) {
        this.engine = engine;
        this.tok = engine.tokenizer();
        this.completion = completion;
        this.maxTokens = maxTokens;
        this.temperature = temperature;
        this.topK = topK;
        this.seed = seed;
        clear();
    }

    public void clear() {
        history.clear();
        history.add(tok.bosId());
    }

    /** Tokens of the conversation so far (chat mode). */
    List<Integer> history() {
        return history;
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
        int[] prompt;
        if (completion) {
            prompt = tok.encode(text, tok.bosId(), -1);
            out.print(text);
        } else {
            history.add(tok.encodeSpecial("<|user_start|>"));
            for (int t : tok.encode(text)) history.add(t);
            history.add(tok.encodeSpecial("<|user_end|>"));
            history.add(tok.encodeSpecial("<|assistant_start|>"));
            prompt = history.stream().mapToInt(Integer::intValue).toArray();
        }
        int assistantEnd = tok.encodeSpecial("<|assistant_end|>");
        List<Integer> reply = new ArrayList<>();
        StringBuilder shown = new StringBuilder();
        Engine.Run run = engine.generate(prompt, new Engine.Settings(1, maxTokens, temperature, topK, seed++), (col, sampled) -> {
            int t = col[0];
            if (t == assistantEnd || t == tok.bosId()) return;
            reply.add(t);
            // Print only whole characters: a token may end in the middle of a UTF-8 sequence.
            String all = tok.decode(reply.stream().mapToInt(Integer::intValue).toArray());
            if (!all.endsWith("\uFFFD") && all.length() > shown.length()) {
                out.print(all.substring(shown.length()));
                out.flush();
                shown.setLength(0);
                shown.append(all);
            }
        });
        String all = tok.decode(reply.stream().mapToInt(Integer::intValue).toArray());
        if (all.length() > shown.length()) out.print(all.substring(shown.length()));
        out.println();
        if (run.truncatedPromptTokens() > 0) {
            out.println("[the conversation is longer than the model's context: its first " + run.truncatedPromptTokens()
                    + " tokens were left out]");
        }
        if (!completion) {
            history.addAll(reply);
            history.add(assistantEnd);
        }
        return all;
    }
}
