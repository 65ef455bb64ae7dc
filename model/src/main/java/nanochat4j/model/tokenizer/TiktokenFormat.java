package nanochat4j.model.tokenizer;

import java.io.BufferedReader;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * tiktoken's {@code .tiktoken} rank file: one line per mergeable token, {@code <base64 bytes> <rank>}, ranks
 * 0..n-1. Specials are not part of the file (tiktoken passes them separately); on import nanochat's nine are
 * appended and the split pattern is nanochat's unless another is given.
 */
public final class TiktokenFormat {
    private TiktokenFormat() {}

    /** Writes the mergeable ranks of {@code tok} to {@code file} (atomically). */
    public static void write(Tokenizer tok, Path file) throws IOException {
        StringBuilder sb = new StringBuilder(tok.mergeableCount() * 16);
        Base64.Encoder b64 = Base64.getEncoder();
        for (int id = 0; id < tok.mergeableCount(); id++) {
            sb.append(b64.encodeToString(tok.tokenBytes(id))).append(' ').append(id).append('\n');
        }
        TokenizerFiles.writeAtomically(file, sb.toString().getBytes(StandardCharsets.US_ASCII));
    }

    public static Tokenizer read(Path file) throws IOException {
        return read(file, Pretokenizer.NANOCHAT_PATTERN);
    }

    /** Reads a rank file; ranks must be exactly 0..n-1 (in any line order). */
    public static Tokenizer read(Path file, String pattern) throws IOException {
        List<byte[]> tokens = new ArrayList<>();
        Base64.Decoder b64 = Base64.getDecoder();
        try (BufferedReader r = Files.newBufferedReader(file, StandardCharsets.US_ASCII)) {
            int ln = 0;
            for (String l; (l = r.readLine()) != null; ) {
                ln++;
                if (l.isBlank()) continue;
                int sp = l.indexOf(' ');
                byte[] bytes;
                int rank;
                try {
                    bytes = b64.decode(l.substring(0, sp));
                    rank = Integer.parseInt(l.substring(sp + 1).trim());
                } catch (RuntimeException e) {
                    throw new IOException(file + " line " + ln + ": expected '<base64 token> <rank>', got '"
                            + (l.length() > 80 ? l.substring(0, 80) + "…" : l) + "'");
                }
                if (rank < 0 || rank > 10_000_000) throw new IOException(file + " line " + ln + ": rank " + rank + " out of range");
                while (tokens.size() <= rank) tokens.add(null);
                if (tokens.get(rank) != null) throw new IOException(file + " line " + ln + ": rank " + rank + " appears twice");
                tokens.set(rank, bytes);
            }
        } catch (java.nio.charset.MalformedInputException e) {
            throw new IOException(file + " is not a .tiktoken rank file (non-ASCII content)", e);
        }
        if (tokens.isEmpty()) throw new IOException(file + " holds no tokens");
        for (int i = 0; i < tokens.size(); i++) {
            if (tokens.get(i) == null) throw new IOException(file + ": rank " + i + " is missing (ranks must be 0.." + (tokens.size() - 1) + ")");
        }
        try {
            return new Tokenizer(tokens.toArray(new byte[0][]), pattern, Tokenizer.SPECIAL_TOKENS, null);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
    }
}
