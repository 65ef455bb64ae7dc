package nanochat4j.model.engine;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Tensor;

/**
 * KV-cache inference as nanochat's engine.py:
 * <ul>
 *   <li>the prompt is prefilled once at batch 1, then its cache is copied into every one of N sample rows, which
 *       decode together one token column at a time (smear and backout run in the cached path as in training);</li>
 *   <li>each row samples on its own (temperature / top-k, one seeded RNG: a seed reproduces a generation);</li>
 *   <li>a row is done at {@code <|assistant_end|>} or {@code <|bos|>}; rows keep stepping until all are done or
 *       {@code maxTokens} columns were produced;</li>
 *   <li>tool use: tokens between {@code <|python_start|>} and {@code <|python_end|>} are decoded and given to the
 *       {@link Calculator}; its answer (or error text) is forced into the row as
 *       {@code <|output_start|>…<|output_end|>}, those tokens carrying mask 0 (not sampled);</li>
 *   <li>prompts that would not leave room for {@code maxTokens} within the model's context are cut from the left,
 *       and the caller is told how many tokens were dropped.</li>
 * </ul>
 */
public final class Engine {
    private final GPT model;
    private final Tokenizer tokenizer;
    private final int assistantEnd, bos, pythonStart, pythonEnd, outputStart, outputEnd;

    public Engine(GPT model, Tokenizer tokenizer) {
        if (tokenizer.vocabSize() != model.config().vocabSize()) {
            throw new IllegalArgumentException("Engine: tokenizer has " + tokenizer.vocabSize() + " tokens but the model's vocab is "
                    + model.config().vocabSize());
        }
        this.model = model;
        this.tokenizer = tokenizer;
        this.assistantEnd = tokenizer.encodeSpecial("<|assistant_end|>");
        this.bos = tokenizer.bosId();
        this.pythonStart = tokenizer.encodeSpecial("<|python_start|>");
        this.pythonEnd = tokenizer.encodeSpecial("<|python_end|>");
        this.outputStart = tokenizer.encodeSpecial("<|output_start|>");
        this.outputEnd = tokenizer.encodeSpecial("<|output_end|>");
    }

    public GPT model() { return model; }

    public Tokenizer tokenizer() { return tokenizer; }

    /**
     * Sampling settings; temperature 0 is greedy, topK ≤ 0 means the whole vocabulary, topP 1 the whole of what top-k
     * keeps (nucleus sampling below it: {@link Sampler}).
     */
    public record Settings(int numSamples, int maxTokens, double temperature, int topK, double topP, long seed) {
        public Settings {
            if (numSamples < 1) throw new IllegalArgumentException("numSamples " + numSamples + " must be >= 1");
            if (maxTokens < 1) throw new IllegalArgumentException("maxTokens " + maxTokens + " must be >= 1");
            if (!(temperature >= 0)) throw new IllegalArgumentException("temperature " + temperature + " must be >= 0");
            if (!(topP >= 0 && topP <= 1)) throw new IllegalArgumentException("topP " + topP + " must be in [0, 1]");
        }

        /** nanochat's settings: no top-p. */
        public Settings(int numSamples, int maxTokens, double temperature, int topK, long seed) {
            this(numSamples, maxTokens, temperature, topK, 1.0, seed);
        }
    }

    /** Receives each generated column: one token per row and whether it was sampled (1) or forced by the tool (0). */
    @FunctionalInterface
    public interface ColumnListener {
        void onColumn(int[] tokens, int[] sampled);
    }

    /** What {@link #generate} did: how many prompt tokens were cut from the left to fit the context, and columns made. */
    public record Run(int truncatedPromptTokens, int columns) {}

    static final class Row {
        final ArrayDeque<Integer> forced = new ArrayDeque<>();
        final List<Integer> expr = new ArrayList<>();
        boolean inPython;
        boolean completed;
    }

    /** Streams generated columns to {@code listener}; see the class comment for the semantics. */
    public Run generate(int[] prompt, Settings s, ColumnListener listener) {
        if (prompt.length == 0) throw new IllegalArgumentException("Engine.generate: empty prompt (start it with <|bos|>)");
        int context = model.config().sequenceLen();
        int maxTokens = Math.min(s.maxTokens(), context - 1);
        int keep = Math.min(prompt.length, context - maxTokens);
        int truncated = prompt.length - keep;
        int[] tokens = truncated > 0 ? Arrays.copyOfRange(prompt, truncated, prompt.length) : prompt;
        int n = s.numSamples();

        // Prefill once at batch 1, then copy the cache into every sample row. Both caches give their device memory
        // back as soon as they are done with (a server's next request takes it from the pool).
        float[] last;
        try (KVCache cache = new KVCache(model, n, tokens.length + maxTokens)) {
            try (KVCache single = new KVCache(model, 1, tokens.length)) {
                last = model.forwardCachedLast(Tensor.ofInts(tokens, 1, tokens.length), single).toFloatArray();
                cache.copyFrom(single);
            }
            return decode(last, n, maxTokens, truncated, s, cache, listener);
        }
    }

