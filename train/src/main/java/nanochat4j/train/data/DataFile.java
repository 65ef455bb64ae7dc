package nanochat4j.train.data;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;

/**
 * One file of documents, cut into row groups that can each be read on their own — the unit the loader shards
 * by rank and resumes at. Parquet row groups are the file's own (nanochat shards: 1024 docs each); JSONL and
 * text files are cut into groups of {@link #GROUP_DOCS} documents. Documents are numbered 0.. within a group;
 * reading the same group twice gives the same documents, which is what makes an exact resume possible.
 */
public sealed interface DataFile permits ParquetFile, JsonlFile, TextFile {

    /** Documents per row group for the formats that have no row groups of their own (JSONL, text). */
    int GROUP_DOCS = 1024;

    Path path();

    /** Number of row groups (may read the file once, on first call). */
    int rowGroupCount() throws IOException;

    /** The documents of row group {@code index}, in file order. */
    List<String> rowGroup(int index) throws IOException;

    /**
     * Opens a file by its extension: {@code .parquet} (a string column {@code text}), {@code .jsonl} (a string
     * field {@code text} per line), {@code .txt} (plain text, see {@link TextFile}). {@code stripGutenberg} applies
     * to text files only.
     */
    static DataFile open(Path path, boolean stripGutenberg) throws IOException {
        String name = path.getFileName().toString();
        if (name.endsWith(".parquet")) return ParquetFile.open(path);
        if (name.endsWith(".jsonl")) return JsonlFile.open(path);
        if (name.endsWith(".txt")) return new TextFile(path, stripGutenberg);
        throw new IOException("not a data file (want .parquet, .jsonl or .txt): " + path);
    }

    /** True for the extensions {@link #open} reads. */
    static boolean isDataFile(Path path) {
        String name = path.getFileName().toString();
        return name.endsWith(".parquet") || name.endsWith(".jsonl") || name.endsWith(".txt");
    }
}
