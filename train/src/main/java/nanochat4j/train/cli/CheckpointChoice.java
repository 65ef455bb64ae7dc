package nanochat4j.train.cli;

import java.io.IOException;
import java.nio.file.Path;
import nanochat4j.model.checkpoint.ModelSource;
import picocli.CommandLine.Option;

/** Which checkpoint of a source a command loads: nanochat's -g/--model-tag and -s/--step (chat, serve, base-eval, chat-eval). */
public final class CheckpointChoice {
    @Option(names = {"-g", "--model-tag"}, description = "Model tag (default: the largest d<N>).")
    public String tag;
    @Option(names = {"-s", "--step"}, description = "Checkpoint step (default: the latest).")
    public Long step;

    /** The chosen checkpoint of {@code src} under {@code base}, with the tokenizer in {@code base/tokenizer}. */
    public ModelSource.Loaded load(ModelSource src, Path base) throws IOException {
        return src.load(base, tag, step, base.resolve("tokenizer"));
    }
}
