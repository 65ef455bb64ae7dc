package nanochat4j.serve.web;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * One reply generated on one worker's {@link Engine}, streamed as text pieces:
 * <ul>
 *   <li>the prompt is the conversation rendered as in training ({@link ChatRenderer}) plus {@code <|assistant_start|>},
 *       fitted with the reply into the model's context ({@link #fit});</li>
 *   <li>tokens become text only at whole UTF-8 characters (a token may end inside one), each piece tagged with the
 *       part it belongs to: plain text, a calculator call ({@code <|python_start|>…<|python_end|>}) or the calculator's
 *       output, which the engine forces into the stream;</li>
 *   <li>generation stops at {@code <|assistant_end|>}/{@code <|bos|>}, at {@code maxTokens}, when the sink says the
 *       client is gone (its write fails) or when the deadline passes — the last two by throwing out of the engine's
 *       column callback, which leaves nothing behind (the KV cache belongs to the call), so the worker is free at once.</li>
 * </ul>
 */
final class Generation {
    private Generation() {}

    /** Which part of an assistant message a piece of text belongs to (nanochat's conversation part types). */
    enum Part {
        TEXT("text"), PYTHON("python"), PYTHON_OUTPUT("python_output");

        final String json;

        Part(String json) {
            this.json = json;
        }
    }

    /** Receives the reply as it is made; a failed write (IOException) means the client is gone. */
    interface Sink {
        /** New text of {@code part}. */
        void text(Part part, String delta) throws IOException;

        /** A special token that opens or closes a tool part ({@code <|python_start|>} …), as the tokenizer names it. */
        default void marker(String special) throws IOException {}

        /** The reply ended (the model's end or the token limit), its last text sent: what a sink held back may go. */
        default void end() throws IOException {}
    }

    /** Why a generation ended before the model finished its reply. */
    static final class Stopped extends RuntimeException {
        /** ALL_ENDED stays inside {@link #run}: every reply of several ended, some by stop sequences. */
        enum Why { CLIENT_GONE, TIMEOUT, STOP_SEQUENCE, ALL_ENDED }

        final Why why;

        Stopped(Why why, Throwable cause) {
            super(why.name(), cause, false, false);
            this.why = why;
        }
    }

    /** A prompt and reply length that fit the model's context together; {@code truncated} tokens were cut from the left. */
    record Fit(int[] prompt, int maxTokens, int truncated) {}

    /**
     * Fits a prompt and a requested reply length into {@code context} tokens. A reply never runs past the context:
     * with room left after the prompt it gets at most that room (and ends with finish reason "length" there); a
     * conversation that (nearly) fills the context keeps its newest tokens and leaves a quarter of the context for
     * the reply — rather than cutting the prompt down to make room for a large {@code max_tokens}.
     */
    static Fit fit(int[] prompt, int maxTokens, int context) {
        if (prompt.length + maxTokens <= context) return new Fit(prompt, maxTokens, 0);
        int reply = Math.max(1, Math.min(maxTokens, Math.max(context - prompt.length, context / 4)));
        int keep = Math.min(prompt.length, context - reply);
        int cut = prompt.length - keep;
        return new Fit(cut == 0 ? prompt : java.util.Arrays.copyOfRange(prompt, cut, prompt.length), reply, cut);
    }

    /** The tokens the model reads for a reply to {@code conversation}. */
    static int[] prompt(Tokenizer tok, Conversation conversation) {
        int[] rendered = ChatRenderer.render(tok, conversation, Integer.MAX_VALUE).ids();
        int[] ids = java.util.Arrays.copyOf(rendered, rendered.length + 1);
        ids[rendered.length] = tok.encodeSpecial("<|assistant_start|>");
        return ids;
    }

    /**
     * Runs one reply; returns its finish reason: {@code "stop"} when the model ended it, {@code "length"} at the token
     * limit. Throws {@link Stopped} when the client went away, the deadline passed, or (from the sink) a stop sequence
     * was seen; the counts so far are in {@code counts} either way.
     */
    static String run(Engine engine, int[] prompt, Engine.Settings settings, long deadlineNanos, Sink sink, int[] counts) {
        if (settings.numSamples() != 1) throw new IllegalArgumentException("one sink for " + settings.numSamples() + " replies");
        return runRows(engine, prompt, settings, deadlineNanos, new Sink[] {sink}, counts, false)[0];
    }

    /**
     * Runs {@code settings.numSamples()} replies to one prompt together (OpenAI's {@code n}: the prompt prefilled once,
     * its cache copied into a row per reply), reply r streamed to {@code sinks[r]}. A reply ends on its own: at the
     * model's end ({@code "stop"}), at a stop sequence its sink throws ({@code "stop"}: the sink has already sent the
     * text before the match, and is not told {@link Sink#end}), or at the token limit ({@code "length"}); the others go
     * on. Returns each reply's finish reason. {@code counts[0]} adds up every reply's tokens, the one that ended it
     * included. Throws {@link Stopped} when the client went away or the deadline passed.
     */
    static String[] run(Engine engine, int[] prompt, Engine.Settings settings, long deadlineNanos, Sink[] sinks, int[] counts) {
        return runRows(engine, prompt, settings, deadlineNanos, sinks, counts, true);
    }

