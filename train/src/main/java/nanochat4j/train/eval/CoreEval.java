package nanochat4j.train.eval;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Consumer;
import java.util.function.Function;
import java.util.function.Predicate;
import java.util.function.UnaryOperator;
import java.util.stream.IntStream;
import nanochat4j.tensor.cpu.Parallel;

/**
 * The CORE metric (DCLM), as nanochat's core_eval.py computes it:
 * <ul>
 *   <li>three task types — multiple choice (score each choice's continuation), schema (score the shared
 *       continuation after each context option) and language modeling (greedy argmax must reproduce the
 *       continuation exactly);</li>
 *   <li>few-shot prompts built with the task's delimiter, shots drawn by Python's {@code Random(1234 + idx)};
 *       examples shuffled by {@code Random(1337)} and cropped to {@code maxPerTask};</li>
 *   <li>all prompts of one example in one batch, BOS-prepended and right-padded with BOS; prompts longer than the
 *       model's context are cropped from the left;</li>
 *   <li>MC/schema pick the option with the lowest MEAN loss over its scored span; accuracy is centered against
 *       the task's random baseline and CORE is the mean of the centered accuracies.</li>
 * </ul>
 */
public final class CoreEval {

    /** What CORE needs from a tokenizer: the ids of a text with BOS prepended, and the BOS id (row padding). */
    public record Encoder(Function<String, int[]> encodeWithBos, int bosId) {}

    /**
     * What CORE needs from a model. {@code rows} all have the same length; the result holds, for every row and
     * position t in [from, to), the cross-entropy (nats) of predicting {@code rows[r][t+1]} and the argmax token at
     * t, at index [r][t − from] (only the positions that predict a scored token are asked for). Must be safe to
     * call from several threads at once.
     */
    public interface Scorer {
        Scores score(int[][] rows, int from, int to);

        /** Longest sequence the model accepts; longer prompts are cropped from the left. */
        int maxSeqLen();
    }

    /** Per-position losses and argmax predictions, [row][position − from]. */
    public record Scores(float[][] losses, int[][] argmax) {}

    /** One task's outcome. */
    public record TaskResult(CoreTask task, int examples, double accuracy, double centered) {}

    /** All tasks' outcomes; {@code core} is the mean centered accuracy over the tasks that were evaluated. */
    public record Result(List<TaskResult> tasks, List<String> missing, List<String> warnings, double core) {}

    private final Scorer model;
    private final Encoder tokenizer;

    public CoreEval(Scorer model, Encoder tokenizer) {
        this.model = model;
        this.tokenizer = tokenizer;
    }

    /** Tokenized prompts of one example with the scored span [start, end) of each row. */
    record Batch(int[][] tokens, int[] start, int[] end) {}

    // ---------------------------------------------------------------- prompt rendering

    static List<String> renderMultipleChoice(JsonNode item, String delim, List<JsonNode> shots) {
        StringBuilder prefix = new StringBuilder();
        for (JsonNode s : shots) {
            prefix.append(s.get("query").asText()).append(delim)
                    .append(s.get("choices").get(s.get("gold").asInt()).asText()).append("\n\n");
        }
        List<String> prompts = new ArrayList<>();
        for (JsonNode choice : item.get("choices")) {
            prompts.add(prefix + item.get("query").asText() + delim + choice.asText());
        }
        return prompts;
    }

    static List<String> renderSchema(JsonNode item, String delim, List<JsonNode> shots) {
        StringBuilder prefix = new StringBuilder();
        for (JsonNode s : shots) {
            prefix.append(s.get("context_options").get(s.get("gold").asInt()).asText()).append(delim)
                    .append(s.get("continuation").asText()).append("\n\n");
        }
        List<String> prompts = new ArrayList<>();
        for (JsonNode option : item.get("context_options")) {
            prompts.add(prefix + option.asText() + delim + item.get("continuation").asText());
        }
        return prompts;
    }

    /** Returns [prompt without continuation (stripped), prompt with continuation]. */
    static List<String> renderLanguageModeling(JsonNode item, String delim, List<JsonNode> shots) {
        StringBuilder prefix = new StringBuilder();
        for (JsonNode s : shots) {
            prefix.append(pyStrip(s.get("context").asText())).append(delim)
                    .append(s.get("continuation").asText()).append("\n\n");
        }
        String context = prefix + pyStrip(item.get("context").asText()) + delim;
        return List.of(pyStrip(context), context + item.get("continuation").asText());
    }

