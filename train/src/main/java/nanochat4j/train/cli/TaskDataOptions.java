package nanochat4j.train.cli;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import nanochat4j.train.tasks.JsonLines;
import nanochat4j.train.tasks.TaskData;
import picocli.CommandLine.Option;

/** Where the chat task files are and what a malformed line does (chat-sft, chat-rl, chat-eval). */
public final class TaskDataOptions {
    @Option(names = "--task-data", description = "folder of the task files (arc/, mmlu/, gsm8k/, humaneval/, sft/) (default: $NANOCHAT_BASE_DIR/task_data)")
    public Path taskData;
    @Option(names = "--on-bad-line", defaultValue = "STOP", description = "a malformed data line: stop or skip (default: ${DEFAULT-VALUE})")
    public JsonLines.OnBadLine onBadLine;

    /** The task folder; lines skipped with --on-bad-line skip are reported into {@code warnings}. */
    public TaskData open(List<String> warnings) throws IOException {
        return TaskData.open(taskData, onBadLine, warnings);
    }
}
