package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import nanochat4j.model.engine.Engine;
import org.junit.jupiter.api.Test;

/** The pieces between the engine and the wire: fitting the context, whole UTF-8 characters, stop sequences. */
class GenerationTest {

    @Test
    void aReplyNeverRunsPastTheContextAndALongConversationKeepsItsNewestTokens() {
        int[] short10 = IntStream.range(0, 10).toArray();
        Generation.Fit f = Generation.fit(short10, 20, 64);
        assertEquals(20, f.maxTokens());
        assertEquals(0, f.truncated());
        f = Generation.fit(short10, 4096, 64);
        assertEquals(54, f.maxTokens(), "the room left after the prompt");
        assertArrayEquals(short10, f.prompt());
        int[] long100 = IntStream.range(0, 100).toArray();
        f = Generation.fit(long100, 4096, 64);
        assertEquals(16, f.maxTokens(), "a quarter of the context for the reply");
        assertEquals(52, f.truncated());
        assertArrayEquals(IntStream.range(52, 100).toArray(), f.prompt(), "the newest tokens stay");
        f = Generation.fit(long100, 5, 64);
        assertEquals(5, f.maxTokens());
        assertEquals(41, f.truncated());
    }

    @Test
    void textLeavesOnlyAtWholeCharacters() {
        byte[] euro = "€".getBytes(StandardCharsets.UTF_8);    // 3 bytes
        byte[] smile = "😀".getBytes(StandardCharsets.UTF_8);  // 4 bytes
        Generation.Utf8Pieces p = new Generation.Utf8Pieces();
        assertEquals("a", p.add(new byte[] {'a', euro[0]}));
        assertEquals("", p.add(new byte[] {euro[1]}));
        assertEquals("€" + "b", p.add(new byte[] {euro[2], 'b', smile[0], smile[1]}));
        assertEquals("😀", p.add(new byte[] {smile[2], smile[3]}));
        assertEquals("", p.drain());
        assertEquals("", p.add(new byte[] {smile[0]}));
        assertEquals("\uFFFD", p.drain(), "an unfinished character left at the end is replaced");
        assertEquals("\uFFFD\uFFFD", p.add(new byte[] {(byte) 0x80, (byte) 0x80}), "stray continuation bytes are not held");
    }

    /** A sink that keeps its reply's text and whether it was told the reply ended. */
    static final class Recording implements Generation.Sink {
        final StringBuilder text = new StringBuilder();
        int ends;
        /** Text after which this sink reports a stop sequence (null: never). */
        final String stopAfter;

        Recording(String stopAfter) {
            this.stopAfter = stopAfter;
        }

        @Override
        public void text(Generation.Part part, String delta) {
            text.append(delta);
            if (stopAfter != null && text.length() >= stopAfter.length()) throw new Generation.Stopped(Generation.Stopped.Why.STOP_SEQUENCE, null);
        }

        @Override
        public void end() {
            ends++;
        }
    }

    /**
     * OpenAI's n: rows decode together and end on their own. A stop sequence in one row ends that row alone ("stop",
     * not told end); the other rows write the same text as without it (one RNG, drawn for every row each step), and
     * the count is every row's tokens while it ran.
     */
    @Test
    void severalRepliesEndOnTheirOwnAndAStopSequenceEndsOnlyItsRow() {
        Engine engine = TestServers.engines(1).get(0);
        int[] prompt = TestServers.TOK.encode("hello there", TestServers.TOK.bosId(), -1);
        Engine.Settings three = new Engine.Settings(3, 12, 1.0, 0, 1.0, 11);
        Recording[] free = {new Recording(null), new Recording(null), new Recording(null)};
        int[] all = new int[1];
        String[] finish = Generation.run(engine, prompt, three, Long.MAX_VALUE, free, all);
        for (int r = 0; r < 3; r++) {
            assertEquals(1, free[r].ends, "row " + r + " told once that it ended");
            assertTrue(finish[r].equals("stop") || finish[r].equals("length"), finish[r]);
        }
        assertTrue(all[0] >= 3 && all[0] <= 3 * 12, "every row's tokens: " + all[0]);
        org.junit.jupiter.api.Assumptions.assumeTrue(free[1].text.length() >= 2, "row 1 wrote too little to stop inside it");

        Recording[] stopped = {new Recording(null), new Recording(free[1].text.substring(0, 1)), new Recording(null)};
        int[] fewer = new int[1];
        String[] f = Generation.run(engine, prompt, three, Long.MAX_VALUE, stopped, fewer);
        assertEquals("stop", f[1]);
        assertEquals(0, stopped[1].ends, "a row ended by a stop sequence is not told end (nothing held back may go)");
        for (int r : new int[] {0, 2}) {
            assertEquals(free[r].text.toString(), stopped[r].text.toString(), "row " + r + " unchanged");
            assertEquals(finish[r], f[r]);
        }
        assertTrue(fewer[0] < all[0], fewer[0] + " tokens counted, against " + all[0] + " without the stop");
        assertThrows(IllegalArgumentException.class, () -> Generation.run(engine, prompt, three, Long.MAX_VALUE, new Recording(null), new int[1]));
    }

    @Test
    void stopSequencesCutBeforeTheMatchEvenAcrossPieces() throws Exception {
        List<String> out = new ArrayList<>();
        StopFilter f = new StopFilter(List.of("STOP", "xy"), out::add);
        f.add("hello S");
        f.add("T");
        assertThrows(Generation.Stopped.class, () -> f.add("OP and more"));
        assertEquals("hello ", String.join("", out));
        List<String> out2 = new ArrayList<>();
        StopFilter g = new StopFilter(List.of("STOP"), out2::add);
        g.add("no stop ST");
        g.add("here");
        g.finish();
        assertEquals("no stop SThere", String.join("", out2));
        List<String> out3 = new ArrayList<>();
        StopFilter none = new StopFilter(List.of(), out3::add);
        none.add("abc");
        assertEquals(List.of("abc"), out3, "no stop sequences: passed through at once");
    }
}
