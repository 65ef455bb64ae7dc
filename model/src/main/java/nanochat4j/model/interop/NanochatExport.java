package nanochat4j.model.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.TiktokenFormat;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;

/**
 * Exports one of our checkpoints with its tokenizer:
 * <ul>
 *   <li>{@link #toNanochat}: a nanochat base dir — {@code tokenizer/tokenizer.pkl} + {@code token_bytes.pt},
 *       {@code <source folder>/<tag>/model_<step>.pt} + {@code meta_<step>.json} — that nanochat's
 *       {@code checkpoint_manager.load_model} and {@code RustBPETokenizer.from_directory} load (point
 *       {@code NANOCHAT_BASE_DIR} at it);</li>
 *   <li>{@link #toHuggingFace}: a Hugging Face-style folder — {@code model.safetensors} (nanochat's state-dict names),
 *       {@code config.json} ({@code model_type: nanochat}, nanochat's {@code model_config} fields, their usual HF
 *       aliases, the fixed architecture constants and the tokenizer's layout) and {@code tokenizer.tiktoken}
 *       (tiktoken rank file; specials and split pattern in config.json).</li>
 * </ul>
 * The dtype is the stored one (bf16 stays bf16) unless one is given.
 */
public final class NanochatExport {
    private NanochatExport() {}

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    /** Which of our checkpoints to export (tag/step null: largest tag, last step) and the dtype (null: as stored). */
    public record Options(ModelSource source, String tag, Long step, Safetensors.DType dtype) {}

    /** A checkpoint of ours resolved to its folder and step, loaded, with its tokenizer and stored dtype. */
    record Source(Path dir, long step, Checkpoint.Loaded ck, Tokenizer tok, Safetensors.DType dtype) {}

    static Source load(Path baseDir, Options o) throws IOException {
        Path root = o.source().dir(baseDir);
        if (!Files.isDirectory(root)) throw new IOException("no " + o.source().name().toLowerCase() + " checkpoints: " + root + " does not exist");
        String tag = o.tag() != null ? o.tag() : Checkpoint.largestTag(root);
        Path dir = root.resolve(tag);
        Checkpoint.Loaded ck;
        long step;
        Safetensors.DType stored;
        if (NanochatCheckpoint.onlyNanochat(dir)) {
            // a nanochat base dir given as --base-dir: convert straight from its .pt (e.g. to the HF layout)
            step = o.step() != null ? o.step() : NanochatCheckpoint.lastStep(dir);
            NanochatCheckpoint.Loaded l = NanochatCheckpoint.read(dir, step);
            ck = new Checkpoint.Loaded(l.meta(), l.params());
            stored = l.dtype();
        } else {
            step = o.step() != null ? o.step() : Checkpoint.lastStep(dir);
            stored = storedDtype(Checkpoint.modelFile(dir, step));
            ck = Checkpoint.load(dir, step);
        }
        Tokenizer tok = ModelSource.loadTokenizer(baseDir.resolve("tokenizer"));
        if (tok.vocabSize() != ck.meta().config().vocabSize()) {
            throw new IOException("tokenizer in " + baseDir.resolve("tokenizer") + " has " + tok.vocabSize() + " tokens but the checkpoint of step "
                    + step + " in " + dir + " has vocab " + ck.meta().config().vocabSize());
        }
        return new Source(dir, step, ck, tok, o.dtype() != null ? o.dtype() : stored);
    }

    /** Writes a nanochat base dir under {@code out}; returns the model file written. */
    public static Path toNanochat(Path baseDir, Options o, Path out) throws IOException {
        Source s = load(baseDir, o);
        NanochatTokenizer.write(s.tok(), out.resolve("tokenizer"));
        Path dir = o.source().dir(out).resolve(s.dir().getFileName().toString());
        NanochatCheckpoint.write(dir, s.ck().meta(), s.ck().params(), s.dtype());
        return NanochatCheckpoint.modelFile(dir, s.step());
    }

    /** Writes a Hugging Face-style folder {@code out}; returns the weights file written. */
    public static Path toHuggingFace(Path baseDir, Options o, Path out) throws IOException {
        Source s = load(baseDir, o);
        GPTConfig c = s.ck().meta().config();
        List<Safetensors.Entry> entries = new ArrayList<>();
        for (Map.Entry<String, int[]> e : c.parameterShapes().entrySet()) {
            entries.add(new Safetensors.Entry(e.getKey(), e.getValue(), s.dtype(), s.ck().params().get(e.getKey())));
        }
        Path weights = out.resolve("model.safetensors");
        Safetensors.write(weights, entries, Map.of("format", "pt"));
        TiktokenFormat.write(s.tok(), out.resolve("tokenizer.tiktoken"));
        Map<String, Object> cfg = new LinkedHashMap<>();
        cfg.put("model_type", "nanochat");
        cfg.put("architectures", List.of("NanochatGPT"));
        cfg.put("nanochat_model_config", c.toJsonMap());
        cfg.put("vocab_size", c.vocabSize());
        cfg.put("padded_vocab_size", c.paddedVocab());
        cfg.put("hidden_size", c.nEmbd());
        cfg.put("num_hidden_layers", c.nLayer());
        cfg.put("num_attention_heads", c.nHead());
        cfg.put("num_key_value_heads", c.nKvHead());
        cfg.put("head_dim", c.headDim());
        cfg.put("intermediate_size", 4 * c.nEmbd());
        cfg.put("max_position_embeddings", c.sequenceLen());
        cfg.put("sliding_window_sizes", c.windowSizes());
        cfg.put("rope_theta", GPT.ROPE_BASE);
        cfg.put("final_logit_softcapping", GPT.SOFTCAP);
        cfg.put("tie_word_embeddings", false);
        cfg.put("torch_dtype", s.dtype() == Safetensors.DType.BF16 ? "bfloat16" : "float32");
        Map<String, Object> tokCfg = new LinkedHashMap<>();
        tokCfg.put("file", "tokenizer.tiktoken");
        tokCfg.put("pattern", s.tok().pattern());
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (String name : s.tok().specialTokens()) specials.put(name, s.tok().encodeSpecial(name));
        tokCfg.put("special_tokens", specials);
        cfg.put("tokenizer", tokCfg);
        cfg.put("bos_token_id", s.tok().bosId());
        cfg.put("eos_token_id", s.tok().encodeSpecial("<|assistant_end|>"));
        cfg.put("step", s.step());
        TokenizerFiles.writeAtomically(out.resolve("config.json"), JSON.writeValueAsBytes(cfg));
        return weights;
    }

    /** BF16 when every tensor of a safetensors file is stored as BF16, else F32 (reads the header only). */
    static Safetensors.DType storedDtype(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            while (len.hasRemaining() && ch.read(len) >= 0) { }
            long n = len.flip().getLong();
            if (n <= 0 || n > (100 << 20) || n > ch.size() - 8) throw new IOException(file + ": not a safetensors file (header length " + n + ")");
            ByteBuffer head = ByteBuffer.allocate((int) n);
            while (head.hasRemaining() && ch.read(head) >= 0) { }
            JsonNode h = JSON.readTree(head.array());
            boolean allBf16 = true;
            for (var it = h.properties().iterator(); it.hasNext(); ) {
                var e = it.next();
                if (!e.getKey().equals("__metadata__")) allBf16 &= "BF16".equals(e.getValue().path("dtype").asText());
            }
            return allBf16 ? Safetensors.DType.BF16 : Safetensors.DType.F32;
        }
    }
}
