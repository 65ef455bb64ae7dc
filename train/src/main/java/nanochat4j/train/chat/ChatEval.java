package nanochat4j.train.chat;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Tensor;
import nanochat4j.train.tasks.Task;
import nanochat4j.train.tasks.TaskData;

/**
 * nanochat's chat_eval loops.
 * <ul>
 *   <li>categorical (ARC, MMLU): batches of {@code batchSize} consecutive problems (batch j on rank j mod W); each
 *       prompt is render_for_completion, right-padded with BOS; one forward; at each prompt's last position the logits
 *       of the problem's letters only (each letter must be one token) are compared, the argmax letter is the answer;</li>
 *   <li>generative (GSM8K, HumanEval): problem i on rank i mod W; {@code numSamples} completions through the Engine,
 *       decoded without the terminal token; a problem passes if any sample passes;</li>
 *   <li>counts summed over the ranks; ChatCORE = mean over the five tasks of (acc − baseline)/(1 − baseline).</li>
 * </ul>
 * The model is behind two small interfaces so that a stub with known answers can check the bookkeeping exactly.
 */
public final class ChatEval {
    private ChatEval() {}

    /** Last-position logits for a batch of prompts of equal (padded) length. */
    @FunctionalInterface
    public interface Scorer {
        /** {@code rows[r]} padded to one length; returns, per row, the vocab logits at {@code positions[r]}. */
        float[][] logitsAt(int[][] rows, int[] positions);
    }

    /** Completions of a prompt as decoded text (terminal token excluded). */
    @FunctionalInterface
    public interface Generator {
        List<String> complete(int[] prompt, int problemIndex);
    }

    /** Settings of the generative loop (nanochat's -n, -m, -t, -k). */
    public record Sampling(int numSamples, int maxNewTokens, double temperature, int topK) {
        public static final Sampling DEFAULT = new Sampling(1, 512, 0.0, 50);
    }

    /** Passed / total, summed over ranks. */
    public record Score(long passed, long total) {
        public double accuracy() {
            return total == 0 ? 0 : (double) passed / total;
        }
    }

    /** Sums (passed, total) over the ranks; identity for one process. */
    @FunctionalInterface
    public interface Reducer {
        long[] sum(long passed, long total);

        Reducer LOCAL = (p, t) -> new long[] {p, t};
    }

    public static Scorer scorer(GPT model) {
        return (rows, positions) -> {
            int b = rows.length, len = rows[0].length, v = model.config().vocabSize();
            int[] ids = new int[b * len];
            for (int r = 0; r < b; r++) System.arraycopy(rows[r], 0, ids, r * len, len);
            int from = len, to = 0;
            for (int p : positions) {
                from = Math.min(from, p);
                to = Math.max(to, p + 1);
            }
            float[] logits = model.logits(Tensor.ofInts(ids, b, len), from, to).toFloatArray();
            int span = to - from;
            float[][] out = new float[b][];
            for (int r = 0; r < b; r++) {
                int off = (r * span + positions[r] - from) * v;
                out[r] = java.util.Arrays.copyOfRange(logits, off, off + v);
            }
            return out;
        };
    }

    public static Generator generator(Engine engine, Sampling s, long seed) {
        Tokenizer tok = engine.tokenizer();
        return (prompt, problem) -> {
            Engine.Batch b = engine.generateBatch(prompt, new Engine.Settings(s.numSamples(), s.maxNewTokens(), s.temperature(), s.topK(),
                    seed + problem));
            List<String> out = new ArrayList<>();
            int skip = prompt.length - b.truncatedPromptTokens();
            for (int[] row : b.tokens()) out.add(tok.decode(java.util.Arrays.copyOfRange(row, skip, row.length)));
            return out;
        };
    }

