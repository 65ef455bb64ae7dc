package nanochat4j.model.interop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;

/**
 * Imports a nanochat base dir ({@code tokenizer/tokenizer.pkl}, {@code base|chatsft|chatrl_checkpoints/<tag>/model_<step>.pt}
 * + {@code meta_<step>.json}) into ours: the tokenizer becomes {@code <base>/tokenizer/tokenizer.bpe} (identical
 * encoding), each checkpoint {@code <base>/<same folder>/<tag>/model_<step>.safetensors} + meta, in the dtype it was
 * saved in (bf16 stays bf16). Per source the largest {@code d<N>} tag and last step are taken unless given, as
 * nanochat's own loaders do. Existing different files are never overwritten without {@code force}.
 */
public final class NanochatImport {
    private NanochatImport() {}

    /** One imported checkpoint. */
    public record Imported(ModelSource source, Path from, Path to, long step, GPTConfig config, Safetensors.DType dtype, long parameters) {}

    /** What to import: {@code sources} null = every source present; {@code tag}/{@code step} null = largest / last. */
    public record Options(List<ModelSource> sources, String tag, Long step, String into, boolean force) {}

    /** The tokenizer of a nanochat dir ({@code <dir>/tokenizer/tokenizer.pkl}), with a message saying what a base dir looks like. */
    public static Tokenizer tokenizer(Path nanochatDir) throws IOException {
        Path tokDir = nanochatDir.resolve("tokenizer");
        if (!NanochatTokenizer.exists(tokDir)) {
            throw new IOException(nanochatDir + ": not a nanochat base dir: " + tokDir.resolve(NanochatTokenizer.PICKLE) + " not found "
                    + "(a nanochat base dir holds tokenizer/tokenizer.pkl and base_checkpoints/<tag>/model_<step>.pt)");
        }
        return NanochatTokenizer.read(tokDir);
    }

    /** Imports {@code nanochatDir} into our base dir {@code baseDir}; returns what was imported. */
    public static List<Imported> run(Path nanochatDir, Path baseDir, Options o) throws IOException {
        if (!Files.isDirectory(nanochatDir)) throw new IOException(nanochatDir + ": no such directory");
        Tokenizer tok = tokenizer(nanochatDir);
        List<ModelSource> sources = o.sources() != null ? o.sources() : Arrays.asList(ModelSource.values());
        List<Path> tagDirs = new ArrayList<>();
        List<ModelSource> found = new ArrayList<>();
        for (ModelSource s : sources) {
            Path root = s.dir(nanochatDir);
            if (!Files.isDirectory(root)) {
                if (o.sources() != null) throw new IOException(nanochatDir + ": no " + root.getFileName() + " folder");
                continue;
            }
            String tag;
            try {
                tag = o.tag() != null ? o.tag() : Checkpoint.largestTag(root);
            } catch (IOException e) {
                if (o.sources() != null) throw e;
                continue; // an empty folder of a source nobody asked for
            }
            Path dir = root.resolve(tag);
            if (!NanochatCheckpoint.exists(dir)) {
                if (o.sources() != null) throw new IOException(dir + ": no nanochat model_<step>.pt checkpoints found");
                continue;
            }
            tagDirs.add(dir);
            found.add(s);
        }
        if (found.isEmpty()) {
            throw new IOException(nanochatDir + ": no nanochat checkpoints found (looked for base_checkpoints, chatsft_checkpoints and "
                    + "chatrl_checkpoints/" + (o.tag() != null ? o.tag() : "<tag>") + "/model_<step>.pt)");
        }

        Path ourTok = baseDir.resolve("tokenizer");
        if (Files.isRegularFile(ourTok.resolve(TokenizerFiles.MODEL_FILE))) {
            Tokenizer existing = Tokenizer.load(ourTok);
            if (!sameVocabulary(existing, tok) && !o.force()) {
                throw new IOException(ourTok + " already holds a different tokenizer (" + existing.vocabSize() + " tokens); importing "
                        + nanochatDir + "'s would make its checkpoints unreadable. Use another --base-dir, or --force to replace it");
            }
        }
        long[] steps = new long[found.size()];
        for (int i = 0; i < found.size(); i++) {
            // every checkpoint's config, tensor names, shapes and vocabulary are checked before anything is written
            Path from = tagDirs.get(i);
            steps[i] = o.step() != null ? o.step() : NanochatCheckpoint.lastStep(from);
            NanochatCheckpoint.validate(from, steps[i]);
            Checkpoint.Meta meta = NanochatCheckpoint.readMeta(from, steps[i]);
            if (meta.config().vocabSize() != tok.vocabSize()) {
                throw new IOException(NanochatCheckpoint.modelFile(from, steps[i]) + " was trained with vocab_size " + meta.config().vocabSize()
                        + " but the tokenizer " + nanochatDir.resolve("tokenizer").resolve(NanochatTokenizer.PICKLE) + " has " + tok.vocabSize() + " tokens");
            }
            Path to = found.get(i).dir(baseDir).resolve(o.into() != null ? o.into() : from.getFileName().toString());
            if (Files.exists(Checkpoint.modelFile(to, steps[i])) && !o.force()) {
                throw new IOException(Checkpoint.modelFile(to, steps[i]) + " already exists; use --into to name another tag, or --force to replace it");
            }
        }
        tok.save(ourTok);
        List<Imported> out = new ArrayList<>();
        for (int i = 0; i < found.size(); i++) {
            ModelSource s = found.get(i);
            Path from = tagDirs.get(i);
            long step = steps[i];
            // one checkpoint in memory at a time: its float arrays are all that is held (see NanochatCheckpoint)
            NanochatCheckpoint.Loaded ck = NanochatCheckpoint.read(from, step);
            Path modelFile = NanochatCheckpoint.modelFile(from, step);
            Path to = s.dir(baseDir).resolve(o.into() != null ? o.into() : from.getFileName().toString());
            Map<String, Object> extra = new LinkedHashMap<>(ck.meta().extra());
            extra.put("imported_from", modelFile.toAbsolutePath().toString());
            Checkpoint.Meta meta = new Checkpoint.Meta(ck.meta().config(), step, ck.meta().tokenizer(), ck.meta().metrics(), extra);
            Checkpoint.save(to, ck.params(), meta, ck.dtype());
            long n = 0;
            for (float[] v : ck.params().values()) n += v.length;
            out.add(new Imported(s, modelFile, to, step, meta.config(), ck.dtype(), n));
        }
        return out;
    }

    static boolean sameVocabulary(Tokenizer a, Tokenizer b) {
        if (a.vocabSize() != b.vocabSize() || a.mergeableCount() != b.mergeableCount() || !a.pattern().equals(b.pattern())
                || !a.specialTokens().equals(b.specialTokens())) {
            return false;
        }
        for (int id = 0; id < a.mergeableCount(); id++) if (!Arrays.equals(a.tokenBytes(id), b.tokenBytes(id))) return false;
        return true;
    }

}
