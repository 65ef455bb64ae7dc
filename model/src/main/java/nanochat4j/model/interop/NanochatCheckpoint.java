package nanochat4j.model.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.List;
import java.util.regex.Pattern;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.TokenizerFiles;

/**
 * nanochat's model checkpoints: {@code <tag dir>/model_<step %06d>.pt} ({@code torch.save(model.state_dict())}) and
 * {@code meta_<step %06d>.json} (the same meta file we write: {@code model_config} plus training metadata).
 * <ul>
 *   <li>Reading checks the meta's {@code model_config} (an unknown field — a newer architecture knob — is refused by
 *       name) and every tensor against the shapes our GPT has for it: missing, extra or mis-shaped tensors fail naming
 *       the file and the tensor. As nanochat's {@code _patch_missing_keys} does, checkpoints from before
 *       {@code resid_lambdas}/{@code x0_lambdas} get 1 and 0; a {@code torch.compile} prefix {@code _orig_mod.} is
 *       dropped.</li>
 *   <li>Tensors are read one at a time straight into the float arrays the model keeps (fp32, bf16 or fp16 storage),
 *       so the peak is the model's fp32 size plus one 1 MiB buffer.</li>
 *   <li>Writing produces what {@code checkpoint_manager.load_checkpoint} and {@code build_model} load.</li>
 * </ul>
 */
public final class NanochatCheckpoint {
    private NanochatCheckpoint() {}

    private static final Pattern MODEL_FILE = Pattern.compile("model_(\\d+)\\.pt");
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final List<String> CONFIG_FIELDS = List.of("sequence_len", "vocab_size", "n_layer", "n_head", "n_kv_head", "n_embd", "window_pattern");

    /** A checkpoint read from nanochat's files: its meta, parameters by our (= nanochat's) names, the dtype to keep them in. */
    public record Loaded(Checkpoint.Meta meta, Map<String, float[]> params, Safetensors.DType dtype) {}

    public static Path modelFile(Path dir, long step) {
        return dir.resolve(String.format("model_%06d.pt", step));
    }

    /** The largest step with a {@code model_<step>.pt} in {@code dir}. */
    public static long lastStep(Path dir) throws IOException {
        long best = Checkpoint.largestStep(dir, MODEL_FILE);
        if (best < 0) throw new IOException(dir + ": no nanochat model_<step>.pt checkpoints found");
        return best;
    }

