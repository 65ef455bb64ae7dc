package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.Objects;
import java.util.Random;
import org.junit.jupiter.api.Test;

class Utf8Test {

    @Test
    void decodeReplacesInvalidBytesExactlyAsPythonDoes() throws Exception {
        int checked = 0;
        try (BufferedReader r = new BufferedReader(new InputStreamReader(
                Objects.requireNonNull(getClass().getResourceAsStream("/tokenizer/python_utf8_replace.txt")), StandardCharsets.US_ASCII))) {
            for (String l; (l = r.readLine()) != null; ) {
                if (l.startsWith("#")) continue;
                String[] p = l.split(" ");
                byte[] in = HexFormat.of().parseHex(p[0]);
                String got = HexFormat.of().formatHex(Utf8.decode(in).getBytes(StandardCharsets.UTF_8));
                assertEquals(p[1], got, "decode of " + p[0]);
                checked++;
            }
        }
        assertTrue(checked > 1000, "cases read: " + checked);
    }

    @Test
    void surrogateLeadByteEdBeforeA0IsTwoReplacementsLikePython() {
        // Java's own decoder gives one U+FFFD here; Python (and the Unicode maximal-subpart rule) give two
        assertEquals("\uFFFD\uFFFD", Utf8.decode(new byte[] {(byte) 0xED, (byte) 0xBF}));
        assertEquals("\uFFFDA", Utf8.decode(new byte[] {(byte) 0xE2, (byte) 0x82, 'A'}));
    }

    @Test
    void decodeCountsReplacements() {
        byte[] b = {'a', (byte) 0xFF, 'b', (byte) 0xE2, (byte) 0x82};
        Utf8.Decoded d = Utf8.decode(b, 0, b.length);
        assertEquals("a\uFFFDb\uFFFD", d.text());
        assertEquals(2, d.replacements());
    }

    @Test
    void loneSurrogatesEncodeAsReplacementCharacter() {
        assertArrayEquals(new byte[] {'a', (byte) 0xEF, (byte) 0xBF, (byte) 0xBD, 'b'}, Utf8.encode("a\uD800b"));
        assertArrayEquals(new byte[] {(byte) 0xEF, (byte) 0xBF, (byte) 0xBD}, Utf8.encode("\uDC00"));
        assertEquals("\uD83D\uDE42", Utf8.replaceLoneSurrogates("\uD83D\uDE42"), "a valid pair is kept");
        assertEquals("\uFFFD\uD83D\uDE42\uFFFD", Utf8.replaceLoneSurrogates("\uDE42\uD83D\uDE42\uD83D"));
    }

    @Test
    void charEncoderMatchesStringGetBytesOnValidText() {
        Random r = new Random(3);
        for (int t = 0; t < 2000; t++) {
            String s = Utf8.replaceLoneSurrogates(TextGen.random(r, 20));
            char[] c = s.toCharArray();
            byte[] out = new byte[3 * c.length];
            int n = Utf8.encode(c, 0, c.length, out);
            assertArrayEquals(s.getBytes(StandardCharsets.UTF_8), java.util.Arrays.copyOf(out, n), s);
            assertEquals(s, Utf8.decode(java.util.Arrays.copyOf(out, n)));
        }
    }
}
