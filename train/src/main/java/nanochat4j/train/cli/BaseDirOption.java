package nanochat4j.train.cli;

import java.nio.file.Path;
import nanochat4j.model.BaseDir;
import picocli.CommandLine.Option;

/** --base-dir: the folder in nanochat's layout a command reads (chat, serve, base-eval, import-nanochat). */
public final class BaseDirOption {
    @Option(names = "--base-dir", description = "Base dir (default: $NANOCHAT_BASE_DIR or ~/.cache/nanochat4j).")
    public Path baseDir;

    /** --base-dir, else $NANOCHAT_BASE_DIR or the default. */
    public Path get() {
        return baseDir != null ? baseDir : BaseDir.get();
    }
}
