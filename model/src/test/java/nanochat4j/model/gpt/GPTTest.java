package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Parameter;
import nanochat4j.autograd.TapeProbe;
import nanochat4j.autograd.Var;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class GPTTest {
    /** Small but every feature active: GQA, vocab not a multiple of 64, a 128-key short window that T exceeds. */
    static final GPTConfig CFG = new GPTConfig(512, 70, 3, 4, 2, 32, "SL");

    static Tensor ids(long seed, int b, int t, int vocab) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] a = new int[b * t];
        for (int i = 0; i < a.length; i++) a[i] = r.nextInt(vocab);
        return Tensor.ofInts(a, b, t);
    }

    @Test
    void tokenIdsOutsideTheVocabAreRejectedBeforeAnyKernel() {
        GPT m = GPT.create(CFG, 1);
        Tensor bad = Tensor.ofInts(new int[] {1, 2, 70, 3}, 2, 2);
        var e = assertThrows(IllegalArgumentException.class, () -> m.loss(bad, Tensor.ofInts(new int[] {1, 1, 1, 1}, 2, 2), Reduction.MEAN));
        assertTrue(e.getMessage().contains("token id 70 at (1, 0)"), e.getMessage());
        assertEquals(0, TapeProbe.size(), "nothing ran");
        e = assertThrows(IllegalArgumentException.class, () -> m.logits(Tensor.ofInts(new int[] {-3, 0}, 1, 2)));
        assertTrue(e.getMessage().contains("token id -3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> m.loss(Tensor.ofInts(new int[] {1, 2}, 1, 2), Tensor.ofInts(new int[] {-2, 0}, 1, 2), Reduction.MEAN));
        assertTrue(e.getMessage().contains("target -2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> m.loss(Tensor.ofInts(new int[] {1, 2}, 1, 2), Tensor.ofInts(new int[] {70, 0}, 1, 2), Reduction.MEAN));
        assertTrue(e.getMessage().contains("target 70"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> m.logits(Tensor.ofInts(new int[] {1, 2}, 2)));
        assertTrue(e.getMessage().contains("(B,T)"), e.getMessage());
    }

    @Test
    void initFollowsNanochatInitWeights() {
        GPTConfig cfg = new GPTConfig(64, 1000, 4, 2, 2, 128, "L");
        GPT m = GPT.create(cfg, 42);
        float s = (float) (Math.sqrt(3) / Math.sqrt(128));
        assertEquals(0.8, std(m.parameter("transformer.wte.weight")), 0.02);
        assertEquals(0.001, std(m.parameter("lm_head.weight")), 0.00003);
        assertRange(m.parameter("transformer.h.1.attn.c_q.weight"), -s, s);
        assertRange(m.parameter("transformer.h.1.mlp.c_fc.weight"), -0.4f * s, 0.4f * s);
        assertRange(m.parameter("value_embeds.3.weight"), -s, s);
        assertRange(m.parameter("transformer.h.3.attn.ve_gate.weight"), 0, 0.02f);
        assertRange(m.parameter("smear_gate.weight"), 0, 0.02f);
        assertEquals(0.0, std(m.parameter("transformer.h.2.attn.c_proj.weight")));
        assertEquals(0.0, std(m.parameter("transformer.h.2.mlp.c_proj.weight")));
        assertArrayEquals(new float[] {1.15f, (float) (1.15 - 0.1 / 3), (float) (1.15 - 0.2 / 3), 1.05f},
                m.parameter("resid_lambdas").tensor().toFloatArray(), 1e-7f);
        assertArrayEquals(new float[] {0.2f, 0.15f, 0.1f, 0.05f}, m.parameter("x0_lambdas").tensor().toFloatArray(), 1e-7f);
        assertEquals(0f, m.parameter("smear_lambda").tensor().item());
        assertEquals(0.2f, m.parameter("backout_lambda").tensor().item());
        assertArrayEquals(m.parameter("transformer.wte.weight").tensor().toFloatArray(),
                GPT.create(cfg, 42).parameter("transformer.wte.weight").tensor().toFloatArray(), "same seed, same init");
    }

    private static double std(Parameter p) {
        float[] a = p.tensor().toFloatArray();
        double s = 0, s2 = 0;
        for (float v : a) {
            s += v;
            s2 += v * (double) v;
        }
        double mean = s / a.length;
        return Math.sqrt(Math.max(0, s2 / a.length - mean * mean));
    }

    private static void assertRange(Parameter p, float lo, float hi) {
        float min = Float.MAX_VALUE, max = -Float.MAX_VALUE;
        for (float v : p.tensor().toFloatArray()) {
            min = Math.min(min, v);
            max = Math.max(max, v);
        }
        assertTrue(min >= lo && max <= hi, p.name() + " in [" + min + ", " + max + "] not within [" + lo + ", " + hi + "]");
        assertTrue(min < lo + 0.1 * (hi - lo) && max > hi - 0.1 * (hi - lo), p.name() + " does not span its range");
    }

    @Test
    void perTokenLossesAgreeWithTheMeanAndWithTheLogits() {
        GPT m = TestModels.perturbed(CFG, 3);
        Tensor x = ids(4, 2, 20, 70);
        int[] tg = ids(5, 2, 20, 70).ints().clone();
        tg[3] = -1;
        tg[25] = -1;
        Tensor targets = Tensor.ofInts(tg, 2, 20);
        float[] per;
        float mean;
        try (var g = Autograd.noGrad()) {
            per = m.loss(x, targets, Reduction.NONE).value().toFloatArray();
            mean = m.loss(x, targets, Reduction.MEAN).item();
            assertEquals(m.loss(x, targets, Reduction.SUM).item(), mean * 38, 1e-3);
        }
        float[] logits = m.logits(x).toFloatArray();
        double sum = 0;
        for (int i = 0; i < 40; i++) {
            if (tg[i] < 0) {
                assertEquals(0f, per[i]);
                continue;
            }
            double mx = Double.NEGATIVE_INFINITY, se = 0;
            for (int v = 0; v < 70; v++) mx = Math.max(mx, logits[i * 70 + v]);
            for (int v = 0; v < 70; v++) se += Math.exp(logits[i * 70 + v] - mx);
            assertEquals(mx + Math.log(se) - logits[i * 70 + tg[i]], per[i], 1e-5, "position " + i);
            sum += per[i];
        }
        assertEquals(sum / 38, mean, 1e-5);
        for (float l : logits) assertTrue(Math.abs(l) < 15f, "softcapped");
    }

    @Test
    void perTokenLossBackwardEqualsMeanLossBackward() {
        GPT a = TestModels.perturbed(CFG, 6), b = TestModels.perturbed(CFG, 6);
        Tensor x = ids(7, 2, 10, 70), y = ids(8, 2, 10, 70);
        a.loss(x, y, Reduction.MEAN).backward();
        Var per = b.loss(x, y, Reduction.NONE);
        nanochat4j.autograd.Ops.dot(per, Tensor.full(1f / 20, 2, 10)).backward();
        for (Parameter p : a.parameters()) {
            float[] ga = p.grad().toFloatArray(), gb = b.parameter(p.name()).grad().toFloatArray();
            double max = 0;
            for (float v : ga) max = Math.max(max, Math.abs(v));
            for (int i = 0; i < ga.length; i++) assertEquals(ga[i], gb[i], 1e-5 * max + 1e-9, p.name() + "[" + i + "]");
        }
    }

    @Test
    void kvCachePrefillThenDecodeMatchesTheFullForward() {
        GPT m = TestModels.perturbed(CFG, 9);
        int t = 150, prefill = 100;   // beyond the 128-key short window of layer 0
        Tensor x = ids(10, 2, t, 70);
        float[] full = m.logits(x).toFloatArray();
        KVCache cache = new KVCache(m, 2, t);
        int[] all = x.ints();
        float[] got = new float[full.length];
        float[] pre = m.forwardCached(slice(all, 2, t, 0, prefill), cache).toFloatArray();
        for (int bi = 0; bi < 2; bi++) System.arraycopy(pre, bi * prefill * 70, got, bi * t * 70, prefill * 70);
        for (int p = prefill; p < t; p++) {
            float[] step = m.forwardCached(slice(all, 2, t, p, 1), cache).toFloatArray();
            for (int bi = 0; bi < 2; bi++) System.arraycopy(step, bi * 70, got, (bi * t + p) * 70, 70);
        }
        assertEquals(t, cache.pos());
        for (int i = 0; i < full.length; i++) assertEquals(full[i], got[i], 2e-4, "logit " + i);
        assertEquals(0, TapeProbe.size());
    }

    @Test
    void aPrefillOfTheLastPositionOnlyGivesItsLogitsAndTheSameCache() {
        GPT m = TestModels.perturbed(CFG, 9);
        // 2 rows × 10 tokens run the Decoder (≤ 32 pairs), 2 × 100 the tensor path (lm_head on one position a row)
        for (int t : new int[] {10, 100}) {
            Tensor x = ids(11, 2, t, 70);
            KVCache all = new KVCache(m, 2, t + 1), last = new KVCache(m, 2, t + 1);
            float[] full = m.forwardCached(x, all).toFloatArray();
            Tensor lastOnly = m.forwardCachedLast(x, last);
            assertArrayEquals(new int[] {2, 70}, lastOnly.shape());
            float[] got = lastOnly.toFloatArray();
            for (int bi = 0; bi < 2; bi++) {
                for (int v = 0; v < 70; v++) {
                    assertEquals(full[(bi * t + t - 1) * 70 + v], got[bi * 70 + v], 1e-5, "T=" + t + " row " + bi + " logit " + v);
                }
            }
            assertEquals(t, last.pos());
            Tensor next = Tensor.ofInts(new int[] {5, 9}, 2, 1);
            assertArrayEquals(m.forwardCached(next, all).toFloatArray(), m.forwardCached(next, last).toFloatArray(), "T=" + t + ": the next step");
        }
    }

    @Test
    void decoderStepsAndShortChunksMatchTheFullForwardWithSmearBackoutGqaAndWindows() {
        // GQA 4/2, layer 0 sees 128 keys back; every plan runs on to position 150 in single decode steps.
        // (from, length) chunks: ≤ 32 (row, position) pairs run the Decoder, longer ones the tensor path.
        GPT smeared = TestModels.perturbed(CFG, 21);
        smeared.parameter("smear_lambda").tensor().fill(0.7f);
        smeared.parameter("backout_lambda").tensor().fill(0.3f);
        check(smeared, 1, new int[][] {{0, 20}, {20, 1}});                 // a first chunk smears within itself
        check(smeared, 2, new int[][] {{0, 100}, {100, 1}});
        // A chunk appended to a non-empty cache does not smear its first token with the cached one (nanochat's KV
        // mode), unlike the full forward: with smear off, chunks anywhere (across the window edge too) must match.
        GPT unsmeared = TestModels.perturbed(CFG, 21);
        unsmeared.parameter("smear_lambda").tensor().fill(0f);
        unsmeared.parameter("backout_lambda").tensor().fill(0.3f);
        check(unsmeared, 1, new int[][] {{0, 20}, {20, 1}, {21, 1}, {22, 100}, {122, 16}});
        check(unsmeared, 2, new int[][] {{0, 100}, {100, 1}, {101, 1}, {102, 16}, {118, 1}, {119, 1}, {120, 16}});
    }

    @Test
    void bothExecutorsWriteTheSameKeysValuesAndPreviousEmbeddingIntoTheCache() {
        // A 2×20 chunk (40 pairs) runs Forward on autograd ops, each row alone (20 pairs) through the Decoder: the
        // cache contents (roped, QK-normed keys; values with their value-embedding mix; the last embedding) must agree.
        GPT m = TestModels.perturbed(CFG, 31);
        m.parameter("smear_lambda").tensor().fill(0.7f);
        Tensor x = ids(32, 2, 20, 70);
        KVCache both = new KVCache(m, 2, 20);
        m.forwardCached(x, both);
        for (int bi = 0; bi < 2; bi++) {
            KVCache one = new KVCache(m, 1, 20);
            m.forwardCached(Tensor.ofInts(Arrays.copyOfRange(x.ints(), bi * 20, bi * 20 + 20), 1, 20), one);
            for (int i = 0; i < CFG.nLayer(); i++) {
                assertClose(both.keys(i).select(bi), one.keys(i).select(0), "layer " + i + " keys, row " + bi);
                assertClose(both.values(i).select(bi), one.values(i).select(0), "layer " + i + " values, row " + bi);
            }
            assertClose(both.prev().select(bi), one.prev().select(0), "previous embedding, row " + bi);
        }
    }

    private static void assertClose(Tensor want, Tensor got, String what) {
        float[] w = want.toFloatArray(), g = got.toFloatArray();
        assertEquals(w.length, g.length, what);
        double sum = 0;
        for (int i = 0; i < w.length; i++) {
            assertEquals(w[i], g[i], 1e-5, what + " [" + i + "]");
            sum += Math.abs(w[i]);
        }
        assertTrue(sum > 0, what + " were never written");
    }

    /** Feeds b rows of 150 tokens through a KV cache in the planned chunks, then single steps; logits vs the full forward. */
    private static void check(GPT m, int b, int[][] plan) {
        int t = 150;
        Tensor x = ids(22 + b, b, t, 70);
        float[] full = m.logits(x).toFloatArray();
        KVCache cache = new KVCache(m, b, t);
        int p = 0, chunk = 0;
        while (p < t) {
            int len = chunk < plan.length ? plan[chunk][1] : 1;
            if (chunk < plan.length) assertEquals(plan[chunk][0], p);
            chunk++;
            float[] got = m.forwardCached(slice(x.ints(), b, t, p, len), cache).toFloatArray();
            for (int bi = 0; bi < b; bi++) {
                for (int tau = 0; tau < len; tau++) {
                    for (int v = 0; v < 70; v++) {
                        assertEquals(full[(bi * t + p + tau) * 70 + v], got[(bi * len + tau) * 70 + v], 1e-4,
                                "B=" + b + " row " + bi + " position " + (p + tau) + " logit " + v);
                    }
                }
            }
            p += len;
        }
        assertEquals(t, cache.pos());
    }

    @Test
    void batchOnePrefillCopiedToRowsDecodesLikeEachRowAlone() {
        GPT m = TestModels.perturbed(CFG, 13);
        Tensor prompt = ids(14, 1, 12, 70);
        KVCache one = new KVCache(m, 1, 20);
        m.forwardCached(prompt, one);
        KVCache rows = new KVCache(m, 3, 20);
        rows.copyFrom(one);
        assertEquals(12, rows.pos());
        float[] next = m.forwardCached(Tensor.ofInts(new int[] {5, 6, 7}, 3, 1), rows).toFloatArray();
        for (int r = 0; r < 3; r++) {
            int[] full = new int[13];
            System.arraycopy(prompt.ints(), 0, full, 0, 12);
            full[12] = 5 + r;
            float[] ref = m.logits(Tensor.ofInts(full, 1, 13)).toFloatArray();
            for (int v = 0; v < 70; v++) assertEquals(ref[12 * 70 + v], next[r * 70 + v], 2e-4, "row " + r + " logit " + v);
        }
        assertThrows(IllegalArgumentException.class, () -> new KVCache(m, 2, 20).copyFrom(new KVCache(m, 3, 20)));
    }

    @Test
    void aClosedCacheCannotBeUsed() {
        GPT m = TestModels.perturbed(CFG, 13);
        KVCache cache = new KVCache(m, 1, 20), other = new KVCache(m, 1, 20);
        m.forwardCached(ids(14, 1, 4, 70), cache);
        cache.close();
        cache.close();   // idempotent
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> m.forwardCached(ids(15, 1, 1, 70), cache));
        assertTrue(e.getMessage().contains("forwardCached") && e.getMessage().contains("closed"), e.getMessage());
        assertThrows(IllegalStateException.class, () -> other.copyFrom(cache));
        assertThrows(IllegalStateException.class, () -> cache.copyFrom(other));
    }

    private static Tensor slice(int[] all, int b, int t, int from, int len) {
        int[] out = new int[b * len];
        for (int bi = 0; bi < b; bi++) System.arraycopy(all, bi * t + from, out, bi * len, len);
        return Tensor.ofInts(out, b, len);
    }

    @Test
    void checkpointRoundTripGivesTheSameModel(@TempDir Path dir) throws Exception {
        GPT m = TestModels.perturbed(CFG, 11);
        Checkpoint.save(dir, m, new Checkpoint.Meta(CFG, 7, "tok", Map.of("loss", 1.0), null), Safetensors.DType.F32);
        GPT back = Checkpoint.loadModel(dir, Checkpoint.lastStep(dir));
        assertEquals(CFG, back.config());
        for (Parameter p : m.parameters()) {
            assertArrayEquals(p.tensor().toFloatArray(), back.parameter(p.name()).tensor().toFloatArray(), p.name());
        }
        Tensor x = ids(12, 1, 16, 70);
        assertArrayEquals(m.logits(x).toFloatArray(), back.logits(x).toFloatArray(), 1e-6f);
    }

    @Test
    void parameterGroupsMatchTheFixtureOptimizer() throws Exception {
        Path dir = SharedDir.locate(Path.of(System.getProperty("fixtures.dir", "../shared/fixtures/nanochat-tiny")));
        assumeTrue(dir != null, SharedDir.skipMessage("fixtures"));
        JsonNode root = new ObjectMapper().readTree(dir.resolve("model.json").toFile());
        JsonNode opt = root.get("optimizer"), kw = opt.get("setup_optimizer_kwargs");
        GPT m = new GPT(GPTConfig.fromJson(root.get("config")));
        List<GPT.ParamGroup> groups = m.paramGroups(kw.get("unembedding_lr").asDouble(), kw.get("embedding_lr").asDouble(),
                kw.get("matrix_lr").asDouble(), kw.get("weight_decay").asDouble(), kw.get("scalar_lr").asDouble());
        assertEquals(opt.get("groups").size(), groups.size());
        int covered = 0;
        for (int i = 0; i < groups.size(); i++) {
            JsonNode ref = opt.get("groups").get(i);
            GPT.ParamGroup g = groups.get(i);
            List<String> names = new ArrayList<>();
            ref.get("names").forEach(n -> names.add(n.asText()));
            assertEquals(names, g.params().stream().map(Parameter::name).toList(), "group " + i);
            assertEquals(ref.get("kind").asText(), g.kind().name().toLowerCase());
            assertEquals(ref.get("lr").asDouble(), g.lr(), 1e-12, "lr of group " + i);
            assertEquals(ref.get("weight_decay").asDouble(), g.weightDecay(), 1e-12);
            if (g.kind() == GPT.ParamGroup.Kind.ADAMW) {
                assertEquals(ref.get("betas").get(0).asDouble(), g.beta1());
                assertEquals(ref.get("betas").get(1).asDouble(), g.beta2());
                assertEquals(ref.get("eps").asDouble(), g.eps());
            } else {
                assertEquals(ref.get("momentum").asDouble(), g.momentum());
                assertEquals(ref.get("beta2").asDouble(), g.beta2());
                assertEquals(ref.get("ns_steps").asInt(), g.nsSteps());
            }
            covered += g.params().size();
        }
        assertEquals(m.parameters().size(), covered, "every parameter in exactly one group");
    }
}
