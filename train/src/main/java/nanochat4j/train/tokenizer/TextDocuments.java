package nanochat4j.train.tokenizer;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Stream;
import nanochat4j.train.data.DataFile;
import nanochat4j.train.data.DataSource;

/**
 * Documents for the tokenizer commands, read through {@link DataSource} ({@code *.parquet}, {@code *.jsonl},
 * {@code *.txt}; Project Gutenberg headers stripped). Unlike the pretraining loader these also look into
 * sub-directories, so {@code ../shared/data/pretrain_text} (whose books sit in {@code gutenberg_books/}) works.
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

    /** nanochat's training split: all files but the last; a single file is used whole. */
    public static List<DataFile> trainFiles(List<DataFile> files) {
        return files.size() < 2 ? files : files.subList(0, files.size() - 1);
    }
}
