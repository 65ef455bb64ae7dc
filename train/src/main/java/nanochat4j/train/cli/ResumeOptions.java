package nanochat4j.train.cli;

import java.nio.file.Path;
import picocli.CommandLine.Option;

/** Where a training stage writes its checkpoints and the step it continues from (base-train, chat-sft, chat-rl). */
public final class ResumeOptions {
    @Option(names = "--resume-from-step", defaultValue = "-1", description = "resume this ${COMMAND-NAME} run from its checkpoint step (-1 = fresh)")
    public int resumeFromStep;
    @Option(names = "--checkpoint-dir", description = "where checkpoints go (default: the stage's folder under $NANOCHAT_BASE_DIR, e.g. "
            + "base_checkpoints/<model-tag>)")
    public Path checkpointDir;

    public boolean resuming() {
        return resumeFromStep >= 0;
    }

    /** --checkpoint-dir, else {@code stageDir/tag}. */
    public Path checkpointDir(Path stageDir, String tag) {
        return checkpointDir != null ? checkpointDir : stageDir.resolve(tag);
    }
}
