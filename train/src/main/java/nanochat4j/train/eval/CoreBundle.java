package nanochat4j.train.eval;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.MappingIterator;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.csv.CsvMapper;
import com.fasterxml.jackson.dataformat.csv.CsvSchema;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The CORE eval bundle in nanochat's layout: {@code core.yaml} (the task list), {@code eval_meta_data.csv}
 * (random baselines) and {@code eval_data/<category>/<task>.jsonl}. Tasks whose file is absent are reported
 * as missing rather than silently dropped from the average.
 */
public record CoreBundle(Path dir, List<CoreTask> tasks, List<String> missing) {

    /** nanochat's default when core.yaml gives no continuation_delimiter. */
    static final String DEFAULT_DELIMITER = " ";

    public static CoreBundle load(Path dir) throws IOException {
        Path yaml = dir.resolve("core.yaml");
        Path meta = dir.resolve("eval_meta_data.csv");
        if (!Files.isRegularFile(yaml) || !Files.isRegularFile(meta)) {
            throw new IOException("no CORE eval bundle at " + dir + " (expected core.yaml, eval_meta_data.csv and "
                    + "eval_data/); download it with `nanochat4j base-eval --download-bundle` or pass --bundle DIR");
        }
        Map<String, Double> baselines = readBaselines(meta);
        JsonNode root = new YAMLMapper().readTree(yaml.toFile());
        JsonNode list = root.get("icl_tasks");
        if (list == null || !list.isArray()) throw new IOException(yaml + ": no icl_tasks list");
        List<CoreTask> tasks = new ArrayList<>();
        List<String> missing = new ArrayList<>();
        int i = 0;
        for (JsonNode t : list) {
            String where = yaml + " icl_tasks[" + i++ + "]";
            String label = required(t, "label", where).asText();
            where = yaml + " task '" + label + "'";
            String uri = required(t, "dataset_uri", where).asText();
            JsonNode shotsNode = required(t, "num_fewshot", where);
            int shots = shotsNode.isArray() ? shotsNode.get(0).asInt() : shotsNode.asInt();
            CoreTask.Type type = CoreTask.Type.parse(required(t, "icl_task_type", where).asText(), where);
            String delim = t.hasNonNull("continuation_delimiter") ? t.get("continuation_delimiter").asText() : DEFAULT_DELIMITER;
            Double rb = baselines.get(label);
            if (rb == null) throw new IOException(meta + ": no random baseline for task '" + label + "' listed in " + yaml);
            Path file = dir.resolve("eval_data").resolve(uri);
            if (Files.isRegularFile(file)) {
                tasks.add(new CoreTask(label, file, shots, type, delim, rb));
            } else {
                missing.add(label);
            }
        }
        return new CoreBundle(dir, List.copyOf(tasks), List.copyOf(missing));
    }

    private static JsonNode required(JsonNode t, String key, String where) throws IOException {
        JsonNode v = t.get(key);
        if (v == null || v.isNull()) throw new IOException(where + ": missing '" + key + "'");
        return v;
    }

    private static Map<String, Double> readBaselines(Path csv) throws IOException {
        Map<String, Double> out = new HashMap<>();
        CsvMapper mapper = new CsvMapper();
        try (MappingIterator<Map<String, String>> it = mapper.readerForMapOf(String.class)
                .with(CsvSchema.emptySchema().withHeader()).readValues(csv.toFile())) {
            int line = 1;
            while (it.hasNext()) {
                line++;
                Map<String, String> row = it.next();
                String task = row.get("Eval Task");
                String rb = row.get("Random baseline");
                if (task == null || rb == null) throw new IOException(csv + ": needs columns 'Eval Task' and 'Random baseline'");
                try {
                    out.put(task.trim(), Double.parseDouble(rb.trim()));
                } catch (NumberFormatException e) {
                    throw new IOException(csv + " line " + line + ": random baseline '" + rb + "' is not a number", e);
                }
            }
        }
        return out;
    }

    /** How a malformed JSONL line is handled. */
    public enum OnBadLine { SKIP, STOP }

    /**
     * Reads a task's examples. A malformed line is reported with file and line number, then skipped or fatal as
     * {@code onBad} says; {@code warnings} receives the skip messages.
     */
    public static List<JsonNode> readExamples(CoreTask task, OnBadLine onBad, List<String> warnings) throws IOException {
        ObjectMapper json = new ObjectMapper();
        List<JsonNode> out = new ArrayList<>();
        List<String> lines = Files.readAllLines(task.file());
        for (int i = 0; i < lines.size(); i++) {
            String line = lines.get(i);
            if (line.isBlank()) continue;
            String where = task.file() + " line " + (i + 1);
            try {
                JsonNode item = json.readTree(line);
                validate(task.type(), item, where);
                out.add(item);
            } catch (IOException | IllegalArgumentException e) {
                String msg = where + ": " + e.getMessage().lines().findFirst().orElse("malformed");
                if (onBad == OnBadLine.STOP) throw new IOException(msg + " (use --on-bad-line skip to skip such lines)", e);
                warnings.add("skipped " + msg);
            }
        }
        return out;
    }

    private static void validate(CoreTask.Type type, JsonNode item, String where) {
        switch (type) {
            case MULTIPLE_CHOICE -> {
                need(item, "query", JsonNode::isTextual, where);
                need(item, "choices", n -> n.isArray() && n.size() >= 2, where);
                need(item, "gold", n -> n.isInt() && n.asInt() >= 0 && n.asInt() < item.get("choices").size(), where);
            }
            case SCHEMA -> {
                need(item, "context_options", n -> n.isArray() && n.size() >= 2, where);
                need(item, "continuation", JsonNode::isTextual, where);
                need(item, "gold", n -> n.isInt() && n.asInt() >= 0 && n.asInt() < item.get("context_options").size(), where);
            }
            case LANGUAGE_MODELING -> {
                need(item, "context", JsonNode::isTextual, where);
                need(item, "continuation", JsonNode::isTextual, where);
            }
        }
    }

    private static void need(JsonNode item, String key, java.util.function.Predicate<JsonNode> ok, String where) {
        JsonNode v = item.get(key);
        if (v == null || !ok.test(v)) throw new IllegalArgumentException("field '" + key + "' missing or invalid");
    }
}