    /** True when {@code dir} holds at least one nanochat {@code model_<step>.pt}. */
    public static boolean exists(Path dir) {
        try {
            lastStep(dir);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** True when {@code dir} holds nanochat {@code .pt} checkpoints and none of ours (then commands read those in place). */
    public static boolean onlyNanochat(Path dir) {
        if (!exists(dir)) return false;
        try {
            Checkpoint.lastStep(dir);
            return false;
        } catch (IOException e) {
            return true;
        }
    }

    /** Reads {@code meta_<step>.json}, refusing a {@code model_config} field our GPT does not know. */
    public static Checkpoint.Meta readMeta(Path dir, long step) throws IOException {
        Path metaFile = Checkpoint.metaFile(dir, step);
        if (!Files.isRegularFile(metaFile)) throw new IOException(metaFile + ": meta file not found (nanochat writes it next to the model file)");
        JsonNode root;
        try {
            root = JSON.readTree(metaFile.toFile());
        } catch (IOException e) {
            throw new IOException(metaFile + ": not valid JSON: " + e.getMessage(), e);
        }
        JsonNode mc = root == null ? null : root.get("model_config");
        if (mc == null || !mc.isObject()) throw new IOException(metaFile + ": no model_config object");
        for (var it = mc.fieldNames(); it.hasNext(); ) {
            String f = it.next();
            if (!CONFIG_FIELDS.contains(f)) {
                throw new IOException(metaFile + ": model_config field '" + f + "' (= " + mc.get(f) + ") is not supported by nanochat4j, which builds "
                        + "nanochat's GPT from " + CONFIG_FIELDS);
            }
        }
        return Checkpoint.readMeta(dir, step);
    }

    /** Reads and validates step {@code step} of {@code dir}. */
    public static Loaded read(Path dir, long step) throws IOException {
        Map<String, float[]> params = new LinkedHashMap<>();
        Safetensors.DType dtype = read(dir, step, params::put);
        return new Loaded(readMeta(dir, step), params, dtype);
    }

    /** Receives each parameter as it is read. */
    @FunctionalInterface
    public interface TensorSink {
        void accept(String name, float[] values) throws IOException;
    }

    /**
     * Validates step {@code step} of {@code dir}, then hands the parameters one by one to {@code sink} (so a caller that
     * copies them into a model never holds two copies); returns BF16 if every tensor was stored as bf16, else F32.
     */
    public static Safetensors.DType read(Path dir, long step, TensorSink sink) throws IOException {
        Checkpoint.Meta meta = readMeta(dir, step);
        GPTConfig config = meta.config();
        boolean allBf16 = true;
        try (TorchZip z = TorchZip.open(modelFile(dir, step))) {
            for (Map.Entry<String, TorchZip.TensorRef> e : tensors(z, config).entrySet()) {
                TorchZip.TensorRef t = e.getValue();
                if (t == null) {
                    // older nanochat had neither lambda; 1 and 0 make both a no-op (checkpoint_manager._patch_missing_keys)
                    float[] v = new float[config.nLayer()];
                    if (e.getKey().equals("resid_lambdas")) Arrays.fill(v, 1f);
                    sink.accept(e.getKey(), v);
                    continue;
                }
                allBf16 &= t.dtype() == TorchZip.DType.BF16;
                sink.accept(e.getKey(), z.floats(t));
            }
        }
        return allBf16 ? Safetensors.DType.BF16 : Safetensors.DType.F32;
    }

    /** Checks the meta and every tensor's name, shape and dtype, reading no tensor data (pickle only). */
    public static void validate(Path dir, long step) throws IOException {
        Checkpoint.Meta meta = readMeta(dir, step);
        try (TorchZip z = TorchZip.open(modelFile(dir, step))) {
            tensors(z, meta.config());
        }
    }

    /** Our parameter name → its tensor in the file (null: a lambda nanochat patches in), after every check. */
    private static Map<String, TorchZip.TensorRef> tensors(TorchZip z, GPTConfig config) throws IOException {
        Path file = z.file();
        Map<String, int[]> expected = config.parameterShapes();
        Map<String, TorchZip.TensorRef> raw = new LinkedHashMap<>();
        for (Map.Entry<String, TorchZip.TensorRef> e : z.stateDict().entrySet()) {
            String name = e.getKey().startsWith("_orig_mod.") ? e.getKey().substring("_orig_mod.".length()) : e.getKey();
            if (!expected.containsKey(name)) {
                throw new IOException(file + ": unexpected tensor " + e.getKey() + " (not a parameter of nanochat's GPT for " + config + ")");
            }
            raw.put(name, e.getValue());
        }
        Map<String, TorchZip.TensorRef> out = new LinkedHashMap<>();
        for (Map.Entry<String, int[]> e : expected.entrySet()) {
            String name = e.getKey();
            TorchZip.TensorRef t = raw.get(name);
            if (t == null && !name.equals("resid_lambdas") && !name.equals("x0_lambdas")) {
                throw new IOException(file + ": missing tensor " + name + " (shape " + Arrays.toString(e.getValue()) + " for " + config + ")");
            }
            if (t != null && !Arrays.equals(t.shape(), e.getValue())) {
                throw new IOException(file + ": tensor " + name + " has shape " + Arrays.toString(t.shape()) + " but " + config + " needs "
                        + Arrays.toString(e.getValue()));
            }
            if (t != null && !t.dtype().isFloat()) throw new IOException(file + ": tensor " + name + " is " + t.dtype() + ", not a float tensor");
            out.put(name, t);
        }
        return out;
    }

    /**
     * Writes {@code model_<step>.pt} (every parameter of {@code meta.config()}, in nanochat's order, as fp32 or bf16) and
     * {@code meta_<step>.json} into {@code dir}.
     */
    public static void write(Path dir, Checkpoint.Meta meta, Map<String, float[]> params, Safetensors.DType dtype) throws IOException {
        Path file = modelFile(dir, meta.step());
        Map<String, TorchZip.OutTensor> out = new LinkedHashMap<>();
        TorchZip.DType dt = dtype == Safetensors.DType.BF16 ? TorchZip.DType.BF16 : TorchZip.DType.F32;
        for (Map.Entry<String, int[]> e : meta.config().parameterShapes().entrySet()) {
            float[] v = params.get(e.getKey());
            if (v == null) throw new IllegalArgumentException(file + ": parameter " + e.getKey() + " is missing from the model");
            out.put(e.getKey(), TorchZip.OutTensor.ofFloats(v, dt, e.getValue()));
        }
        for (String name : params.keySet()) {
            if (!out.containsKey(name)) throw new IllegalArgumentException(file + ": parameter " + name + " is not part of " + meta.config());
        }
        TorchZip.writeStateDict(file, out);
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", meta.step());
        m.put("model_config", meta.config().toJsonMap());
        for (Map.Entry<String, Object> e : meta.extra().entrySet()) {
            if (!m.containsKey(e.getKey())) m.put(e.getKey(), e.getValue());
        }
        if (!meta.metrics().isEmpty()) m.put("metrics", meta.metrics());
        if (meta.tokenizer() != null) m.put("tokenizer", meta.tokenizer());
        TokenizerFiles.writeAtomically(Checkpoint.metaFile(dir, meta.step()), JSON.writeValueAsBytes(m));
    }
}
