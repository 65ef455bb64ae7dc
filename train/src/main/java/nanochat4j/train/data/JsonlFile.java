package nanochat4j.train.data;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedInputStream;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;

/**
 * A JSON-lines file: one JSON object per line with a string field {@code text}. Row group g is lines
 * [g·1024, (g+1)·1024); blank lines are skipped (so a group may hold fewer documents). The first call to
 * {@link #rowGroupCount} scans the file once for line offsets, so any group can be read without the ones before.
 */
public final class JsonlFile implements DataFile {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private long[] groupOffsets; // byte offset of the first line of each group

    private JsonlFile(Path path) {
        this.path = path;
    }

    public static JsonlFile open(Path path) throws IOException {
        if (!Files.isRegularFile(path)) throw new NoSuchFileException(path.toString(), null, "JSONL file not found");
        return new JsonlFile(path);
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public synchronized int rowGroupCount() throws IOException {
        if (groupOffsets == null) groupOffsets = scanGroupOffsets();
        return groupOffsets.length;
    }

    private long[] scanGroupOffsets() throws IOException {
        List<Long> offsets = new ArrayList<>();
        try (InputStream in = new BufferedInputStream(Files.newInputStream(path), 1 << 16)) {
            long offset = 0;
            long line = 0;
            boolean atLineStart = true;
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                for (int i = 0; i < n; i++) {
                    if (atLineStart) {
                        if (line % GROUP_DOCS == 0) offsets.add(offset + i);
                        line++;
                        atLineStart = false;
                    }
                    if (buf[i] == '\n') atLineStart = true;
                }
                offset += n;
            }
        }
        long[] out = new long[offsets.size()];
        for (int i = 0; i < out.length; i++) out[i] = offsets.get(i);
        return out;
    }

    @Override
    public List<String> rowGroup(int index) throws IOException {
        int count = rowGroupCount();
        if (index < 0 || index >= count) throw new IndexOutOfBoundsException("row group " + index + " of " + count + " in " + path);
        List<String> docs = new ArrayList<>(GROUP_DOCS);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            ch.position(groupOffsets[index]);
            BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8), 1 << 16);
            long firstLine = (long) index * GROUP_DOCS + 1;
            for (int i = 0; i < GROUP_DOCS; i++) {
                String line = r.readLine();
                if (line == null) break;
                if (line.isBlank()) continue;
                docs.add(text(line, firstLine + i));
            }
        }
        return docs;
    }

    private String text(String line, long lineNumber) throws IOException {
        JsonNode node;
        try {
            node = JSON.readTree(line);
        } catch (JacksonException e) {
            throw new IOException(path + ":" + lineNumber + ": not valid JSON: " + e.getOriginalMessage(), e);
        }
        JsonNode text = node == null ? null : node.get("text");
        if (text == null || !text.isTextual()) {
            throw new IOException(path + ":" + lineNumber + ": no string field \"text\" in this JSON line");
        }
        return text.asText();
    }
}
