package nanochat4j.model.checkpoint;

import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;

/**
 * Model checkpoints in nanochat's layout: {@code <dir>/model_<step %06d>.safetensors} (the parameters under their
 * nanochat state-dict names) and {@code <dir>/meta_<step %06d>.json} ({@code model_config}, {@code step},
 * {@code tokenizer}, {@code metrics}, and any further top-level entries the training loop passes).
 * <ul>
 *   <li>both files are written atomically (model first, meta last, so a meta file implies a complete model file);</li>
 *   <li>loading checks every tensor against the config in the meta file: a missing, extra or mis-shaped tensor fails
 *       naming the file and the tensor;</li>
 *   <li>discovery like nanochat's checkpoint_manager: the last step is the largest {@code model_<step>} number, the
 *       default tag is the largest {@code d<N>} folder, else the most recently modified one.</li>
 * </ul>
 */
public final class Checkpoint {
    private Checkpoint() {}

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final Pattern MODEL_FILE = Pattern.compile("model_(\\d+)\\.safetensors");
    private static final Pattern DEPTH_TAG = Pattern.compile("d(\\d+)");

    /**
     * What {@code meta_<step>.json} holds. {@code extra} entries (user config, dataloader state, loop state…) are
     * written as further top-level keys and come back the same way.
     */
    public record Meta(GPTConfig config, long step, String tokenizer, Map<String, Object> metrics,
                       Map<String, Object> extra) {
        public Meta {
            metrics = metrics == null ? Map.of() : metrics;
            extra = extra == null ? Map.of() : extra;
        }
    }

    /** A loaded checkpoint: its meta and the parameters by name (in file order). */
    public record Loaded(Meta meta, Map<String, float[]> params) {}

    public static Path modelFile(Path dir, long step) {
        return dir.resolve(String.format("model_%06d.safetensors", step));
    }

    public static Path metaFile(Path dir, long step) {
        return dir.resolve(String.format("meta_%06d.json", step));
    }

    /**
     * Saves the parameters (name → row-major values; every name of {@code meta.config()} must be present with its
     * shape's element count) and the meta file.
     */
    public static void save(Path dir, Map<String, float[]> params, Meta meta, Safetensors.DType dtype) throws IOException {
        Map<String, int[]> shapes = meta.config().parameterShapes();
        Path file = modelFile(dir, meta.step());
        List<Safetensors.Entry> entries = new ArrayList<>();
        for (Map.Entry<String, int[]> e : shapes.entrySet()) {
            float[] v = params.get(e.getKey());
            if (v == null) throw new IllegalArgumentException(file + ": parameter " + e.getKey() + " is missing from the model");
            entries.add(new Safetensors.Entry(e.getKey(), e.getValue(), dtype, v));
        }
        for (String name : params.keySet()) {
            if (!shapes.containsKey(name)) throw new IllegalArgumentException(file + ": parameter " + name + " is not part of " + meta.config());
        }
        Safetensors.write(file, entries, Map.of("format", "pt", "step", Long.toString(meta.step())));
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", meta.step());
        m.put("model_config", meta.config().toJsonMap());
        if (meta.tokenizer() != null) m.put("tokenizer", meta.tokenizer());
        m.put("metrics", meta.metrics());
        for (Map.Entry<String, Object> e : meta.extra().entrySet()) {
            if (m.containsKey(e.getKey())) throw new IllegalArgumentException("meta extra key " + e.getKey() + " clashes with a reserved key");
            m.put(e.getKey(), e.getValue());
        }
        Safetensors.AtomicFile.write(metaFile(dir, meta.step()), JSON.writeValueAsBytes(m));
    }

    /** Saves a model's parameters (under {@code meta.config()}, which must be the model's) and the meta file. */
    public static void save(Path dir, GPT model, Meta meta, Safetensors.DType dtype) throws IOException {
        if (!model.config().equals(meta.config())) {
            throw new IllegalArgumentException("meta config " + meta.config() + " is not the model's " + model.config());
        }
        save(dir, model.stateDict(), meta, dtype);
    }

    /** Builds the model described by step {@code step}'s meta file and loads its validated parameters. */
    public static GPT loadModel(Path dir, long step) throws IOException {
        Loaded l = load(dir, step);
        GPT model = new GPT(l.meta().config());
        model.loadStateDict(l.params());
        return model;
    }

