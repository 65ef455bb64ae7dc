package nanochat4j.serve.web;

import java.io.IOException;
import java.util.List;

/**
 * OpenAI's {@code stop} sequences over streamed text: holds back the last (longest stop − 1) characters — they may be
 * the start of a stop sequence that the next piece completes — and ends the reply just before the first match, which
 * is never sent.
 */
final class StopFilter {
    /** Where the text goes. */
    interface Out {
        void write(String text) throws IOException;
    }

    private final List<String> stops;
    private final int hold;
    private final Out out;
    private final StringBuilder held = new StringBuilder();

    StopFilter(List<String> stops, Out out) {
        this.stops = stops;
        int longest = 0;
        for (String s : stops) longest = Math.max(longest, s.length());
        this.hold = Math.max(0, longest - 1);
        this.out = out;
    }

    /** Adds text; throws {@link Generation.Stopped} (after sending the text before the match) when a stop sequence appears. */
    void add(String text) throws IOException {
        if (stops.isEmpty()) {
            out.write(text);
            return;
        }
        held.append(text);
        int first = -1;
        for (String s : stops) {
            int at = held.indexOf(s);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0) {
            if (first > 0) out.write(held.substring(0, first));
            held.setLength(0);
            throw new Generation.Stopped(Generation.Stopped.Why.STOP_SEQUENCE, null);
        }
        int cut = held.length() - hold;
        if (cut > 0 && Character.isHighSurrogate(held.charAt(cut - 1))) cut--;   // never split a surrogate pair
        if (cut > 0) {
            out.write(held.substring(0, cut));
            held.delete(0, cut);
        }
    }

    /** Sends what is held back: the reply ended without a stop sequence. */
    void finish() throws IOException {
        if (!held.isEmpty()) out.write(held.toString());
        held.setLength(0);
    }
}
