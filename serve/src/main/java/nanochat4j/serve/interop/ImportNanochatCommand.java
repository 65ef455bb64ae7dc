package nanochat4j.serve.interop;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.model.BaseDir;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.interop.NanochatImport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code nanochat4j import-nanochat DIR}: bring a nanochat base dir (PyTorch checkpoints + tokenizer.pkl) into ours. */
@Command(name = "import-nanochat", mixinStandardHelpOptions = true,
        description = {"Import a model trained with nanochat (PyTorch): DIR is a nanochat base dir holding tokenizer/tokenizer.pkl and "
                + "base_checkpoints|chatsft_checkpoints|chatrl_checkpoints/<tag>/model_<step>.pt + meta_<step>.json.",
                "The pickles are read by a restricted reader that never runs code from the files."})
public final class ImportNanochatCommand implements Callable<Integer> {

    @Parameters(index = "0", paramLabel = "DIR", description = "The nanochat base dir to import.")
    Path dir;

    @Option(names = {"-i", "--source"}, description = "Import only this source: base, sft or rl (default: every one present).")
    String source;

    @Option(names = {"-g", "--model-tag"}, description = "Tag to import (default: the largest d<N> of each source).")
    String tag;

    @Option(names = {"-s", "--step"}, description = "Step to import (default: the latest).")
    Long step;

    @Option(names = "--into", paramLabel = "TAG", description = "Tag to store the model under here (default: the same tag).")
    String into;

    @Option(names = "--force", description = "Replace an existing checkpoint of the same tag and step, or a different tokenizer.")
    boolean force;

    @Option(names = "--base-dir", description = "Our base dir to import into (default: $NANOCHAT_BASE_DIR or ~/.cache/nanochat4j).")
    Path baseDir;

    @Override
    public Integer call() throws IOException {
        Path base = baseDir != null ? baseDir : BaseDir.get();
        List<ModelSource> sources = source == null ? null : List.of(ModelSource.parse(source));
        long t0 = System.nanoTime();
        List<NanochatImport.Imported> done = NanochatImport.run(dir, base, new NanochatImport.Options(sources, tag, step, into, force));
        for (NanochatImport.Imported i : done) {
            System.out.printf(Locale.ROOT, "imported %s %s step %d (%,d parameters, %s, %s) -> %s%n", i.source().name().toLowerCase(Locale.ROOT),
                    i.from().getParent().getFileName(), i.step(), i.parameters(), i.dtype(), i.config(), Checkpoint.modelFile(i.to(), i.step()));
        }
        System.out.printf(Locale.ROOT, "imported tokenizer -> %s%ndone in %.1f s%n", base.resolve("tokenizer"), (System.nanoTime() - t0) / 1e9);
        return 0;
    }
}
