package nanochat4j.train.tasks;

import java.util.List;
import java.util.Map;
import nanochat4j.model.tokenizer.Conversation;

/**
 * A dataset of conversations with nanochat's evaluation rule (tasks/common.py's Task): {@link #size} examples,
 * example {@code i} a conversation plus what evaluation needs (the answer letters of a multiple-choice problem,
 * HumanEval's test code). {@link #slice} is nanochat's {@code Task(start, stop, step)} view.
 */
public interface Task {

    /** How chat-eval scores a task: by the logits of the answer letters, by sampling and checking, or not at all. */
    enum EvalType { CATEGORICAL, GENERATIVE, NONE }

    /** One example: the conversation (ending with the reference assistant message) and task fields. */
    record Example(Conversation conversation, List<String> letters, Map<String, String> fields) {
        public Example {
            letters = letters == null ? List.of() : List.copyOf(letters);
            fields = fields == null ? Map.of() : Map.copyOf(fields);
        }

        public static Example of(Conversation c) {
            return new Example(c, null, null);
        }

        /** The reference assistant message's plain text (multiple choice: the answer letter). */
        public String answerText() {
            var msgs = conversation.messages();
            var last = msgs.get(msgs.size() - 1);
            if (!last.role().equals("assistant") || last.text() == null) {
                throw new IllegalStateException("example has no plain-text assistant answer");
            }
            return last.text();
        }
    }

    String name();

    int size();

    Example get(int index);

    default EvalType evalType() {
        return EvalType.NONE;
    }

    /** Whether {@code completion} (decoded assistant text, or the predicted letter) solves {@code example}. */
    default boolean evaluate(Example example, String completion) {
        throw new UnsupportedOperationException(name() + " has no evaluation rule");
    }

    /** nanochat's {@code Task(start, stop, step)}: items start, start+step, … below stop (stop −1 = the end). */
    static Task slice(Task task, int start, int stop, int step) {
        int end = stop < 0 ? task.size() : Math.min(stop, task.size());
        if (start < 0 || step < 1 || end < start) {
            throw new IllegalArgumentException(task.name() + ": bad slice start=" + start + " stop=" + stop + " step=" + step);
        }
        int n = (end - start + step - 1) / step;
        return new Task() {
            @Override public String name() { return task.name() + "[" + start + ":" + end + (step == 1 ? "" : ":" + step) + "]"; }
            @Override public int size() { return n; }
            @Override public Example get(int i) {
                if (i < 0 || i >= n) throw new IndexOutOfBoundsException(name() + ": index " + i + " of " + n);
                return task.get(start + i * step);
            }
            @Override public EvalType evalType() { return task.evalType(); }
            @Override public boolean evaluate(Example e, String c) { return task.evaluate(e, c); }
        };
    }

    /** nanochat shuffles every dataset once with seed 42; see {@link Shuffle}. */
    static int[] shuffledOrder(int n) {
        return Shuffle.permutation(n, 42);
    }
}
