package nanochat4j.train.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * AI2 ARC (nanochat tasks/arc.py), read from the original ARC-V1 JSONL files
 * ({@code arc/ARC-Easy/ARC-Easy-Test.jsonl}: {@code {"question": {"stem", "choices": [{"text", "label"}]}, "answerKey"}}).
 * The letters are the dataset's labels (some questions use 1–5 or have 3 or 5 choices). Split names follow nanochat
 * (train, validation, test; validation is the "Dev" file).
 */
public final class Arc implements Task {
    private final String name;
    private final List<Example> examples;
    private final int[] order;

    public Arc(Path dataRoot, String subset, String split, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        if (!subset.equals("ARC-Easy") && !subset.equals("ARC-Challenge")) throw new IllegalArgumentException("ARC subset must be ARC-Easy or ARC-Challenge, got " + subset);
        String file = switch (split) {
            case "train" -> "Train";
            case "validation" -> "Dev";
            case "test" -> "Test";
            default -> throw new IllegalArgumentException("ARC split must be train|validation|test, got " + split);
        };
        this.name = subset + "/" + split;
        this.examples = JsonLines.read(dataRoot.resolve("arc").resolve(subset).resolve(subset + "-" + file + ".jsonl"), onBad, warnings, Arc::parse);
        this.order = Task.shuffledOrder(examples.size());
    }

    static Example parse(JsonNode row) {
        JsonNode q = row.get("question");
        String stem = JsonLines.text(q, "stem");
        List<String> letters = new ArrayList<>(), choices = new ArrayList<>();
        for (JsonNode c : q.get("choices")) {
            choices.add(JsonLines.text(c, "text"));
            letters.add(JsonLines.text(c, "label"));
        }
        return MultipleChoice.example(stem, letters, choices, JsonLines.text(row, "answerKey"), Map.of());
    }

    @Override public String name() { return name; }
    @Override public int size() { return examples.size(); }
    @Override public Example get(int index) { return examples.get(order[index]); }
    @Override public EvalType evalType() { return EvalType.CATEGORICAL; }
    @Override public boolean evaluate(Example example, String completion) { return MultipleChoice.evaluate(example, completion); }
}