    /** Python's str.strip(): removes leading and trailing characters for which str.isspace() is true. */
    static String pyStrip(String s) {
        int a = 0;
        int b = s.length();
        while (a < b && isPySpace(s.charAt(a))) a++;
        while (b > a && isPySpace(s.charAt(b - 1))) b--;
        return s.substring(a, b);
    }

    private static boolean isPySpace(char c) {
        return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
    }

    // ---------------------------------------------------------------- tokenization and scored spans

    Batch batch(CoreTask.Type type, List<String> prompts, String where) {
        int[][] tokens = new int[prompts.size()][];
        for (int i = 0; i < tokens.length; i++) tokens[i] = tokenizer.encodeWithBos().apply(prompts.get(i));
        int[] start = new int[tokens.length];
        int[] end = new int[tokens.length];
        switch (type) {
            case MULTIPLE_CHOICE -> {
                int common = commonPrefix(tokens);
                for (int i = 0; i < tokens.length; i++) {
                    start[i] = common;
                    end[i] = tokens[i].length;
                }
            }
            case SCHEMA -> {
                int suffix = commonSuffix(tokens);
                for (int i = 0; i < tokens.length; i++) {
                    end[i] = tokens[i].length;
                    start[i] = end[i] - suffix;
                }
            }
            case LANGUAGE_MODELING -> {
                int[] without = tokens[0];
                int[] with = tokens[1];
                if (without.length >= with.length || !Arrays.equals(without, 0, without.length, with, 0, without.length)) {
                    throw new IllegalStateException(where + ": the prompt without its continuation does not tokenize to a "
                            + "prefix of the prompt with it (" + without.length + " vs " + with.length + " tokens)");
                }
                return cropToContext(new Batch(new int[][] {with}, new int[] {without.length}, new int[] {with.length}));
            }
        }
        return cropToContext(new Batch(tokens, start, end));
    }

    static int commonPrefix(int[][] seqs) {
        int min = Arrays.stream(seqs).mapToInt(s -> s.length).min().orElse(0);
        for (int i = 0; i < min; i++) {
            for (int[] s : seqs) if (s[i] != seqs[0][i]) return i;
        }
        return min;
    }

    static int commonSuffix(int[][] seqs) {
        int min = Arrays.stream(seqs).mapToInt(s -> s.length).min().orElse(0);
        for (int i = 0; i < min; i++) {
            int t = seqs[0][seqs[0].length - 1 - i];
            for (int[] s : seqs) if (s[s.length - 1 - i] != t) return i;
        }
        return min;
    }

    /**
     * Rows longer than the model's context keep their last maxSeqLen tokens and the span moves down with them.
     * The scored span must keep at least one token of context before it, so it never starts below 1.
     */
    Batch cropToContext(Batch b) {
        int max = model.maxSeqLen();
        for (int i = 0; i < b.tokens.length; i++) {
            int crop = b.tokens[i].length - max;
            if (crop > 0) {
                b.tokens[i] = Arrays.copyOfRange(b.tokens[i], crop, b.tokens[i].length);
                b.start[i] = Math.max(1, b.start[i] - crop);
                b.end[i] -= crop;
            }
        }
        return b;
    }

    // ---------------------------------------------------------------- scoring

