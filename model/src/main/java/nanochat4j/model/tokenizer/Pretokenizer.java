package nanochat4j.model.tokenizer;

import java.nio.CharBuffer;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Splits text into the chunks BPE works inside, by nanochat's GPT-4-style pattern (numbers of 1–2 digits):
 * <pre>'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+</pre>
 * <ul>
 *   <li>A hand-written scanner does exactly what {@code java.util.regex} does with this pattern
 *       ({@code UNICODE_CHARACTER_CLASS}: {@code \s} is White_Space, {@code \p{L}}/{@code \p{N}} the Unicode
 *       categories; possessive quantifiers and the lookahead resolved by hand, see {@link #chunkEnd}); it is
 *       several times faster. {@code PretokenizerTest} checks it against the regex on random and real text.</li>
 *   <li>Any other pattern (a tokenizer file may carry one) runs through {@code java.util.regex}.</li>
 *   <li>Character classes come from the JDK's Unicode tables (Unicode 16 in JDK 25); code points assigned in later
 *       versions are "other" here but may be letters to a newer engine. A check against Python's {@code regex}
 *       module on 20,000 random strings differed only on such code points.</li>
 *   <li>Text must be free of lone surrogates (callers replace them with U+FFFD first, see {@link Utf8}).</li>
 * </ul>
 */
public final class Pretokenizer {

    /** nanochat's split pattern. */
    public static final String NANOCHAT_PATTERN =
            "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";

    private final String pattern;
    private final Pattern regex; // null: the scanner

    public Pretokenizer(String pattern) {
        this.pattern = pattern;
        this.regex = NANOCHAT_PATTERN.equals(pattern) ? null : compile(pattern);
    }

    /** The pattern compiled the way this class runs it (Unicode classes and case folding). */
    public static Pattern compile(String pattern) {
        return Pattern.compile(pattern, Pattern.UNICODE_CHARACTER_CLASS | Pattern.UNICODE_CASE);
    }

    public String pattern() {
        return pattern;
    }

    /** Receives chunks as half-open char ranges. */
    @FunctionalInterface
    public interface ChunkSink {
        void chunk(int start, int end);
    }

    /** Calls {@code sink} for each chunk of chars [0, n) of {@code s}, in order; the chunks tile the text. */
    public void split(char[] s, int n, ChunkSink sink) {
        if (regex == null) {
            for (int i = 0; i < n; ) {
                int e = chunkEnd(s, i, n);
                sink.chunk(i, e);
                i = e;
            }
            return;
        }
        Matcher m = regex.matcher(CharBuffer.wrap(s, 0, n));
        int last = 0;
        while (m.find()) {
            if (m.end() == m.start()) continue;
            // a custom pattern may skip text; keep it as its own chunk so nothing is lost
            if (m.start() > last) sink.chunk(last, m.start());
            sink.chunk(m.start(), m.end());
            last = m.end();
        }
        if (last < n) sink.chunk(last, n);
    }

    // ---- the scanner -------------------------------------------------------------------------------------

    private static final byte L = 1, N = 2, WS = 3, P = 4;
    private static final byte[] ASCII = new byte[128];

    static {
        for (int c = 0; c < 128; c++) {
            if (Character.isLetter(c)) ASCII[c] = L;
            else if (c >= '0' && c <= '9') ASCII[c] = N;
            else if ((c >= 0x09 && c <= 0x0D) || c == ' ') ASCII[c] = WS;
            else ASCII[c] = P;
        }
    }

    /** Unicode White_Space (what {@code \s} means under UNICODE_CHARACTER_CLASS); every one is in the BMP. */
    static boolean isWhiteSpace(int c) {
        if (c < 0x80) return (c >= 0x09 && c <= 0x0D) || c == ' ';
        return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028
                || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
    }

    private static byte cls(int c) {
        if (c < 0x80) return ASCII[c];
        if (isWhiteSpace(c)) return WS;
        return switch (Character.getType(c)) {
            case Character.UPPERCASE_LETTER, Character.LOWERCASE_LETTER, Character.TITLECASE_LETTER,
                 Character.MODIFIER_LETTER, Character.OTHER_LETTER -> L;
            case Character.DECIMAL_DIGIT_NUMBER, Character.LETTER_NUMBER, Character.OTHER_NUMBER -> N;
            default -> P;
        };
    }

    private static int cp(char[] s, int i, int n) {
        char c = s[i];
        if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s[i + 1])) {
            return Character.toCodePoint(c, s[i + 1]);
        }
        return c;
    }

    private static int width(int cp) {
        return cp >= 0x10000 ? 2 : 1;
    }

    /**
     * End of the chunk that starts at {@code i}. The alternatives are tried in the regex's order:
     * <ol>
     *   <li>{@code '(?i:[sdmt]|ll|ve|re)}: a contraction (case-insensitive, so {@code ſ} counts as s);</li>
     *   <li>{@code [^\r\n\p{L}\p{N}]?+\p{L}+}: letters, optionally led by one char that is not CR/LF/letter/digit
     *       (possessive, but giving it back could not help since that char is no letter);</li>
     *   <li>{@code \p{N}{1,2}};</li>
     *   <li>{@code ' '?[^\s\p{L}\p{N}]++[\r\n]*}: a run of "other" chars with an optional leading space and
     *       trailing CR/LF;</li>
     *   <li>{@code \s*[\r\n]}: whitespace up to and including its last CR/LF (backtracking of {@code \s*});</li>
     *   <li>{@code \s+(?!\S)}: whitespace to the end of text, or all of the run but its last char;</li>
     *   <li>{@code \s+}: a single whitespace char before a non-space.</li>
     * </ol>
     */
    static int chunkEnd(char[] s, int i, int n) {
        int c = cp(s, i, n);
        int w = width(c);
        if (c == '\'' && i + 1 < n) {
            int e = contractionEnd(s, i + 1, n);
            if (e > 0) return e;
        }
        byte k = cls(c);
        if (k == L) return letters(s, i + w, n);
        if (k == N) {
            int j = i + w;
            if (j < n) {
                int d = cp(s, j, n);
                if (cls(d) == N) j += width(d);
            }
            return j;
        }
        if (c != '\r' && c != '\n' && i + w < n) {
            int d = cp(s, i + w, n);
            if (cls(d) == L) return letters(s, i + w + width(d), n);
        }
        if (k == P) return otherRun(s, i, n);
        // c is whitespace
        if (c == ' ' && i + 1 < n && cls(cp(s, i + 1, n)) == P) return otherRun(s, i + 1, n);
        int j = i, lastNewline = -1;
        while (j < n && isWhiteSpace(s[j])) {
            if (s[j] == '\r' || s[j] == '\n') lastNewline = j;
            j++;
        }
        if (lastNewline >= 0) return lastNewline + 1;
        if (j == n) return j;
        return j - i >= 2 ? j - 1 : j;
    }

    private static int contractionEnd(char[] s, int j, int n) {
        char a = s[j];
        if (a == 's' || a == 'S' || a == '\u017F' || a == 'd' || a == 'D' || a == 'm' || a == 'M' || a == 't' || a == 'T') {
            return j + 1;
        }
        if (j + 1 >= n) return -1;
        char b = s[j + 1];
        if ((a == 'l' || a == 'L') && (b == 'l' || b == 'L')) return j + 2;
        if ((a == 'v' || a == 'V' || a == 'r' || a == 'R') && (b == 'e' || b == 'E')) return j + 2;
        return -1;
    }

    private static int letters(char[] s, int j, int n) {
        while (j < n) {
            char ch = s[j];
            if (ch < 0x80) {
                if (ASCII[ch] != L) return j;
                j++;
            } else {
                int d = cp(s, j, n);
                if (cls(d) != L) return j;
                j += width(d);
            }
        }
        return j;
    }

    private static int otherRun(char[] s, int j, int n) {
        while (j < n) {
            int d = cp(s, j, n);
            if (cls(d) != P) break;
            j += width(d);
        }
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
}