    /** Samples columns from the prefill's last logits on, decoding each through {@code cache}. */
    private Run decode(float[] last, int n, int maxTokens, int truncated, Settings s, KVCache cache, ColumnListener listener) {
        int vocab = model.config().vocabSize();
        float[] rowLogits = new float[n * vocab];
        for (int r = 0; r < n; r++) System.arraycopy(last, 0, rowLogits, r * vocab, vocab);

        Sampler sampler = new Sampler(s.seed());
        Row[] rows = new Row[n];
        for (int r = 0; r < n; r++) rows[r] = new Row();
        int columns = 0;
        while (columns < maxTokens && !allCompleted(rows)) {
            int[] column = new int[n];
            int[] sampled = new int[n];
            for (int r = 0; r < n; r++) {
                Row row = rows[r];
                int sampledId = sampler.sample(rowLogits, r * vocab, vocab, s.temperature(), s.topK(), s.topP());
                boolean forced = !row.forced.isEmpty();
                int token = forced ? row.forced.poll() : sampledId;
                column[r] = token;
                sampled[r] = forced ? 0 : 1;
                step(row, token);
            }
            listener.onColumn(column, sampled);
            columns++;
            if (columns < maxTokens && !allCompleted(rows)) {
                rowLogits = model.forwardCached(Tensor.ofInts(column, n, 1), cache).toFloatArray();
            }
        }
        return new Run(truncated, columns);
    }

    /** The row's tool state machine after it emits {@code token}. */
    void step(Row row, int token) {
        if (token == assistantEnd || token == bos) row.completed = true;
        if (token == pythonStart) {
            row.inPython = true;
            row.expr.clear();
        } else if (token == pythonEnd && row.inPython) {
            row.inPython = false;
            if (!row.expr.isEmpty()) {
                String expr = tokenizer.decode(row.expr.stream().mapToInt(Integer::intValue).toArray());
                Calculator.Result result = Calculator.evaluate(expr);
                row.forced.add(outputStart);
                for (int t : tokenizer.encode(result.text())) row.forced.add(t);
                row.forced.add(outputEnd);
            }
            row.expr.clear();
        } else if (row.inPython) {
            row.expr.add(token);
        }
    }

    private static boolean allCompleted(Row[] rows) {
        for (Row r : rows) if (!r.completed) return false;
        return true;
    }

    /** Per-row results of {@link #generateBatch}: prompt + generated tokens (terminal token excluded) and masks. */
    public record Batch(List<int[]> tokens, List<int[]> masks, int truncatedPromptTokens) {}

    /**
     * Non-streaming generation of {@code numSamples} rows: each row is the (possibly left-truncated) prompt followed by
     * its tokens up to, not including, its first {@code <|assistant_end|>}/{@code <|bos|>}; masks are 0 on the prompt
     * and on forced tool output.
     */
    public Batch generateBatch(int[] prompt, Settings s) {
        int n = s.numSamples();
        List<List<Integer>> out = new ArrayList<>();
        List<List<Integer>> masks = new ArrayList<>();
        boolean[] done = new boolean[n];
        for (int r = 0; r < n; r++) {
            out.add(new ArrayList<>());
            masks.add(new ArrayList<>());
        }
        Run run = generate(prompt, s, (column, sampled) -> {
            for (int r = 0; r < n; r++) {
                if (done[r]) continue;
                if (column[r] == assistantEnd || column[r] == bos) {
                    done[r] = true;
                } else {
                    out.get(r).add(column[r]);
                    masks.get(r).add(sampled[r]);
                }
            }
        });
        int[] kept = Arrays.copyOfRange(prompt, run.truncatedPromptTokens(), prompt.length);
        List<int[]> rowsOut = new ArrayList<>();
        List<int[]> masksOut = new ArrayList<>();
        for (int r = 0; r < n; r++) {
            int[] t = new int[kept.length + out.get(r).size()];
            int[] m = new int[t.length];
            System.arraycopy(kept, 0, t, 0, kept.length);
            for (int i = 0; i < out.get(r).size(); i++) {
                t[kept.length + i] = out.get(r).get(i);
                m[kept.length + i] = masks.get(r).get(i);
            }
            rowsOut.add(t);
            masksOut.add(m);
        }
        return new Batch(rowsOut, masksOut, run.truncatedPromptTokens());
    }
}
