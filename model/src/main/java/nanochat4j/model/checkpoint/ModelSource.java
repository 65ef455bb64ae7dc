package nanochat4j.model.checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.interop.NanochatCheckpoint;
import nanochat4j.model.interop.NanochatTokenizer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;
import nanochat4j.tensor.Tensor;

/**
 * Where each training stage keeps its checkpoints under the base dir (nanochat's layout), and loading "the model a
 * user means": a source, an optional tag (default: largest {@code d<N>}) and an optional step (default: latest),
 * together with the tokenizer it was trained with. A nanochat base dir (PyTorch {@code model_<step>.pt},
 * {@code tokenizer.pkl}) loads the same way, read in place through {@code interop} (nothing is converted on disk).
 */
public enum ModelSource {
    BASE("base_checkpoints"),
    SFT("chatsft_checkpoints"),
    RL("chatrl_checkpoints");

    private final String folder;

    ModelSource(String folder) {
        this.folder = folder;
    }

    /** {@code <base>/<folder>}: the folder of all tags of this source. */
    public Path dir(Path baseDir) {
        return baseDir.resolve(folder);
    }

    /** True when at least one checkpoint of this source exists. */
    public boolean exists(Path baseDir) {
        try {
            Path tagDir = dir(baseDir).resolve(Checkpoint.largestTag(dir(baseDir)));
            if (NanochatCheckpoint.exists(tagDir)) return true;
            Checkpoint.lastStep(tagDir);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    public static ModelSource parse(String s) {
        try {
            return valueOf(s.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown model source '" + s + "' (use base, sft or rl)");
        }
    }

    /** A model ready for inference, its tokenizer, its meta and where it came from. */
    public record Loaded(GPT model, Tokenizer tokenizer, Checkpoint.Meta meta, Path dir, long step) {}

    /**
     * Loads {@code <base>/<folder>/<tag>/model_<step>}; tag null → largest d&lt;N&gt; tag, step null → last step. The
     * tokenizer comes from {@code tokenizerDir} and must match the model's vocabulary.
     */
    public Loaded load(Path baseDir, String tag, Long step, Path tokenizerDir) throws IOException {
        Path root = dir(baseDir);
        if (!Files.isDirectory(root)) {
            throw new IOException("no " + name().toLowerCase(Locale.ROOT) + " checkpoints: " + root + " does not exist (train one first"
                    + (this == BASE ? " with `nanochat4j base-train`" : "") + ")");
        }
        String t = tag != null ? tag : Checkpoint.largestTag(root);
        Path dir = root.resolve(t);
        if (!Files.isDirectory(dir)) throw new IOException("no checkpoint tag '" + t + "' in " + root);
        boolean nanochat = NanochatCheckpoint.onlyNanochat(dir);
        long s = step != null ? step : nanochat ? NanochatCheckpoint.lastStep(dir) : Checkpoint.lastStep(dir);
        Path modelFile = nanochat ? NanochatCheckpoint.modelFile(dir, s) : Checkpoint.modelFile(dir, s);
        if (!Files.isRegularFile(modelFile)) {
            throw new IOException(dir + ": no checkpoint for step " + s + " (" + modelFile.getFileName() + " missing)");
        }
        Checkpoint.Meta meta;
        GPT model;
        if (nanochat) {
            meta = NanochatCheckpoint.readMeta(dir, s);
            GPT m = new GPT(meta.config());
            // tensor by tensor into the model: the checkpoint is never held beside it
            NanochatCheckpoint.read(dir, s, (name, v) -> m.parameter(name).tensor().copyFrom(Tensor.of(v, m.parameter(name).shape())));
            model = m;
        } else {
            meta = Checkpoint.readMeta(dir, s);
            model = Checkpoint.loadModel(dir, s);
        }
        Tokenizer tok = loadTokenizer(tokenizerDir);
        if (tok.vocabSize() != meta.config().vocabSize()) {
            throw new IOException("tokenizer in " + tokenizerDir + " has " + tok.vocabSize() + " tokens but the checkpoint "
                    + modelFile + " was trained with vocab " + meta.config().vocabSize());
        }
        return new Loaded(model, tok, meta, dir, s);
    }

    /** Our {@code tokenizer.bpe}, else nanochat's {@code tokenizer.pkl} (read in place), from {@code dir}. */
    public static Tokenizer loadTokenizer(Path dir) throws IOException {
        if (!Files.isRegularFile(dir.resolve(TokenizerFiles.MODEL_FILE)) && NanochatTokenizer.exists(dir)) return NanochatTokenizer.read(dir);
        return Tokenizer.load(dir);
    }
}
