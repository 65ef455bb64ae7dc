package nanochat4j.train.tasks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import nanochat4j.model.BaseDir;

/**
 * Where the chat tasks' files are and how chat-eval names them. The folder has one sub-folder per dataset, as the
 * original sources ship them: {@code arc/ARC-Easy/ARC-Easy-{Train,Dev,Test}.jsonl} (and ARC-Challenge),
 * {@code mmlu/<split>/<subject>_<split>.csv}, {@code gsm8k/{train,test}.jsonl}, {@code humaneval/HumanEval.jsonl.gz},
 * {@code sft/alpaca_5000/alpaca_5000.json}. Default: {@code $NANOCHAT_BASE_DIR/task_data}.
 */
public record TaskData(Path root, JsonLines.OnBadLine onBadLine, List<String> warnings) {
    /** chat-eval's five tasks, in nanochat's order, with their ChatCORE random baselines. */
    public static final List<String> EVAL_TASKS = List.of("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval");

    public static double baseline(String task) {
        return switch (task) {
            case "ARC-Easy", "ARC-Challenge", "MMLU" -> 0.25;
            default -> 0.0;
        };
    }

    public static Path defaultRoot() {
        return BaseDir.get().resolve("task_data");
    }

    /** {@code dir}, or the default; fails naming the expected layout when the folder is missing. */
    public static TaskData open(Path dir, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        Path root = dir != null ? dir : defaultRoot();
        if (!Files.isDirectory(root)) {
            throw new IOException("no chat task data: " + root + " does not exist. Give --task-data DIR, a folder with arc/ARC-Easy/"
                    + "ARC-Easy-Test.jsonl, mmlu/test/*_test.csv, gsm8k/test.jsonl, humaneval/HumanEval.jsonl.gz (the original "
                    + "AI2 ARC, MMLU, GSM8K and HumanEval files), e.g. ../shared/data in this project's checkout, or download them with "
                    + "'nanochat4j chat-data'");
        }
        return new TaskData(root, onBad, warnings);
    }

    /** A chat-eval task by nanochat's name, on its test split (as chat_eval uses them). */
    public Task evalTask(String name, PythonSandbox sandbox) throws IOException {
        return switch (name) {
            case "ARC-Easy", "ARC-Challenge" -> new Arc(root, name, "test", onBadLine, warnings);
            case "MMLU" -> new Mmlu(root, "test", onBadLine, warnings);
            case "GSM8K" -> new Gsm8k(root, "test", onBadLine, warnings);
            case "HumanEval" -> new HumanEval(root, sandbox, onBadLine, warnings);
            default -> throw new IllegalArgumentException("unknown task '" + name + "' (tasks: " + String.join(", ", EVAL_TASKS) + ")");
        };
    }
}
