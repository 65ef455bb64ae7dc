package nanochat4j.train.tasks;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.model.tokenizer.Conversation;

/**
 * HumanEval (nanochat tasks/humaneval.py), from {@code humaneval/HumanEval.jsonl.gz}: the user message is the
 * prompt (imports + signature + docstring), the reference answer {@code prompt + "\n" + canonical_solution}. A
 * completion passes when the program {@code imports + "\n\n" + code + "\n\n" + test + "\n" + "check(entry_point)"}
 * exits 0 in the {@link PythonSandbox} (code = the first fenced block of the completion, else all of it).
 */
public final class HumanEval implements Task {
    private static final Pattern FENCE = Pattern.compile("```(?:python)?\\s*\\n(.*?)\\n```", Pattern.DOTALL);
    private final List<Example> examples;
    private final int[] order;
    private final PythonSandbox sandbox;

    /** {@code sandbox} runs the checks; null when Python is missing (then {@link #evaluate} refuses, never guesses). */
    public HumanEval(Path dataRoot, PythonSandbox sandbox, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        this.sandbox = sandbox;
        this.examples = JsonLines.read(dataRoot.resolve("humaneval").resolve("HumanEval.jsonl.gz"), onBad, warnings, row -> {
            String prompt = JsonLines.text(row, "prompt");
            Conversation c = Conversation.of(Conversation.Message.user(prompt),
                    Conversation.Message.assistant(prompt + "\n" + JsonLines.text(row, "canonical_solution")));
            return new Example(c, null, Map.of("task_id", JsonLines.text(row, "task_id"), "test", JsonLines.text(row, "test"),
                    "entry_point", JsonLines.text(row, "entry_point")));
        });
        this.order = Task.shuffledOrder(examples.size());
    }

    /** The leading import lines of a prompt (comments and blank lines skipped, stopping at the first other line). */
    public static String extractImports(String prompt) {
        List<String> imports = new ArrayList<>();
        for (String line : prompt.split("\n", -1)) {
            String s = line.strip();
            if (s.startsWith("import ") || s.startsWith("from ")) imports.add(s);
            else if (!s.isEmpty() && !s.startsWith("#")) break;
        }
        return String.join("\n", imports);
    }

    /** The first ```python (or ```) block of a completion, else the whole completion, stripped. */
    public static String extractProgram(String completion) {
        Matcher m = FENCE.matcher(completion);
        return m.find() ? m.group(1).strip() : completion.strip();
    }

    /** The program the sandbox runs for {@code completion}. */
    public static String program(Example example, String completion) {
        String prompt = example.conversation().messages().get(0).text();
        return extractImports(prompt) + "\n\n" + extractProgram(completion) + "\n\n" + example.fields().get("test") + "\n"
                + "check(" + example.fields().get("entry_point") + ")";
    }

    @Override public String name() { return "HumanEval"; }
    @Override public int size() { return examples.size(); }
    @Override public Example get(int index) { return examples.get(order[index]); }
    @Override public EvalType evalType() { return EvalType.GENERATIVE; }

    @Override
    public boolean evaluate(Example example, String completion) {
        if (sandbox == null) throw new IllegalStateException("HumanEval needs python3 to run the tests, and none was found");
        return sandbox.run(program(example, completion)).success();
    }
}