    /** Reads {@code meta_<step>.json}. */
    public static Meta readMeta(Path dir, long step) throws IOException {
        Path file = metaFile(dir, step);
        if (!Files.exists(file)) throw new IOException(file + ": meta file not found");
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new IOException(file + ": not valid JSON: " + e.getMessage(), e);
        }
        if (root == null || !root.has("model_config")) throw new IOException(file + ": no model_config");
        GPTConfig config;
        try {
            config = GPTConfig.fromJson(root.get("model_config"));
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
        Map<String, Object> all = JSON.convertValue(root, new TypeReference<LinkedHashMap<String, Object>>() {});
        all.remove("model_config");
        all.remove("step");
        Object tok = all.remove("tokenizer");
        Object metrics = all.remove("metrics");
        @SuppressWarnings("unchecked")
        Map<String, Object> metricMap = metrics instanceof Map<?, ?> mm ? (Map<String, Object>) mm : Map.of();
        return new Meta(config, root.path("step").asLong(step), tok == null ? null : tok.toString(), metricMap, all);
    }

    /** Loads and validates step {@code step} from {@code dir}. */
    public static Loaded load(Path dir, long step) throws IOException {
        Meta meta = readMeta(dir, step);
        Path file = modelFile(dir, step);
        if (!Files.exists(file)) throw new IOException(file + ": model file not found");
        Safetensors.Contents c = Safetensors.read(file);
        Map<String, int[]> expected = meta.config().parameterShapes();
        Map<String, float[]> params = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            Safetensors.Entry t = c.tensors().get(e.getKey());
            if (t == null) {
                throw new IOException(file + ": missing tensor " + e.getKey() + " (expected shape " + Arrays.toString(e.getValue())
                        + " for " + meta.config() + ")");
            }
            if (!Arrays.equals(t.shape(), e.getValue())) {
                throw new IOException(file + ": tensor " + e.getKey() + " has shape " + Arrays.toString(t.shape()) + " but "
                        + meta.config() + " needs " + Arrays.toString(e.getValue()));
            }
            params.put(e.getKey(), t.values());
        }
        for (String name : c.tensors().keySet()) {
            if (!expected.containsKey(name)) throw new IOException(file + ": unexpected tensor " + name + " (not a parameter of " + meta.config() + ")");
        }
        return new Loaded(meta, params);
    }

    /** The largest step with a model file in {@code dir}. */
    public static long lastStep(Path dir) throws IOException {
        long best = largestStep(dir, MODEL_FILE);
        if (best < 0) throw new IOException(dir + ": no model_<step>.safetensors checkpoints found");
        return best;
    }

    /** The largest step (group 1) among the names in {@code dir} that {@code modelFile} matches; −1 when none does. */
    public static long largestStep(Path dir, Pattern modelFile) throws IOException {
        long best = -1;
        if (!Files.isDirectory(dir)) return best;
        try (Stream<Path> s = Files.list(dir)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                Matcher m = modelFile.matcher(p.getFileName().toString());
                if (m.matches()) best = Math.max(best, Long.parseLong(m.group(1)));
            }
        }
        return best;
    }

    /** The default model tag under a checkpoints folder: the largest {@code d<N>}, else the most recently modified. */
    public static String largestTag(Path checkpointsDir) throws IOException {
        List<Path> dirs = new ArrayList<>();
        if (Files.isDirectory(checkpointsDir)) {
            try (Stream<Path> s = Files.list(checkpointsDir)) {
                s.filter(Files::isDirectory).forEach(dirs::add);
            }
        }
        if (dirs.isEmpty()) throw new IOException(checkpointsDir + ": no checkpoint folders found");
        String best = null;
        long bestDepth = -1;
        for (Path d : dirs) {
            Matcher m = DEPTH_TAG.matcher(d.getFileName().toString());
            if (m.matches() && Long.parseLong(m.group(1)) > bestDepth) {
                bestDepth = Long.parseLong(m.group(1));
                best = d.getFileName().toString();
            }
        }
        if (best != null) return best;
        Path newest = dirs.getFirst();
        for (Path d : dirs) {
            if (Files.getLastModifiedTime(d).compareTo(Files.getLastModifiedTime(newest)) > 0) newest = d;
        }
        return newest.getFileName().toString();
    }
}
