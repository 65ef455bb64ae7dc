package nanochat4j.train.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.stream.Stream;

/**
 * A directory of documents, as {@code --data DIR} names it: every {@code *.parquet}, {@code *.jsonl} and
 * {@code *.txt} file in it (not in sub-directories; {@code .tmp} leftovers of a download are ignored), sorted by
 * file name. As in nanochat the last file is the validation split and all others are the training split.
 *
 * <p>For a quick pass over the text (tokenizer training): {@code DataSource.open(dir, true).documents(Split.TRAIN)}.
 */
public final class DataSource {

    /** Which part of the data: all files but the last, or the last. */
    public enum Split { TRAIN, VAL }

    private final Path dir;
    private final List<DataFile> files;

    private DataSource(Path dir, List<DataFile> files) {
        this.dir = dir;
        this.files = files;
    }

    /**
     * Lists and opens the data files of {@code dir}; {@code stripGutenberg} removes Project Gutenberg headers and
     * footers from {@code .txt} files. Parquet footers are read and checked here, so a corrupt shard fails now,
     * naming the file.
     */
    public static DataSource open(Path dir, boolean stripGutenberg) throws IOException {
        if (!Files.isDirectory(dir)) throw new IOException("data directory not found: " + dir);
        List<Path> paths;
        try (Stream<Path> s = Files.list(dir)) {
            paths = s.filter(p -> Files.isRegularFile(p) && DataFile.isDataFile(p) && !p.getFileName().toString().startsWith("."))
                    .sorted((a, b) -> a.getFileName().toString().compareTo(b.getFileName().toString()))
                    .toList();
        }
        if (paths.isEmpty()) throw new IOException("no *.parquet, *.jsonl or *.txt files in data directory " + dir);
        List<DataFile> files = new ArrayList<>(paths.size());
        for (Path p : paths) files.add(DataFile.open(p, stripGutenberg));
        return new DataSource(dir, List.copyOf(files));
    }

    public Path dir() {
        return dir;
    }

    /** All files, sorted by name. */
    public List<DataFile> files() {
        return files;
    }

    /** The files of one split: TRAIN = all but the last, VAL = the last. Needs at least two files. */
    public List<DataFile> files(Split split) {
        if (files.size() < 2) {
            throw new IllegalArgumentException("need at least 2 data files in " + dir + " (the last one, by name, is the "
                    + "validation split), found 1: " + files.getFirst().path().getFileName());
        }
        return split == Split.TRAIN ? files.subList(0, files.size() - 1) : files.subList(files.size() - 1, files.size());
    }

    /** The documents of one split, in order (file by file, row group by row group), read lazily. */
    public Iterable<String> documents(Split split) {
        return documents(files(split));
    }

    /** The documents of {@code files}, in order, read lazily; a read error surfaces as {@link UncheckedIOException}. */
    public static Iterable<String> documents(List<DataFile> files) {
        return () -> new Iterator<>() {
            int file = 0;
            int group = 0;
            Iterator<String> docs = List.<String>of().iterator();

            @Override
            public boolean hasNext() {
                try {
                    while (!docs.hasNext()) {
                        if (file >= files.size()) return false;
                        DataFile f = files.get(file);
                        if (group < f.rowGroupCount()) {
                            docs = f.rowGroup(group++).iterator();
                        } else {
                            file++;
                            group = 0;
                        }
                    }
                    return true;
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            }

            @Override
            public String next() {
                if (!hasNext()) throw new NoSuchElementException();
                return docs.next();
            }
        };
    }
}