    /** Evaluates one example; true when the model gets it right. */
    boolean evaluateExample(CoreTask task, List<JsonNode> data, int idx) {
        JsonNode item = data.get(idx);
        List<JsonNode> shots = new ArrayList<>();
        if (task.numFewshot() > 0) {
            int[] available = IntStream.range(0, data.size()).filter(i -> i != idx).toArray();
            int k = Math.min(task.numFewshot(), available.length);
            for (int j : new PyRandom(1234 + idx).sample(available, k)) shots.add(data.get(j));
        }
        String delim = task.continuationDelimiter();
        List<String> prompts = switch (task.type()) {
            case MULTIPLE_CHOICE -> renderMultipleChoice(item, delim, shots);
            case SCHEMA -> renderSchema(item, delim, shots);
            case LANGUAGE_MODELING -> renderLanguageModeling(item, delim, shots);
        };
        Batch b = batch(task.type(), prompts, task.label() + " example " + idx);
        int len = Arrays.stream(b.tokens).mapToInt(t -> t.length).max().orElse(0);
        int[][] rows = new int[b.tokens.length][len];
        for (int i = 0; i < rows.length; i++) {
            Arrays.fill(rows[i], tokenizer.bosId());
            System.arraycopy(b.tokens[i], 0, rows[i], 0, b.tokens[i].length);
        }
        // Position t − 1 predicts token t: the scored spans [start, end) need positions [min start − 1, max end − 1).
        int from = Arrays.stream(b.start).min().orElseThrow() - 1;
        int to = Arrays.stream(b.end).max().orElseThrow() - 1;
        Scores s = model.score(rows, from, to);
        if (task.type() == CoreTask.Type.LANGUAGE_MODELING) {
            for (int t = b.start[0]; t < b.end[0]; t++) {
                if (s.argmax()[0][t - 1 - from] != rows[0][t]) return false;
            }
            return true;
        }
        int best = -1;
        double bestLoss = Double.POSITIVE_INFINITY;
        for (int i = 0; i < rows.length; i++) {
            double sum = 0;
            for (int t = b.start[i]; t < b.end[i]; t++) sum += s.losses()[i][t - 1 - from];
            double mean = sum / (b.end[i] - b.start[i]);
            if (best < 0 || mean < bestLoss) {
                best = i;
                bestLoss = mean;
            }
        }
        return best == item.get("gold").asInt();
    }

    /**
     * Examples in nanochat's order: shuffled by Random(1337), cropped to maxPerTask (≤ 0 = all).
     */
    static List<JsonNode> shuffled(List<JsonNode> data, int maxPerTask) {
        List<JsonNode> out = new ArrayList<>(data);
        new PyRandom(1337).shuffle(out);
        return maxPerTask > 0 && out.size() > maxPerTask ? new ArrayList<>(out.subList(0, maxPerTask)) : out;
    }

    /**
     * Counts correct examples of a task among those of this rank (idx ≡ rank mod world), evaluating examples in
     * parallel on the CPU pool. Returns {correct, evaluated} so ranks can sum them.
     */
    public long[] evaluateTask(CoreTask task, List<JsonNode> data, int rank, int world) {
        int mine = (data.size() - rank + world - 1) / world;
        boolean[] correct = new boolean[Math.max(0, mine)];
        Parallel.forRange(correct.length, (a, b) -> {
            for (int j = a; j < b; j++) correct[j] = evaluateExample(task, data, rank + j * world);
        });
        long c = 0;
        for (boolean x : correct) if (x) c++;
        return new long[] {c, correct.length};
    }

    /** Runs every task of the bundle (optionally filtered) on one process. */
    public Result run(CoreBundle bundle, int maxPerTask, Predicate<String> taskFilter,
                      CoreBundle.OnBadLine onBad, Consumer<TaskResult> progress) throws IOException {
        return run(bundle, maxPerTask, taskFilter, onBad, progress, 0, 1, counts -> counts);
    }

    /**
     * {@link #run} as one rank of a data-parallel job (base-train's CORE): this rank scores the examples
     * idx ≡ rank (mod world) of each task and {@code sumOverRanks} adds every rank's {correct, evaluated}, so all
     * ranks get the same result, equal to the single-process one.
     */
    public Result run(CoreBundle bundle, int maxPerTask, Predicate<String> taskFilter,
                      CoreBundle.OnBadLine onBad, Consumer<TaskResult> progress, int rank, int world,
                      UnaryOperator<long[]> sumOverRanks) throws IOException {
        List<TaskResult> results = new ArrayList<>();
        List<String> warnings = new ArrayList<>();
        for (CoreTask task : bundle.tasks()) {
            if (!taskFilter.test(task.label())) continue;
            List<JsonNode> data = shuffled(CoreBundle.readExamples(task, onBad, warnings), maxPerTask);
            if (data.isEmpty()) {
                warnings.add(task.label() + ": no usable examples in " + task.file() + "; left out of CORE");
                continue;
            }
            long[] cn = sumOverRanks.apply(evaluateTask(task, data, rank, world));
            double acc = (double) cn[0] / cn[1];
            TaskResult r = new TaskResult(task, (int) cn[1], acc, task.centered(acc));
            results.add(r);
            progress.accept(r);
        }
        double core = results.stream().mapToDouble(TaskResult::centered).average().orElse(Double.NaN);
        return new Result(List.copyOf(results), bundle.missing(), List.copyOf(warnings), core);
    }
}
