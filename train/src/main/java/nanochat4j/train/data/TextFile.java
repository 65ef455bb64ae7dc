package nanochat4j.train.data;

import java.io.IOException;
import java.lang.ref.SoftReference;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A plain UTF-8 text file, cut into documents of bounded size.
 *
 * <p>Decision: a book is not one document. With best-fit packing a document longer than a row is cropped and
 * its tail discarded, so a 600 KB book as one document would lose all but its first T tokens. Instead the text
 * is split at blank lines into paragraphs, and consecutive paragraphs are joined (with one blank line) into
 * documents of at most {@link #MAX_DOC_CHARS} characters, about the length of a web page in nanochat's data; a
 * single paragraph longer than that is cut at the last whitespace before the bound. A short file is therefore
 * one document. Before splitting: a leading BOM is dropped, CRLF and CR become LF, and optionally a Project
 * Gutenberg header and footer are removed (only the text between the "*** START OF …" and "*** END OF …" marker
 * lines is kept; a missing marker keeps that end as is). Row group g holds documents [g·1024, (g+1)·1024).
 */
public final class TextFile implements DataFile {
    /** Upper bound on a document's length in characters. */
    public static final int MAX_DOC_CHARS = 2048;

    private static final Pattern START = Pattern.compile("^\\*\\*\\*\\s*START OF\\b", Pattern.MULTILINE | Pattern.CASE_INSENSITIVE);
    private static final Pattern END = Pattern.compile("^\\*\\*\\*\\s*END OF\\b", Pattern.MULTILINE | Pattern.CASE_INSENSITIVE);
    private static final Pattern PARAGRAPH_BREAK = Pattern.compile("\\n[ \\t]*\\n\\s*");

    private final Path path;
    private final boolean stripGutenberg;
    private SoftReference<List<String>> cache = new SoftReference<>(null);

    TextFile(Path path, boolean stripGutenberg) throws IOException {
        if (!Files.isRegularFile(path)) throw new NoSuchFileException(path.toString(), null, "text file not found");
        this.path = path;
        this.stripGutenberg = stripGutenberg;
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public int rowGroupCount() throws IOException {
        return (documents().size() + GROUP_DOCS - 1) / GROUP_DOCS;
    }

    @Override
    public List<String> rowGroup(int index) throws IOException {
        List<String> docs = documents();
        int count = (docs.size() + GROUP_DOCS - 1) / GROUP_DOCS;
        if (index < 0 || index >= count) throw new IndexOutOfBoundsException("row group " + index + " of " + count + " in " + path);
        return docs.subList(index * GROUP_DOCS, Math.min(docs.size(), (index + 1) * GROUP_DOCS));
    }

    /** All documents of the file (cached softly: the loader reads a file's groups one after another). */
    synchronized List<String> documents() throws IOException {
        List<String> docs = cache.get();
        if (docs == null) {
            String text = normalize(decode(Files.readAllBytes(path)));
            if (stripGutenberg) text = stripGutenberg(text);
            docs = List.copyOf(splitDocuments(text, MAX_DOC_CHARS));
            cache = new SoftReference<>(docs);
        }
        return docs;
    }

    private String decode(byte[] bytes) throws IOException {
        try {
            return StandardCharsets.UTF_8.newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(bytes))
                    .toString();
        } catch (CharacterCodingException e) {
            throw new IOException("text file is not valid UTF-8: " + path, e);
        }
    }

    /** Drops a leading BOM and turns CRLF and lone CR into LF. */
    static String normalize(String text) {
        if (text.startsWith("\uFEFF")) text = text.substring(1);
        if (text.indexOf('\r') >= 0) text = text.replace("\r\n", "\n").replace('\r', '\n');
        return text;
    }

    /**
     * Keeps the text between the Project Gutenberg START and END marker lines (exclusive). The START marker
     * may wrap onto following lines; it ends at the line holding its closing "***".
     */
    static String stripGutenberg(String text) {
        int from = 0;
        Matcher start = START.matcher(text);
        if (start.find()) {
            int close = text.indexOf("***", start.end());
            int lineEnd = text.indexOf('\n', close < 0 ? start.end() : close);
            from = lineEnd < 0 ? text.length() : lineEnd + 1;
        }
        int to = text.length();
        Matcher end = END.matcher(text);
        if (end.find(from)) to = end.start();
        return text.substring(from, to).strip();
    }

    /** Paragraphs (split at blank lines) packed greedily into documents of at most {@code maxChars} chars. */
    static List<String> splitDocuments(String text, int maxChars) {
        List<String> docs = new ArrayList<>();
        StringBuilder doc = new StringBuilder();
        for (String paragraph : PARAGRAPH_BREAK.split(text.strip())) {
            paragraph = paragraph.strip();
            if (paragraph.isEmpty()) continue;
            while (paragraph.length() > maxChars) { // an over-long paragraph: cut at whitespace
                flush(doc, docs);
                int cut = lastWhitespace(paragraph, maxChars);
                docs.add(paragraph.substring(0, cut).strip());
                paragraph = paragraph.substring(cut).strip();
            }
            if (paragraph.isEmpty()) continue;
            if (!doc.isEmpty() && doc.length() + 2 + paragraph.length() > maxChars) flush(doc, docs);
            if (!doc.isEmpty()) doc.append("\n\n");
            doc.append(paragraph);
        }
        flush(doc, docs);
        return docs;
    }

    private static int lastWhitespace(String s, int maxChars) {
        for (int i = maxChars; i > maxChars / 2; i--) {
            if (Character.isWhitespace(s.charAt(i))) return i;
        }
        // no whitespace in the second half: hard cut, never inside a surrogate pair
        return Character.isLowSurrogate(s.charAt(maxChars)) ? maxChars - 1 : maxChars;
    }

    private static void flush(StringBuilder doc, List<String> docs) {
        if (!doc.isEmpty()) docs.add(doc.toString());
        doc.setLength(0);
    }
}
