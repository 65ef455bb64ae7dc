package nanochat4j.serve.web;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The server-sent event of one streamed piece of text, written as bytes: an event whose only changing field is the
 * text is serialized once per reply, split around the text's value, and each piece writes the bytes before it, the
 * escaped text, and the bytes after it. Building and serializing a JSON tree per token ran on the decode thread between
 * two decode steps, in the interpreter until the JIT compiled it, and cost the decode a measurable share of its time
 * (docs/BENCHMARKS.md); the bytes are the same as Jackson writes for the whole event.
 */
final class TextEvent {
    /** Stands for the text in a template, where Jackson writes it as {@code "\u0001"}; no other field may hold it. */
    static final String PLACEHOLDER = "\u0001";
    private static final byte[] QUOTED_PLACEHOLDER = "\"\\u0001\"".getBytes(StandardCharsets.US_ASCII);

    private final byte[] before, after;

    /**
     * An event shaped like {@code template}, which holds {@link #PLACEHOLDER} as the value of exactly one string field
     * (the text) and nowhere else.
     */
    TextEvent(ObjectMapper json, ObjectNode template) {
        byte[] whole;
        try {
            whole = json.writeValueAsBytes(template);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("cannot serialize an event template: " + e.getMessage(), e);
        }
        int at = indexOf(whole, QUOTED_PLACEHOLDER, 0);
        if (at < 0 || indexOf(whole, QUOTED_PLACEHOLDER, at + 1) >= 0) {
            throw new IllegalArgumentException("an event template must hold the text placeholder exactly once: "
                    + new String(whole, StandardCharsets.UTF_8));
        }
        byte[] data = "data: ".getBytes(StandardCharsets.US_ASCII);
        before = new byte[data.length + at + 1];
        System.arraycopy(data, 0, before, 0, data.length);
        System.arraycopy(whole, 0, before, data.length, at + 1);                        // up to and with the opening quote
        byte[] rest = Arrays.copyOfRange(whole, at + QUOTED_PLACEHOLDER.length - 1, whole.length);   // from the closing quote on
        after = Arrays.copyOf(rest, rest.length + 2);
        after[rest.length] = '\n';
        after[rest.length + 1] = '\n';
    }

    /** Writes the event of {@code text} (whole characters: a piece never splits a surrogate pair). */
    void write(OutputStream os, String text) throws IOException {
        os.write(before);
        os.write(JsonStringEncoder.getInstance().quoteAsUTF8(text));
        os.write(after);
    }

    private static int indexOf(byte[] in, byte[] what, int from) {
        outer:
        for (int i = from; i <= in.length - what.length; i++) {
            for (int j = 0; j < what.length; j++) if (in[i + j] != what[j]) continue outer;
            return i;
        }
        return -1;
    }
}
