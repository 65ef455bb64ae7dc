package nanochat4j.model.checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.tokenizer.Tokenizer;

/**
 * Where each training stage keeps its checkpoints under the base dir (nanochat's layout), and loading "the model a
 * user means": a source, an optional tag (default: largest {@code d<N>}) and an optional step (default: latest),
 * together with the tokenizer it was trained with.
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
        long s = step != null ? step : Checkpoint.lastStep(dir);
        if (!Files.isRegularFile(Checkpoint.modelFile(dir, s))) {
            throw new IOException(dir + ": no checkpoint for step " + s + " (" + Checkpoint.modelFile(dir, s).getFileName() + " missing)");
        }
        Checkpoint.Meta meta = Checkpoint.readMeta(dir, s);
        GPT model = Checkpoint.loadModel(dir, s);
        Tokenizer tok = Tokenizer.load(tokenizerDir);
        if (tok.vocabSize() != meta.config().vocabSize()) {
            throw new IOException("tokenizer in " + tokenizerDir + " has " + tok.vocabSize() + " tokens but the checkpoint "
                    + Checkpoint.modelFile(dir, s) + " was trained with vocab " + meta.config().vocabSize());
        }
        return new Loaded(model, tok, meta, dir, s);
    }
}
