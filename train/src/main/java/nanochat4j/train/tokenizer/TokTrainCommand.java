package nanochat4j.train.tokenizer;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.model.tokenizer.BpeTrainer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;
import nanochat4j.model.BaseDir;
import nanochat4j.train.ProgressBar;
import nanochat4j.train.cli.OneLineErrors;
import nanochat4j.train.data.DataFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j tok-train}: nanochat's scripts/tok_train.py. Streams the training split of {@code --data}
 * (all files but the last), crops each document to {@code --doc-cap} code points, stops after {@code --max-chars}
 * code points (the document that crosses is included), trains the BPE and writes {@code <base>/tokenizer/}.
 * A progress bar on a terminal, plain lines otherwise.
 */
@Command(name = "tok-train", mixinStandardHelpOptions = true,
        description = "Train the BPE tokenizer on the pretraining text (nanochat's tok_train).")
public final class TokTrainCommand implements Callable<Integer> {

    static final String SANITY_TEXT = "Hello world! This is a test.\nNumbers: 123, 4567, 89\n"
            + "Contractions: I'm, you're, it's\nSpecial chars: @#$%^&*()\nUnicode: 你好世界 🌍";

    @Option(names = "--max-chars", defaultValue = "2000000000", description = "max characters (code points) to train on (default: ${DEFAULT-VALUE})")
    long maxChars;

    @Option(names = "--doc-cap", defaultValue = "10000", description = "max characters per document (default: ${DEFAULT-VALUE})")
    int docCap;

    @Option(names = "--vocab-size", defaultValue = "32768", description = "vocabulary size incl. the 9 special tokens (default: ${DEFAULT-VALUE})")
    int vocabSize;

    @Option(names = "--data", description = "folder of *.parquet / *.jsonl / *.txt (searched recursively; default: $NANOCHAT_BASE_DIR/base_data_climbmix)")
    Path data;

    @Option(names = "--out", description = "output folder (default: $NANOCHAT_BASE_DIR/tokenizer)")
    Path out;

    @Option(names = "--threads", description = "threads that split and count the text (default: all cores)")
    Integer threads;

    @Override
    public Integer call() {
        return OneLineErrors.run("tok-train", this::run);
    }

    private int run() throws IOException {
        PrintStream log = System.out;
        Path dataDir = data != null ? data : BaseDir.get().resolve("base_data_climbmix");
        Path outDir = out != null ? out : BaseDir.get().resolve("tokenizer");
        int nThreads = threads != null ? threads : Runtime.getRuntime().availableProcessors();
        BpeTrainer.Options options = new BpeTrainer.Options(vocabSize, maxChars, docCap, nThreads);

        List<DataFile> files = TextDocuments.trainFiles(TextDocuments.files(dataDir));
        log.printf(Locale.ROOT, "tok-train: vocab %d, max chars %,d, doc cap %,d, %d threads%n", vocabSize, maxChars, docCap, nThreads);
        log.printf(Locale.ROOT, "data: %d training file(s) in %s%n", files.size(), dataDir);

        ProgressBar bar = new ProgressBar(log);
        String[] lastLine = {""};
        BpeTrainer.Progress progress = (phase, done, total) -> {
            String what = phase.equals("count") ? "chars read" : "merges";
            if (bar.enabled()) {
                bar.update(Math.min(done, total), total, what, done >= total);
                return;
            }
            // plain lines: one per 10% (and the end) of each phase
            String line = phase + (total > 0 ? ":" + Math.min(10, 10 * done / total) : ":" + done / 100_000_000);
            if (!line.equals(lastLine[0])) {
                lastLine[0] = line;
                log.printf(Locale.ROOT, total > 0 ? "%s %,d/%,d%n" : "%s %,d%n", what, done, total);
            }
        };
        BpeTrainer.Result r = BpeTrainer.train(TextDocuments.documents(files, log).iterator(), options, progress);
        bar.clear();
        Tokenizer tok = r.tokenizer();
        log.printf(Locale.ROOT, "read %,d documents, %,d characters; %,d distinct chunks (%.1f s)%n", r.documents(), r.chars(),
                r.distinctChunks(), r.countSeconds());
        log.printf(Locale.ROOT, "merges: %,d in %.1f s; vocab size %,d%n", r.merges(), r.mergeSeconds(), tok.vocabSize());
        if (tok.vocabSize() < vocabSize) {
            log.printf(Locale.ROOT, "note: the text ran out of pairs to merge, so the vocabulary has %d tokens, not %d%n", tok.vocabSize(), vocabSize);
        }
        String back = tok.decode(tok.encode(SANITY_TEXT));
        if (!back.equals(SANITY_TEXT)) throw new IllegalStateException("sanity check failed: the tokenizer does not round-trip " + SANITY_TEXT);
        tok.save(outDir);
        int[] tb = Arrays.stream(tok.tokenByteLengths()).filter(v -> v > 0).toArray();
        log.printf(Locale.ROOT, "token bytes: min %d, max %d, mean %.2f%n", Arrays.stream(tb).min().orElse(0), Arrays.stream(tb).max().orElse(0),
                Arrays.stream(tb).average().orElse(0));
        log.printf("saved %s and %s%n", outDir.resolve(TokenizerFiles.MODEL_FILE), outDir.resolve(TokenizerFiles.TOKEN_BYTES_FILE));
        return 0;
    }
}
