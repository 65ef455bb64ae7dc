package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
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
