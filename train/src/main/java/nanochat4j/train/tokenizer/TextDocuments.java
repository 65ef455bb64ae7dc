package nanochat4j.train.tokenizer;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.TreeSet;
import java.util.stream.Stream;
import nanochat4j.model.tokenizer.Utf8;
import nanochat4j.train.data.DataFile;
import nanochat4j.train.data.DataSource;

/**
 * Documents for the tokenizer commands, read through {@link DataSource} ({@code *.parquet}, {@code *.jsonl},
 * {@code *.txt}; Project Gutenberg headers stripped). Unlike the pretraining loader these also look into
 * sub-directories, so {@code ../shared/data/pretrain_text} (whose books sit in {@code gutenberg_books/}) works.
 * A {@code .txt} file that is not valid UTF-8 (which the pretraining reader refuses) is decoded here with U+FFFD
 * replacement, Python's way, and the number of replaced sequences is reported; its documents are its paragraphs
 * (split at blank lines, no Gutenberg stripping).
 */
public final class TextDocuments {
    private TextDocuments() {}

    /** The data files under {@code dir} (it and its sub-directories, each folder's files sorted by name). */
    public static List<DataFile> files(Path dir) throws IOException {
        if (!Files.isDirectory(dir)) throw new IOException("data directory not found: " + dir);
        TreeSet<Path> folders = new TreeSet<>();
        try (Stream<Path> s = Files.walk(dir)) {
            s.filter(p -> Files.isRegularFile(p) && DataFile.isDataFile(p) && !p.getFileName().toString().startsWith("."))
                    .forEach(p -> folders.add(p.getParent()));
        }
        if (folders.isEmpty()) throw new IOException("no *.parquet, *.jsonl or *.txt files in " + dir + " or below it");
        List<DataFile> files = new ArrayList<>();
        for (Path folder : folders) files.addAll(DataSource.open(folder, true).files());
        return files;
    }

    /** The documents of {@code files} in order, read lazily; replaced bytes of broken text files are reported on {@code log}. */
    public static Iterable<String> documents(List<DataFile> files, PrintStream log) {
        return () -> new Iterator<>() {
            int next = 0;
            Iterator<String> docs = Collections.emptyIterator();

            @Override
            public boolean hasNext() {
                while (!docs.hasNext()) {
                    if (next >= files.size()) return false;
                    DataFile f = files.get(next++);
                    try {
                        docs = isBrokenText(f.path()) ? replacedText(f.path(), log).iterator() : DataSource.documents(List.of(f)).iterator();
                    } catch (IOException e) {
                        throw new UncheckedIOException(e);
                    }
                }
                return true;
            }

            @Override
            public String next() {
                if (!hasNext()) throw new NoSuchElementException();
                return docs.next();
            }
        };
    }

    private static boolean isBrokenText(Path p) throws IOException {
        if (!p.getFileName().toString().endsWith(".txt")) return false;
        byte[] b = Files.readAllBytes(p);
        return Utf8.decode(b, 0, b.length).replacements() > 0;
    }

    /** Paragraphs of a text file that is not valid UTF-8, decoded with replacement. */
    static List<String> replacedText(Path p, PrintStream log) throws IOException {
        byte[] b = Files.readAllBytes(p);
        Utf8.Decoded d = Utf8.decode(b, 0, b.length);
        log.printf("warning: %s is not valid UTF-8: %d invalid byte sequence(s) replaced by U+FFFD%n", p, d.replacements());
        String text = d.text();
        if (text.startsWith("\uFEFF")) text = text.substring(1);
        text = text.replace("\r\n", "\n").replace('\r', '\n');
        List<String> docs = new ArrayList<>();
        for (String para : text.split("\n[ \t]*\n\\s*")) {
            para = para.strip();
            if (!para.isEmpty()) docs.add(para);
        }
        return docs;
    }

    /** nanochat's training split: all files but the last; a single file is used whole. */
    public static List<DataFile> trainFiles(List<DataFile> files) {
        return files.size() < 2 ? files : files.subList(0, files.size() - 1);
    }
}
