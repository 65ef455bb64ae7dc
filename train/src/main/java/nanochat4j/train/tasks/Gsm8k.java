package nanochat4j.train.tasks;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.model.tokenizer.Conversation;

/**
 * GSM8K (nanochat tasks/gsm8k.py), from {@code gsm8k/<split>.jsonl} ({@code {"question", "answer"}}). The answer's
 * calculator annotations {@code <<expr=result>>} become tool calls: the text is split as Python's
 * {@code re.split(r'(<<[^>]+>>)', answer)} splits it (so text parts, possibly empty, surround every call); inside
 * a call, the last '=' separates the python part (expression) from the python_output part (result); a call without
 * '=' is all expression with an empty output. Evaluation compares the first {@code #### number} (commas removed)
 * of the completion with the reference's.
 */
public final class Gsm8k implements Task {
    private static final Pattern CALL = Pattern.compile("<<[^>]+>>");
    private static final Pattern ANSWER = Pattern.compile("#### (-?[0-9.,]+)");
    private final String name;
    private final List<Example> examples;
    private final int[] order;

    public Gsm8k(Path dataRoot, String split, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        if (!split.equals("train") && !split.equals("test")) throw new IllegalArgumentException("GSM8K split must be train|test, got " + split);
        this.name = "GSM8K/" + split;
        this.examples = JsonLines.read(dataRoot.resolve("gsm8k").resolve(split + ".jsonl"), onBad, warnings,
                row -> Example.of(conversation(JsonLines.text(row, "question"), JsonLines.text(row, "answer"))));
        this.order = Task.shuffledOrder(examples.size());
    }

    /** The question and its worked answer as nanochat's conversation with tool-call parts. */
    public static Conversation conversation(String question, String answer) {
        List<Conversation.Part> parts = new ArrayList<>();
        Matcher m = CALL.matcher(answer);
        int at = 0;
        while (m.find()) {
            parts.add(Conversation.Part.text(answer.substring(at, m.start())));
            String inner = answer.substring(m.start() + 2, m.end() - 2);
            int eq = inner.lastIndexOf('=');
            parts.add(Conversation.Part.python(eq >= 0 ? inner.substring(0, eq) : inner));
            parts.add(Conversation.Part.pythonOutput(eq >= 0 ? inner.substring(eq + 1) : ""));
            at = m.end();
        }
        parts.add(Conversation.Part.text(answer.substring(at)));
        return Conversation.of(Conversation.Message.user(question), Conversation.Message.assistant(parts));
    }

    /** The number after the first {@code ####}, commas removed; null when there is none. */
    public static String extractAnswer(String text) {
        Matcher m = ANSWER.matcher(text);
        return m.find() ? m.group(1).strip().replace(",", "") : null;
    }

    @Override public String name() { return name; }
    @Override public int size() { return examples.size(); }
    @Override public Example get(int index) { return examples.get(order[index]); }
    @Override public EvalType evalType() { return EvalType.GENERATIVE; }

    @Override
    public boolean evaluate(Example example, String completion) {
        var last = example.conversation().messages().get(example.conversation().messages().size() - 1);
        String ref = extractAnswer(last.parts().get(last.parts().size() - 1).text());
        return Objects.equals(extractAnswer(completion), ref);
    }
}
