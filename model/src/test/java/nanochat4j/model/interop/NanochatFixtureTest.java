package nanochat4j.model.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A model and tokenizer written by nanochat's own code ({@code shared/fixtures/nanochat-checkpoint}, see its README)
 * must give what nanochat computed from them ({@code expected.json}): token ids exactly, logits to fp32 rounding,
 * the greedy continuation token for token, the rendered conversation; and again after export → import.
 */
class NanochatFixtureTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Logits are stored to 6 decimals; ours differ from PyTorch's only in fp32 summation order. */
    private static final double LOGIT_TOL = 2e-5;

    static Path fixture() {
        Path dir = SharedDir.locate("fixtures/nanochat-checkpoint");
        assumeTrue(dir != null, SharedDir.skipMessage("fixtures/nanochat-checkpoint"));
        return dir;
    }

    @Test
    void importedTokenizerAndModelMatchNanochat() throws IOException {
        Path dir = fixture();
        JsonNode exp = JSON.readTree(dir.resolve("expected.json").toFile());
        Tokenizer tok = NanochatTokenizer.read(dir.resolve("tokenizer"));
        NanochatCheckpoint.Loaded ck = NanochatCheckpoint.read(dir.resolve("base_checkpoints/d2"), 120);
        assertEquals(List.copyOf(ck.params().keySet()), strings(exp.get("state_dict_keys")), "state-dict keys in nanochat's order");
        assertEquals(Safetensors.DType.F32, ck.dtype());
        check(exp, tok, ck.meta().config(), ck.params());
    }

    @Test
    void exportedNanochatDirGivesTheSameTensorsAndValues(@TempDir Path tmp) throws IOException {
        Path dir = fixture();
        JsonNode exp = JSON.readTree(dir.resolve("expected.json").toFile());
        Tokenizer tok = NanochatTokenizer.read(dir.resolve("tokenizer"));
        NanochatCheckpoint.Loaded ck = NanochatCheckpoint.read(dir.resolve("base_checkpoints/d2"), 120);
        NanochatTokenizer.write(tok, tmp.resolve("tokenizer"));
        NanochatCheckpoint.write(tmp.resolve("base_checkpoints/d2"), ck.meta(), ck.params(), ck.dtype());

        Tokenizer tok2 = NanochatTokenizer.read(tmp.resolve("tokenizer"));
        NanochatCheckpoint.Loaded ck2 = NanochatCheckpoint.read(tmp.resolve("base_checkpoints/d2"), 120);
        assertEquals(ck.meta(), ck2.meta());
        assertEquals(ck.params().keySet(), ck2.params().keySet());
        for (String k : ck.params().keySet()) {
            assertArrayEquals(bits(ck.params().get(k)), bits(ck2.params().get(k)), "tensor " + k + " bit for bit");
        }
        for (int id = 0; id < tok.vocabSize(); id++) assertArrayEquals(tok.tokenBytes(id), tok2.tokenBytes(id));
        assertEquals(tok.pattern(), tok2.pattern());
        check(exp, tok2, ck2.meta().config(), ck2.params());
    }

    @Test
    void commandsPointedAtANanochatBaseDirLoadItInPlace() throws IOException {
        Path dir = fixture();
        JsonNode exp = JSON.readTree(dir.resolve("expected.json").toFile());
        assertEquals(true, ModelSource.BASE.exists(dir));
        ModelSource.Loaded m = ModelSource.BASE.load(dir, null, null, dir.resolve("tokenizer"));
        assertEquals(120, m.step());
        assertEquals(dir.resolve("base_checkpoints/d2"), m.dir());
        check(exp, m.tokenizer(), m.meta().config(), m.model().stateDict());
    }

    static void check(JsonNode exp, Tokenizer tok, GPTConfig config, Map<String, float[]> params) {
        assertEquals(exp.get("vocab_size").asInt(), tok.vocabSize());
        assertEquals(exp.get("bos_id").asInt(), tok.bosId());
        exp.get("special_tokens").properties().forEach(e -> assertEquals(e.getValue().asInt(), tok.encodeSpecial(e.getKey()), e.getKey()));

        GPT model = new GPT(config);
        model.loadStateDict(params);
        Engine engine = new Engine(model, tok);
        for (JsonNode p : exp.get("prompts")) {
            String text = p.get("text").asText();
            int[] ids = tok.encode(text, tok.bosId(), -1);
            assertArrayEquals(ints(p.get("ids")), ids, "token ids of '" + text + "'");

            float[] logits = model.logits(Tensor.ofInts(ids, 1, ids.length), ids.length - 1, ids.length).toFloatArray();
            assertEquals(tok.vocabSize(), logits.length);
            JsonNode first = p.get("last_logits_first16");
            for (int i = 0; i < first.size(); i++) {
                assertEquals(first.get(i).asDouble(), logits[i], LOGIT_TOL, "logit " + i + " of '" + text + "'");
            }
            int argmax = 0;
            double l2 = 0;
            for (int i = 0; i < logits.length; i++) {
                if (logits[i] > logits[argmax]) argmax = i;
                l2 += (double) logits[i] * logits[i];
            }
            assertEquals(p.get("last_logits_argmax").asInt(), argmax, "argmax of '" + text + "'");
            assertEquals(p.get("last_logits_l2").asDouble(), Math.sqrt(l2), 1e-5 * Math.sqrt(l2), "L2 norm of the logits of '" + text + "'");

            List<Integer> greedy = new ArrayList<>();
            engine.generate(ids, new Engine.Settings(1, 24, 0, 0, 42), (col, sampled) -> greedy.add(col[0]));
            int[] got = greedy.stream().mapToInt(Integer::intValue).toArray();
            assertArrayEquals(ints(p.get("greedy_24")), got, "greedy continuation of '" + text + "'");
            assertEquals(p.get("greedy_24_text").asText(), tok.decode(got));
        }
        JsonNode rc = exp.get("render_conversation");
        ChatRenderer.Rendered r = tok.renderConversation(Conversation.fromJson(rc.get("conversation")));
        assertArrayEquals(ints(rc.get("ids")), r.ids(), "rendered conversation ids");
        assertArrayEquals(ints(rc.get("mask")), r.mask(), "rendered conversation mask");
    }

    static int[] bits(float[] v) {
        int[] b = new int[v.length];
        for (int i = 0; i < v.length; i++) b[i] = Float.floatToRawIntBits(v[i]);
        return b;
    }

    static int[] ints(JsonNode a) {
        int[] r = new int[a.size()];
        for (int i = 0; i < r.length; i++) r[i] = a.get(i).asInt();
        return r;
    }

    static List<String> strings(JsonNode a) {
        List<String> r = new ArrayList<>();
        a.forEach(n -> r.add(n.asText()));
        return r;
    }
}
