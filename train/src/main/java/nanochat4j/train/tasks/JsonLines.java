package nanochat4j.train.tasks;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;
import java.util.zip.GZIPInputStream;

/**
 * Reads a task file of one JSON object per line ({@code .jsonl}, or {@code .jsonl.gz}), turning each into a record
 * with {@code parse}. A line that is not JSON or that {@code parse} rejects is reported with the file and line number,
 * then skipped (its message kept in {@code warnings}) or fatal, as {@link OnBadLine} says.
 */
public final class JsonLines {
    private JsonLines() {}

    static final ObjectMapper JSON = new ObjectMapper();

    /** What to do with a malformed line. */
    public enum OnBadLine { SKIP, STOP }

    public static <T> List<T> read(Path file, OnBadLine onBad, List<String> warnings, Function<JsonNode, T> parse) throws IOException {
        if (!Files.isRegularFile(file)) throw new NoSuchFileException(file.toString(), null, "task data file not found");
        List<T> out = new ArrayList<>();
        try (InputStream raw = Files.newInputStream(file);
             InputStream in = file.getFileName().toString().endsWith(".gz") ? new GZIPInputStream(raw) : raw;
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            String line;
            int lineNo = 0;
            while ((line = r.readLine()) != null) {
                lineNo++;
                if (line.isBlank()) continue;
                try {
                    out.add(parse.apply(JSON.readTree(line)));
                } catch (JacksonException | IllegalArgumentException | NullPointerException | IllegalStateException e) {
                    String msg = file + " line " + lineNo + ": " + describe(e);
                    if (onBad == OnBadLine.STOP) throw new IOException(msg + " (use --on-bad-line skip to skip such lines)", e);
                    warnings.add("skipped " + msg);
                }
            }
        }
        return out;
    }

    static String describe(Exception e) {
        if (e instanceof JacksonException j) return "not valid JSON (" + j.getOriginalMessage() + ")";
        if (e instanceof NullPointerException) return "a required field is missing";
        return e.getMessage();
    }

    /** A required string field. */
    static String text(JsonNode n, String field) {
        JsonNode v = n.get(field);
        if (v == null || !v.isTextual()) throw new IllegalArgumentException("no string field \"" + field + "\"");
        return v.asText();
    }
}
