package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** ModelScorer's span scoring against losses and argmax computed in float64 from the full forward's logits. */
class ModelScorerTest {

    @Test
    void spanScoresMatchTheFullForward() {
        GPTConfig cfg = GPTConfig.fromDepth(2, 32, 32, 64, "SL", 300);
        GPT model = GPT.create(cfg, 11);
        Random r = new Random(9);
        float[] head = new float[cfg.paddedVocab() * cfg.nEmbd()]; // init's N(0, 0.001) head would make every logit ~0
        for (int i = 0; i < head.length; i++) head[i] = (float) (0.3 * r.nextGaussian());
        model.parameter("lm_head.weight").tensor().copyFrom(Tensor.of(head, cfg.paddedVocab(), cfg.nEmbd()));
        int b = 3, len = 40;
        int[][] rows = new int[b][len];
        int[] ids = new int[b * len];
        for (int i = 0; i < b; i++) {
            for (int t = 0; t < len; t++) ids[i * len + t] = rows[i][t] = r.nextInt(cfg.vocabSize());
        }
        float[] full = model.logits(Tensor.ofInts(ids, b, len)).toFloatArray();
        int v = cfg.vocabSize();
        ModelScorer scorer = new ModelScorer(model);
        for (int[] span : new int[][] {{0, len}, {17, 23}, {len - 5, len}, {3, 4}}) {
            int from = span[0], to = span[1];
            CoreEval.Scores s = scorer.score(rows, from, to);
            for (int i = 0; i < b; i++) {
                for (int t = from; t < to; t++) {
                    int off = (i * len + t) * v;
                    int best = 0;
                    double max = full[off], sum = 0;
                    for (int j = 1; j < v; j++) if (full[off + j] > full[off + best]) best = j;
                    max = full[off + best];
                    for (int j = 0; j < v; j++) sum += Math.exp(full[off + j] - max);
                    assertEquals(best, s.argmax()[i][t - from], "argmax at row " + i + " position " + t);
                    if (t + 1 < len) {
                        double loss = max + Math.log(sum) - full[off + rows[i][t + 1]];
                        assertEquals(loss, s.losses()[i][t - from], 1e-4, "loss at row " + i + " position " + t);
                    } else {
                        assertTrue(Float.isNaN(s.losses()[i][t - from]), "the last position predicts nothing");
                    }
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> scorer.score(rows, 5, 5));
        assertThrows(IllegalArgumentException.class, () -> scorer.score(rows, 0, len + 1));
    }
}
