package nanochat4j.train.tasks;

import java.util.List;
import java.util.Map;
import nanochat4j.model.tokenizer.Conversation;

/** nanochat's render_mc and the multiple-choice conversation shape shared by ARC and MMLU. */
public final class MultipleChoice {
    private MultipleChoice() {}

    /**
     * The user prompt: the letter comes after each choice with no space before it, so that the prompt's letter token
     * is the very token the assistant answers with ("A", not " A").
     */
    public static String render(String question, List<String> letters, List<String> choices) {
        if (letters.size() != choices.size()) throw new IllegalArgumentException(letters.size() + " letters for " + choices.size() + " choices");
        StringBuilder sb = new StringBuilder("Multiple Choice question: ").append(question).append('\n');
        for (int i = 0; i < choices.size(); i++) sb.append("- ").append(choices.get(i)).append('=').append(letters.get(i)).append('\n');
        sb.append("\nRespond only with the letter of the correct answer.");
        return sb.toString();
    }

    static Task.Example example(String question, List<String> letters, List<String> choices, String answer, Map<String, String> fields) {
        if (!letters.contains(answer)) throw new IllegalArgumentException("answer " + answer + " is not one of the letters " + letters);
        Conversation c = Conversation.of(Conversation.Message.user(render(question, letters, choices)), Conversation.Message.assistant(answer));
        return new Task.Example(c, letters, fields);
    }

    /** A predicted letter is right iff it is the reference answer; it must be one of the problem's letters. */
    static boolean evaluate(Task.Example example, String predicted) {
        if (!example.letters().contains(predicted)) {
            throw new IllegalArgumentException("predicted answer " + predicted + " is not one of " + example.letters());
        }
        return predicted.equals(example.answerText());
    }
}
