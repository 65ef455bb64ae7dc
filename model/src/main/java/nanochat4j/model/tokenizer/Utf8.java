package nanochat4j.model.tokenizer;

import java.nio.charset.StandardCharsets;

/**
 * UTF-8 with the replacement rules the rest of the pipeline relies on.
 * <ul>
 *   <li>Encoding: a lone surrogate in a Java string (which has no UTF-8 form) becomes U+FFFD (EF BF BD), as
 *       Rust's {@code from_utf16_lossy} and the WHATWG encoder do; Java's own encoder would write '?'.</li>
 *   <li>Decoding: invalid bytes become U+FFFD by the Unicode "maximal subpart" rule, exactly as Python's
 *       {@code bytes.decode('utf-8', 'replace')} does (Java's decoder differs on e.g. ED A0..BF).</li>
 * </ul>
 */
public final class Utf8 {
    private Utf8() {}

    /** True when {@code s} contains a surrogate that is not part of a valid pair. */
    public static boolean hasLoneSurrogate(CharSequence s) {
        for (int i = 0, n = s.length(); i < n; i++) {
            char c = s.charAt(i);
            if (Character.isSurrogate(c)) {
                if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) i++;
                else return true;
            }
        }
        return false;
    }

    /** {@code s} with every lone surrogate replaced by U+FFFD (the same string when there is none). */
    public static String replaceLoneSurrogates(String s) {
        if (!hasLoneSurrogate(s)) return s;
        StringBuilder b = new StringBuilder(s.length());
        for (int i = 0, n = s.length(); i < n; i++) {
            char c = s.charAt(i);
            if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                b.append(c).append(s.charAt(++i));
            } else {
                b.append(Character.isSurrogate(c) ? '\uFFFD' : c);
            }
        }
        return b.toString();
    }

    /** UTF-8 bytes of {@code s}, lone surrogates as U+FFFD. */
    public static byte[] encode(String s) {
        return replaceLoneSurrogates(s).getBytes(StandardCharsets.UTF_8);
    }

    /**
     * Encodes chars [off, off+len) of {@code s} (no lone surrogates: callers sanitize first) into {@code out}
     * from 0; returns the byte count. {@code out} must hold 3·len bytes.
     */
    static int encode(char[] s, int off, int len, byte[] out) {
        int o = 0;
        for (int i = off, end = off + len; i < end; i++) {
            char c = s[i];
            if (c < 0x80) {
                out[o++] = (byte) c;
            } else if (c < 0x800) {
                out[o++] = (byte) (0xC0 | (c >> 6));
                out[o++] = (byte) (0x80 | (c & 0x3F));
            } else if (Character.isHighSurrogate(c) && i + 1 < end && Character.isLowSurrogate(s[i + 1])) {
                int cp = Character.toCodePoint(c, s[++i]);
                out[o++] = (byte) (0xF0 | (cp >> 18));
                out[o++] = (byte) (0x80 | ((cp >> 12) & 0x3F));
                out[o++] = (byte) (0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (byte) (0x80 | (cp & 0x3F));
            } else {
                if (Character.isSurrogate(c)) c = '\uFFFD';
                out[o++] = (byte) (0xE0 | (c >> 12));
                out[o++] = (byte) (0x80 | ((c >> 6) & 0x3F));
                out[o++] = (byte) (0x80 | (c & 0x3F));
            }
        }
        return o;
    }

    /** A decoded string and how many U+FFFD replacements the decoder inserted. */
    public record Decoded(String text, long replacements) {}

    /** Decodes with Python's replacement semantics. */
    public static String decode(byte[] b) {
        return decode(b, 0, b.length).text();
    }

    /** Decodes bytes [off, off+len) with Python's replacement semantics, counting replacements. */
    public static Decoded decode(byte[] b, int off, int len) {
        // Fast path: the JDK decoder (intrinsic) agrees with Python on valid input, and on invalid input it
        // always inserts a U+FFFD, so a result without one came from valid bytes.
        String fast = new String(b, off, len, StandardCharsets.UTF_8);
        if (fast.indexOf('\uFFFD') < 0) return new Decoded(fast, 0);
        int bad = firstInvalid(b, off, len);
        if (bad < 0) return new Decoded(fast, 0);
        StringBuilder sb = new StringBuilder(len);
        sb.append(new String(b, off, bad - off, StandardCharsets.UTF_8));
        long replaced = 0;
        int i = bad, end = off + len;
        while (i < end) {
            int n = validLength(b, i, end);
            if (n > 0) {
                int cp = codePoint(b, i, n);
                sb.appendCodePoint(cp);
                i += n;
            } else {
                sb.append('\uFFFD');
                replaced++;
                i += maximalSubpart(b, i, end);
            }
        }
        return new Decoded(sb.toString(), replaced);
    }

    /** Offset of the first byte that does not start a valid sequence, or -1 when all is valid. */
    static int firstInvalid(byte[] b, int off, int len) {
        int i = off, end = off + len;
        while (i < end) {
            if (b[i] >= 0) {
                i++;
                continue;
            }
            int n = validLength(b, i, end);
            if (n == 0) return i;
            i += n;
        }
        return -1;
    }

    /** Length of the valid sequence starting at i, or 0 when it is invalid or truncated. */
    private static int validLength(byte[] b, int i, int end) {
        int n = sequenceLength(b[i] & 0xFF);
        return n > 0 && wellFormedPrefix(b, i, end) == n ? n : 0;
    }

    /** Bytes covered by one U+FFFD at an invalid position i: the lead byte plus the valid prefix that follows. */
    private static int maximalSubpart(byte[] b, int i, int end) {
        return Math.max(1, wellFormedPrefix(b, i, end));
    }

    /** Bytes in the sequence a lead byte starts (1–4), or 0 for a byte that cannot start one. */
    private static int sequenceLength(int c) {
        if (c < 0x80) return 1;
        if (c >= 0xC2 && c <= 0xDF) return 2;
        if (c >= 0xE0 && c <= 0xEF) return 3;
        if (c >= 0xF0 && c <= 0xF4) return 4;
        return 0;
    }

    /**
     * How many bytes from i are a well-formed prefix of a UTF-8 sequence (Unicode's table 3-7: the lead byte narrows
     * the second byte's range): 0 when b[i] cannot start one, the sequence's full length when it is complete.
     */
    private static int wellFormedPrefix(byte[] b, int i, int end) {
        int c = b[i] & 0xFF, n = sequenceLength(c);
        if (n <= 1) return n;
        int lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
        int hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        int k = 1;
        while (k < n && i + k < end) {
            int ck = b[i + k] & 0xFF;
            if (k == 1 ? ck < lo || ck > hi : ck < 0x80 || ck > 0xBF) break;
            k++;
        }
        return k;
    }

    private static int codePoint(byte[] b, int i, int n) {
        int c = b[i] & 0xFF;
        return switch (n) {
            case 1 -> c;
            case 2 -> ((c & 0x1F) << 6) | (b[i + 1] & 0x3F);
            case 3 -> ((c & 0x0F) << 12) | ((b[i + 1] & 0x3F) << 6) | (b[i + 2] & 0x3F);
            default -> ((c & 0x07) << 18) | ((b[i + 1] & 0x3F) << 12) | ((b[i + 2] & 0x3F) << 6) | (b[i + 3] & 0x3F);
        };
    }
}
