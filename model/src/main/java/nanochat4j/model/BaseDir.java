package nanochat4j.model;

import java.nio.file.Path;

/**
 * Where nanochat4j keeps its files (nanochat's get_base_dir): {@code $NANOCHAT_BASE_DIR}, else
 * {@code ~/.cache/nanochat4j}. Sub-directories follow nanochat: {@code base_data_climbmix/},
 * {@code tokenizer/}, {@code base_checkpoints/<tag>/}, …
 */
public final class BaseDir {
    private BaseDir() {}

    public static Path get() {
        String env = System.getenv("NANOCHAT_BASE_DIR");
        if (env != null && !env.isBlank()) return Path.of(env).toAbsolutePath();
        return Path.of(System.getProperty("user.home"), ".cache", "nanochat4j");
    }
}
