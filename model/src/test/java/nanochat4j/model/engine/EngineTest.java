package nanochat4j.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.SplittableRandom;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class EngineTest {
    static Tokenizer tok;
    static GPT model;
    static Engine engine;

    @BeforeAll
    static void setUp() {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            docs.add("The quick brown fox jumps over the lazy dog.");
            docs.add("hello world, hello tokenizer, hello hello hello");
            docs.add("def f(x):\n    return x + 1\n");
        }
        tok = Tokenizer.train(docs, 300);
        // Windows shorter than the context ("S" = 128 of 512) and GQA, so the cached path is exercised fully.
        GPTConfig cfg = new GPTConfig(512, tok.vocabSize(), 3, 4, 2, 32, "SL");
        model = GPT.create(cfg, 7);
        SplittableRandom r = new SplittableRandom(8);
        for (Parameter p : model.parameters()) {
            if (p.name().endsWith("c_proj.weight") || p.name().equals("smear_lambda") || p.name().equals("lm_head.weight")) {
                float[] a = p.tensor().floats();
                for (int i = 0; i < p.numel(); i++) a[p.tensor().offset() + i] = (float) (r.nextGaussian() * 0.3);
            }
        }
        engine = new Engine(model, tok);
    }

    private static int[] prompt(int n, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] p = new int[n];
        p[0] = tok.bosId();
        for (int i = 1; i < n; i++) p[i] = r.nextInt(256);
        return p;
    }

    /** nanochat's naive GPT.generate at temperature 0: a full forward over everything so far, argmax of the last position. */
    private static int[] naiveGreedy(int[] prompt, int steps) {
        int[] seq = prompt.clone();
        int v = model.config().vocabSize();
        for (int s = 0; s < steps; s++) {
            float[] l = model.logits(Tensor.ofInts(seq, 1, seq.length)).toFloatArray();
            int next = Sampler.argmax(l, (seq.length - 1) * v, v);
            seq = Arrays.copyOf(seq, seq.length + 1);
            seq[seq.length - 1] = next;
        }
        return Arrays.copyOfRange(seq, prompt.length, seq.length);
    }

    @Test
    void greedyDecodingEqualsTheNaiveFullForwardIncludingSmearAndWindows() {
        int[] p = prompt(140, 1); // longer than the 128-key short window
        int[] expected = naiveGreedy(p, 12);
        List<Integer> got = new ArrayList<>();
        engine.generate(p, new Engine.Settings(1, 12, 0.0, 0, 0), (col, mask) -> got.add(col[0]));
        int[] g = got.stream().mapToInt(Integer::intValue).toArray();
        // identical until a terminal token stops the engine early
        assertArrayEquals(Arrays.copyOf(expected, g.length), g);
        assertTrue(g.length == 12 || g[g.length - 1] == tok.bosId() || g[g.length - 1] == tok.encodeSpecial("<|assistant_end|>"));
    }

    @Test
    void rowsPrefilledFromOneBatchOneCacheDecodeLikeBatchOne() {
        int[] p = prompt(30, 2);
        GPTConfig cfg = model.config();
        KVCache single = new KVCache(model, 1, p.length);
        model.forwardCached(Tensor.ofInts(p, 1, p.length), single);
        KVCache batch = new KVCache(model, 3, p.length + 2);
        batch.copyFrom(single);
        float[] rows = model.forwardCached(Tensor.ofInts(new int[] {5, 9, 5}, 3, 1), batch).toFloatArray();
        KVCache alone = new KVCache(model, 1, p.length + 1);
        model.forwardCached(Tensor.ofInts(p, 1, p.length), alone);
        float[] one = model.forwardCached(Tensor.ofInts(new int[] {5}, 1, 1), alone).toFloatArray();
        int v = cfg.vocabSize();
        for (int j = 0; j < v; j++) {
            assertEquals(one[j], rows[j], 1e-5, "row 0 logit " + j);
            assertEquals(one[j], rows[2 * v + j], 1e-5, "row 2 logit " + j);
        }
    }

    @Test
    void seedsMakeSamplingReproducibleAndRowsIndependent() {
        int[] p = prompt(8, 3);
        Engine.Batch a = engine.generateBatch(p, new Engine.Settings(4, 10, 1.0, 50, 123));
        Engine.Batch b = engine.generateBatch(p, new Engine.Settings(4, 10, 1.0, 50, 123));
        assertEquals(4, a.tokens().size());
        for (int r = 0; r < 4; r++) {
            assertArrayEquals(a.tokens().get(r), b.tokens().get(r));
            assertTrue(a.tokens().get(r).length <= p.length + 10);
            assertArrayEquals(p, Arrays.copyOf(a.tokens().get(r), p.length), "each row starts with the prompt");
        }
        Set<String> distinct = new HashSet<>();
        for (long seed = 0; seed < 4; seed++) {
            distinct.add(Arrays.toString(engine.generateBatch(p, new Engine.Settings(1, 10, 1.0, 0, seed)).tokens().get(0)));
        }
        assertTrue(distinct.size() >= 2, "different seeds give different samples");
        // 16 rows sampled once from the same prefill are not all identical
        Set<Integer> firsts = new HashSet<>();
        engine.generate(p, new Engine.Settings(16, 1, 1.0, 0, 5), (col, m) -> { for (int t : col) firsts.add(t); });
        assertTrue(firsts.size() > 1);
        // temperature 0 ignores the seed
        assertArrayEquals(engine.generateBatch(p, new Engine.Settings(1, 10, 0.0, 0, 1)).tokens().get(0),
                engine.generateBatch(p, new Engine.Settings(1, 10, 0.0, 0, 99)).tokens().get(0));
    }

    @Test
    void calculatorOutputIsForcedAfterPythonEnd() {
        Engine.Row row = new Engine.Row();
        int ps = tok.encodeSpecial("<|python_start|>");
        int pe = tok.encodeSpecial("<|python_end|>");
        engine.step(row, ps);
        for (int t : tok.encode("12/60")) engine.step(row, t);
        assertTrue(row.forced.isEmpty());
        engine.step(row, pe);
        List<Integer> forced = new ArrayList<>(row.forced);
        assertEquals(tok.encodeSpecial("<|output_start|>"), forced.get(0));
        assertEquals(tok.encodeSpecial("<|output_end|>"), forced.get(forced.size() - 1));
        int[] inner = forced.subList(1, forced.size() - 1).stream().mapToInt(Integer::intValue).toArray();
        assertEquals("0.2", tok.decode(inner));
        Engine.Row bad = new Engine.Row();
        engine.step(bad, ps);
        for (int t : tok.encode("9**9**9")) engine.step(bad, t);
        engine.step(bad, pe);
        int[] err = new ArrayList<>(bad.forced).subList(1, bad.forced.size() - 1).stream().mapToInt(Integer::intValue).toArray();
        assertTrue(tok.decode(err).startsWith("Error: "), tok.decode(err));
        Engine.Row end = new Engine.Row();
        engine.step(end, tok.encodeSpecial("<|assistant_end|>"));
        assertTrue(end.completed);
    }

    @Test
    void promptsLongerThanTheContextAreCutFromTheLeftAndReported() {
        int[] p = prompt(600, 4); // context is 512
        Engine.Batch b = engine.generateBatch(p, new Engine.Settings(1, 20, 0.0, 0, 0));
        assertEquals(600 - (512 - 20), b.truncatedPromptTokens());
        assertArrayEquals(Arrays.copyOfRange(p, 108, 600), Arrays.copyOf(b.tokens().get(0), 492));
    }
}