    /** Both: with {@code rowStops}, a stop sequence ends its row; without, it propagates as {@link Stopped} (one reply). */
    private static String[] runRows(Engine engine, int[] prompt, Engine.Settings settings, long deadlineNanos, Sink[] sinks, int[] counts,
                                    boolean rowStops) {
        int n = settings.numSamples();
        if (sinks.length != n) throw new IllegalArgumentException(sinks.length + " sinks for " + n + " replies");
        Tokenizer tok = engine.tokenizer();
        int assistantEnd = tok.encodeSpecial("<|assistant_end|>");
        int bos = tok.bosId();
        int pythonStart = tok.encodeSpecial("<|python_start|>"), pythonEnd = tok.encodeSpecial("<|python_end|>");
        int outputStart = tok.encodeSpecial("<|output_start|>"), outputEnd = tok.encodeSpecial("<|output_end|>");
        Utf8Pieces[] pending = new Utf8Pieces[n];
        Part[] part = new Part[n];
        String[] finish = new String[n];
        for (int r = 0; r < n; r++) {
            pending[r] = new Utf8Pieces();
            part[r] = Part.TEXT;
        }
        int[] open = {n};
        try {
            engine.generate(prompt, settings, (column, sampled) -> {
                for (int r = 0; r < n; r++) {
                    if (finish[r] != null) continue;   // that reply has ended: the engine's later tokens for it are not ours
                    int t = column[r];
                    counts[0]++;
                    Sink sink = sinks[r];
                    try {
                        if (t == assistantEnd || t == bos) {
                            flush(sink, part[r], pending[r].drain());
                            sink.end();
                            finish[r] = "stop";
                        } else if (t == pythonStart || t == pythonEnd || t == outputStart || t == outputEnd) {
                            flush(sink, part[r], pending[r].drain());
                            sink.marker(tok.idToToken(t));
                            part[r] = t == pythonStart ? Part.PYTHON : t == outputStart ? Part.PYTHON_OUTPUT : Part.TEXT;
                        } else {
                            flush(sink, part[r], pending[r].add(tok.tokenBytes(t)));
                        }
                    } catch (IOException e) {
                        throw new Stopped(Stopped.Why.CLIENT_GONE, e);
                    } catch (Stopped s) {
                        if (!rowStops || s.why != Stopped.Why.STOP_SEQUENCE) throw s;
                        finish[r] = "stop";
                    }
                    if (finish[r] != null) open[0]--;
                }
                if (open[0] == 0) throw new Stopped(Stopped.Why.ALL_ENDED, null);   // rows ended by stop sequences: no more steps
                if (System.nanoTime() - deadlineNanos > 0) throw new Stopped(Stopped.Why.TIMEOUT, null);
            });
        } catch (Stopped s) {
            if (s.why != Stopped.Why.ALL_ENDED) throw s;
        }
        for (int r = 0; r < n; r++) {
            if (finish[r] != null) continue;
            try {
                flush(sinks[r], part[r], pending[r].drain());
                sinks[r].end();
            } catch (IOException e) {
                throw new Stopped(Stopped.Why.CLIENT_GONE, e);
            } catch (Stopped s) {
                if (!rowStops || s.why != Stopped.Why.STOP_SEQUENCE) throw s;
                finish[r] = "stop";
                continue;
            }
            finish[r] = "length";
        }
        return finish;
    }

    private static void flush(Sink sink, Part part, String text) throws IOException {
        if (!text.isEmpty()) sink.text(part, text);
    }

    /**
     * Bytes of tokens turned into text at character boundaries: what ends inside a UTF-8 sequence waits for the next
     * token (linear in the reply, unlike decoding everything again per token).
     */
    static final class Utf8Pieces {
        private final ByteArrayOutputStream held = new ByteArrayOutputStream();

        /** Adds a token's bytes; returns the text of every complete character so far. */
        String add(byte[] bytes) {
            held.writeBytes(bytes);
            byte[] all = held.toByteArray();
            int cut = completePrefix(all);
            held.reset();
            held.write(all, cut, all.length - cut);
            return new String(all, 0, cut, StandardCharsets.UTF_8);
        }

        /** Whatever is left (an unfinished sequence becomes U+FFFD). */
        String drain() {
            String s = held.toString(StandardCharsets.UTF_8);
            held.reset();
            return s;
        }

        /** Length of the longest prefix that does not end inside a multi-byte sequence that may still complete. */
        static int completePrefix(byte[] b) {
            int n = b.length;
            for (int back = 1; back <= Math.min(3, n); back++) {
                int lead = b[n - back] & 0xff;
                if ((lead & 0xc0) == 0x80) continue;                   // a continuation byte: look further back
                int need = lead < 0xc2 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : lead < 0xf5 ? 4 : 1;   // invalid leads: 1
                return back < need ? n - back : n;
            }
            return n;                                                 // stray continuation bytes: nothing will complete them
        }
    }
}
