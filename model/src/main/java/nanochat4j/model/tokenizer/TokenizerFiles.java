package nanochat4j.model.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * Our tokenizer files, in {@code <dir>/}:
 * <ul>
 *   <li>{@code tokenizer.bpe}, UTF-8 text: line 1 {@code nanochat4j-bpe 1} (format and version; another
 *       version is refused by name), {@code pattern <regex>}, {@code specials <n>} then one name per line,
 *       {@code merges <m>} then one {@code left right} id pair per line (merge k makes id 256+k).</li>
 *   <li>{@code token_bytes.bin}: line {@code nanochat4j-token-bytes 1 <vocab>}, then vocab little-endian int32 —
 *       bytes per token, 0 for specials (nanochat's token_bytes.pt, for bits per byte).</li>
 * </ul>
 * Files are written to a temp file, fsynced and renamed, so a crash never leaves half a tokenizer.
 */
public final class TokenizerFiles {
    private TokenizerFiles() {}

    public static final String MODEL_FILE = "tokenizer.bpe";
    public static final String TOKEN_BYTES_FILE = "token_bytes.bin";
    static final String MAGIC = "nanochat4j-bpe";
    static final int VERSION = 1;
    static final String TOKEN_BYTES_MAGIC = "nanochat4j-token-bytes";

    static void save(Tokenizer tok, Path dir) throws IOException {
        int[][] merges = tok.merges();
        if (merges == null) merges = deriveMerges(tok);
        if (tok.pattern().indexOf('\n') >= 0 || tok.pattern().indexOf('\r') >= 0) {
            throw new IllegalArgumentException("the split pattern contains a raw line break; write it with \\n / \\r escapes");
        }
        StringBuilder sb = new StringBuilder(merges.length * 12 + 1024);
        sb.append(MAGIC).append(' ').append(VERSION).append('\n');
        sb.append("pattern ").append(tok.pattern()).append('\n');
        sb.append("specials ").append(tok.specialTokens().size()).append('\n');
        for (String s : tok.specialTokens()) sb.append(s).append('\n');
        sb.append("merges ").append(merges.length).append('\n');
        for (int[] m : merges) sb.append(m[0]).append(' ').append(m[1]).append('\n');
        Files.createDirectories(dir);
        writeAtomically(dir.resolve(MODEL_FILE), sb.toString().getBytes(StandardCharsets.UTF_8));
        writeAtomically(dir.resolve(TOKEN_BYTES_FILE), tokenBytesFile(tok.tokenByteLengths()));
    }

    /** Merge pairs of a vocabulary whose ids 0..255 are raw bytes and every later token joins two earlier ones. */
    private static int[][] deriveMerges(Tokenizer tok) {
        if (!tok.rawByteIds()) {
            throw new IllegalArgumentException("this vocabulary's ids 0..255 are not the raw bytes, so it has no nanochat merge list; "
                    + "export it with TiktokenFormat instead");
        }
        int[][] merges = new int[tok.mergeableCount() - 256][];
        for (int id = 256; id < tok.mergeableCount(); id++) {
            byte[] t = tok.tokenBytes(id);
            for (int k = 1; k < t.length && merges[id - 256] == null; k++) {
                int a = tok.tokenToIdBytes(t, 0, k), b = tok.tokenToIdBytes(t, k, t.length - k);
                if (a >= 0 && a < id && b >= 0 && b < id) merges[id - 256] = new int[] {a, b};
            }
            if (merges[id - 256] == null) {
                throw new IllegalArgumentException("token " + id + " is not the join of two earlier tokens, so this vocabulary has no "
                        + "merge list; export it with TiktokenFormat instead");
            }
        }
        return merges;
    }

    static byte[] tokenBytesFile(int[] lengths) {
        byte[] header = (TOKEN_BYTES_MAGIC + " " + VERSION + " " + lengths.length + "\n").getBytes(StandardCharsets.US_ASCII);
        ByteBuffer buf = ByteBuffer.allocate(header.length + 4 * lengths.length).order(ByteOrder.LITTLE_ENDIAN);
        buf.put(header);
        for (int v : lengths) buf.putInt(v);
        return buf.array();
    }

    static Tokenizer load(Path dir) throws IOException {
        Path file = Files.isDirectory(dir) ? dir.resolve(MODEL_FILE) : dir;
        List<String> lines;
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.UTF_8)) {
            lines = new ArrayList<>();
            for (String l; (l = r.readLine()) != null; ) lines.add(l);
        } catch (NoSuchFileException e) {
            throw new NoSuchFileException(file.toString(), null, "no tokenizer here; train one with ./nanochat4j tok-train");
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IOException(file + " is not a nanochat4j tokenizer file (not UTF-8 text)", e);
        } catch (UncheckedIOException e) {
            throw e.getCause();
        }
        if (lines.isEmpty() || !lines.get(0).startsWith(MAGIC + " ")) {
            String first = lines.isEmpty() ? "(empty file)" : abbreviate(lines.get(0));
            throw new IOException(file + " is not a nanochat4j tokenizer file: line 1 is '" + first + "', expected '" + MAGIC + " " + VERSION + "'");
        }
        String version = lines.get(0).substring(MAGIC.length() + 1).trim();
        if (!version.equals(String.valueOf(VERSION))) {
            throw new IOException(file + " is a nanochat4j tokenizer of format version " + version + "; this build reads version " + VERSION
                    + " (retrain with ./nanochat4j tok-train, or use the build that wrote it)");
        }
        int ln = 1;
        String pattern = field(file, lines, ln++, "pattern");
        int nSpecials = count(file, lines, ln, field(file, lines, ln++, "specials"));
        List<String> specials = new ArrayList<>();
        for (int i = 0; i < nSpecials; i++) {
            if (ln >= lines.size()) throw truncated(file, ln);
            specials.add(lines.get(ln++));
        }
        int nMerges = count(file, lines, ln, field(file, lines, ln++, "merges"));
        int[][] merges = new int[nMerges][];
        for (int k = 0; k < nMerges; k++) {
            if (ln >= lines.size()) throw truncated(file, ln);
            String l = lines.get(ln);
            int sp = l.indexOf(' ');
            try {
                merges[k] = new int[] {Integer.parseInt(l.substring(0, sp)), Integer.parseInt(l.substring(sp + 1))};
            } catch (RuntimeException e) {
                throw new IOException(file + " line " + (ln + 1) + ": expected a merge 'left right', got '" + abbreviate(l) + "'");
            }
            ln++;
        }
        while (ln < lines.size() && lines.get(ln).isEmpty()) ln++;
        if (ln < lines.size()) throw new IOException(file + " line " + (ln + 1) + ": unexpected content after the last merge");
        byte[][] tokens = new byte[256 + nMerges][];
        for (int b = 0; b < 256; b++) tokens[b] = new byte[] {(byte) b};
        for (int k = 0; k < nMerges; k++) {
            int a = merges[k][0], b = merges[k][1], id = 256 + k;
            if (a < 0 || a >= id || b < 0 || b >= id) {
                throw new IOException(file + ": merge " + k + " (" + a + " " + b + ") refers to an id not defined before " + id);
            }
            byte[] t = java.util.Arrays.copyOf(tokens[a], tokens[a].length + tokens[b].length);
            System.arraycopy(tokens[b], 0, t, tokens[a].length, tokens[b].length);
            tokens[id] = t;
        }
        try {
            return new Tokenizer(tokens, pattern, specials, merges);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }

    private static String field(Path file, List<String> lines, int ln, String name) throws IOException {
        if (ln >= lines.size()) throw truncated(file, ln);
        String l = lines.get(ln);
        if (!l.startsWith(name + " ")) throw new IOException(file + " line " + (ln + 1) + ": expected '" + name + " …', got '" + abbreviate(l) + "'");
        return l.substring(name.length() + 1);
    }

    private static int count(Path file, List<String> lines, int ln, String value) throws IOException {
        try {
            int n = Integer.parseInt(value.trim());
            if (n < 0) throw new NumberFormatException();
            return n;
        } catch (NumberFormatException e) {
            throw new IOException(file + " line " + (ln + 1) + ": expected a count, got '" + abbreviate(value) + "'");
        }
    }

    private static IOException truncated(Path file, int ln) {
        return new IOException(file + " is truncated: it ends at line " + ln + " before the counts in its header are complete");
    }

    private static String abbreviate(String s) {
        return s.length() > 80 ? s.substring(0, 80) + "…" : s;
    }

    /** Writes {@code data} to {@code target} via a temp file in the same folder, fsync and atomic rename. */
    public static void writeAtomically(Path target, byte[] data) throws IOException {
        Path dir = target.toAbsolutePath().getParent();
        Files.createDirectories(dir);
        Path tmp = Files.createTempFile(dir, "." + target.getFileName() + ".", ".tmp");
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                ByteBuffer b = ByteBuffer.wrap(data);
                while (b.hasRemaining()) ch.write(b);
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
            }
        } finally {
            Files.deleteIfExists(tmp);
        }
    }
}
