package nanochat4j.train.tasks;

import java.util.ArrayList;
import java.util.List;
import nanochat4j.train.eval.PyRandom;

/**
 * nanochat's TaskMixture: every (task, local index) pair, shuffled once with Python's {@code random.Random(42)}
 * exactly as nanochat does, so tasks are interleaved throughout training. Listing a task k times oversamples it
 * (that is how "epochs" of MMLU and GSM8K are expressed).
 */
public final class TaskMixture implements Task {
    private final List<Task> tasks;
    private final int[] taskOf, localOf;

    public TaskMixture(List<Task> tasks) {
        this.tasks = List.copyOf(tasks);
        List<int[]> pairs = new ArrayList<>();
        for (int t = 0; t < tasks.size(); t++) for (int i = 0; i < tasks.get(t).size(); i++) pairs.add(new int[] {t, i});
        new PyRandom(42).shuffle(pairs);
        taskOf = new int[pairs.size()];
        localOf = new int[pairs.size()];
        for (int i = 0; i < pairs.size(); i++) {
            taskOf[i] = pairs.get(i)[0];
            localOf[i] = pairs.get(i)[1];
        }
    }

    /** {@code task} listed {@code epochs} times. */
    public static List<Task> repeat(Task task, int epochs) {
        List<Task> out = new ArrayList<>();
        for (int i = 0; i < epochs; i++) out.add(task);
        return out;
    }

    public List<Task> tasks() { return tasks; }

    @Override public String name() { return "mixture of " + tasks.size() + " tasks"; }
    @Override public int size() { return taskOf.length; }

    @Override
    public Example get(int index) {
        if (index < 0 || index >= taskOf.length) throw new IndexOutOfBoundsException("index " + index + " out of range for a mixture of " + taskOf.length);
        return tasks.get(taskOf[index]).get(localOf[index]);
    }
}
