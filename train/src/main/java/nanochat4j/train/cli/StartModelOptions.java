package nanochat4j.train.cli;

import picocli.CommandLine.Option;

/** The checkpoint a fine-tuning stage starts from: chat-sft from a base model, chat-rl from an SFT model. */
public final class StartModelOptions {
    @Option(names = "--model-tag", description = "tag of the model to start from (chat-sft: a base model, chat-rl: an SFT model), "
            + "also this run's checkpoint folder name (default: the largest d<N>)")
    public String modelTag;
    @Option(names = "--model-step", description = "step of that model to load (default: the last)")
    public Long modelStep;

    /** This run's checkpoint folder name: --model-tag, else the tag of the model it started from. */
    public String tagOr(String loadedTag) {
        return modelTag != null ? modelTag : loadedTag;
    }
}
