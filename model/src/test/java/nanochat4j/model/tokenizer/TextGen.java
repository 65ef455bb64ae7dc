package nanochat4j.model.tokenizer;

import java.util.Random;

/** Random text that stresses the split pattern: all planes, combining marks, emoji, CR/LF mixes, contractions. */
final class TextGen {
    private TextGen() {}

    private static final String[] PIECES = {
        "'s", "'S", "'ll", "'LL", "'Ve", "'re", "'t", "'\u017F", "'", "\r\n", "\r", "\n", "\n\n", " \n", "\t",
        "  ", "   ", "\u00A0", "\u2028", "\u3000", "\u0085", "\u212A", "12", "123456", "\u0663\u0664", "\u2167", "\u00BD",
        "e\u0301", "\u0301", "\u0300a", "\uD83D\uDE42", "\uD83C\uDF0D", "\uD83D\uDC68\u200D\uD83D\uDC69", "\u4F60\u597D",
        "\uD55C\uAD6D\uC5B4", "\u00E9", "\u00DF", "ab", "Hello", " world", "...", "!?", " (x)", "<|bos|>", "\u0000",
        "\uFFFD", "\uD800", "\uDFFF", "\uD834\uDD1E",
    };

    /** A random string of up to {@code maxPieces} pieces: fixed tricky pieces, ASCII, or any code point. */
    static String random(Random r, int maxPieces) {
        StringBuilder sb = new StringBuilder();
        int n = r.nextInt(maxPieces + 1);
        for (int i = 0; i < n; i++) {
            int kind = r.nextInt(10);
            if (kind < 4) {
                sb.append(PIECES[r.nextInt(PIECES.length)]);
            } else if (kind < 8) {
                sb.append((char) (0x20 + r.nextInt(0x5F)));
            } else {
                int cp;
                do {
                    cp = r.nextInt(4) == 0 ? r.nextInt(0x110000) : r.nextInt(0x3000);
                } while (cp >= 0xD800 && cp <= 0xDFFF);
                sb.appendCodePoint(cp);
            }
        }
        return sb.toString();
    }
}
