package nanochat4j.train.tasks;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code nanochat4j chat-data}: downloads the chat tasks' files (checksummed, resumable) into the task-data folder. */
@Command(name = "chat-data", mixinStandardHelpOptions = true,
        description = "Download the chat task files (ARC, MMLU, GSM8K, HumanEval, alpaca_5000) into $NANOCHAT_BASE_DIR/task_data.")
public final class TaskDataCommand implements Callable<Integer> {
    @Option(names = "--task-data", description = "destination folder (default: $NANOCHAT_BASE_DIR/task_data)")
    Path dir;
    @Option(names = "--mirror", description = "a base URL that replaces https://raw.githubusercontent.com (a local mirror)")
    String mirror;

    @Override
    public Integer call() throws Exception {
        new TaskDataDownload(mirror, 5, Duration.ofSeconds(2), System.out).download(TaskDataDownload.manifest(), dir != null ? dir : TaskData.defaultRoot());
        return 0;
    }
}