    public static Score categorical(Task task, Tokenizer tok, Scorer scorer, int batchSize, int maxProblems, int rank, int world,
                                    Reducer reduce) {
        int n = maxProblems < 0 ? task.size() : Math.min(task.size(), maxProblems);
        int batches = (n + batchSize - 1) / batchSize;
        int bos = tok.bosId();
        Map<String, Integer> letterIds = new LinkedHashMap<>();
        long passed = 0, total = 0;
        for (int bi = rank; bi < batches; bi += world) {
            int i0 = bi * batchSize, i1 = Math.min(n, i0 + batchSize);
            List<Task.Example> examples = new ArrayList<>();
            List<int[]> prompts = new ArrayList<>();
            int max = 0;
            for (int i = i0; i < i1; i++) {
                Task.Example ex = task.get(i);
                examples.add(ex);
                int[] p = ChatRenderer.renderForCompletion(tok, ex.conversation());
                prompts.add(p);
                max = Math.max(max, p.length);
            }
            int[][] rows = new int[prompts.size()][max];
            int[] positions = new int[prompts.size()];
            for (int r = 0; r < rows.length; r++) {
                int[] p = prompts.get(r);
                System.arraycopy(p, 0, rows[r], 0, p.length);
                java.util.Arrays.fill(rows[r], p.length, max, bos);
                positions[r] = p.length - 1;
            }
            float[][] logits = scorer.logitsAt(rows, positions);
            for (int r = 0; r < rows.length; r++) {
                Task.Example ex = examples.get(r);
                int best = -1;
                float bestLogit = Float.NEGATIVE_INFINITY;
                for (int li = 0; li < ex.letters().size(); li++) {
                    String letter = ex.letters().get(li);
                    int id = letterIds.computeIfAbsent(letter, l -> {
                        int[] enc = tok.encode(l);
                        if (enc.length != 1) throw new IllegalStateException("answer letter '" + l + "' is " + enc.length + " tokens; each must be one token");
                        return enc[0];
                    });
                    if (best < 0 || logits[r][id] > bestLogit) { // first maximum wins, as torch.argmax
                        best = li;
                        bestLogit = logits[r][id];
                    }
                }
                if (task.evaluate(ex, ex.letters().get(best))) passed++;
                total++;
            }
        }
        long[] sum = reduce.sum(passed, total);
        return new Score(sum[0], sum[1]);
    }

    public static Score generative(Task task, Tokenizer tok, Generator generator, int maxProblems, int rank, int world, Reducer reduce,
                                   PrintStream progress) {
        int n = maxProblems < 0 ? task.size() : Math.min(task.size(), maxProblems);
        long passed = 0, total = 0;
        for (int i = rank; i < n; i += world) {
            Task.Example ex = task.get(i);
            int[] prompt = ChatRenderer.renderForCompletion(tok, ex.conversation());
            boolean any = false;
            for (String completion : generator.complete(prompt, i)) {
                if (task.evaluate(ex, completion)) {
                    any = true;
                    break;
                }
            }
            if (any) passed++;
            total++;
            if (progress != null) progress.printf(Locale.ROOT, "\r\033[K%s: %d/%d (%.2f%%)", task.name(), passed, total, 100.0 * passed / total);
        }
        if (progress != null && total > 0) progress.println();
        long[] sum = reduce.sum(passed, total);
        return new Score(sum[0], sum[1]);
    }

    /** Runs one task by its kind. */
    public static Score run(Task task, Tokenizer tok, Scorer scorer, Generator generator, int batchSize, int maxProblems, int rank, int world,
                            Reducer reduce, PrintStream progress) {
        return switch (task.evalType()) {
            case CATEGORICAL -> categorical(task, tok, scorer, batchSize, maxProblems, rank, world, reduce);
            case GENERATIVE -> generative(task, tok, generator, maxProblems, rank, world, reduce, progress);
            case NONE -> throw new IllegalArgumentException(task.name() + " has no evaluation rule");
        };
    }

    /** nanochat's centered mean over {@code tasks} (each must have a result). */
    public static double centeredMean(Map<String, Double> accuracy, List<String> tasks) {
        double sum = 0;
        for (String t : tasks) {
            double b = TaskData.baseline(t);
            sum += (accuracy.get(t) - b) / (1 - b);
        }
        return sum / tasks.size();
    }

    /** ChatCORE when all five tasks ran, else NaN. */
    public static double chatCore(Map<String, Double> accuracy) {
        return accuracy.keySet().containsAll(TaskData.EVAL_TASKS) ? centeredMean(accuracy, TaskData.EVAL_TASKS) : Double.NaN;
    }


    /** Sums over the ranks of {@code comm}. */
    public static Reducer reducer(nanochat4j.train.collective.Collective comm) {
        if (comm.worldSize() == 1) return Reducer.LOCAL;
        return (p, t) -> {
            double[] all = comm.allGatherDoubles(p, t);
            long sp = 0, st = 0;
            for (int i = 0; i < all.length; i += 2) {
                sp += (long) all[i];
                st += (long) all[i + 1];
            }
            return new long[] {sp, st};
        };
    }
}
