package nanochat4j.train.eval;

import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Tensor;

/**
 * CORE's view of a GPT: per-position cross-entropy of the next token and the argmax prediction, from one batched
 * forward whose lm_head runs only on the asked positions. Thread-safe (each thread has its own autograd tape;
 * inference records none).
 */
public record ModelScorer(GPT model) implements CoreEval.Scorer {

    @Override
    public CoreEval.Scores score(int[][] rows, int from, int to) {
        int b = rows.length;
        int len = rows[0].length;
        int[] ids = new int[b * len];
        for (int r = 0; r < b; r++) System.arraycopy(rows[r], 0, ids, r * len, len);
        float[] logits = model.logits(Tensor.ofInts(ids, b, len), from, to).toFloatArray();
        int t = to - from;
        int v = model.config().vocabSize();
        float[][] losses = new float[b][t];
        int[][] argmax = new int[b][t];
        for (int r = 0; r < b; r++) {
            for (int p = 0; p < t; p++) {
                int off = (r * t + p) * v;
                int best = 0;
                float max = logits[off];
                for (int j = 1; j < v; j++) {
                    if (logits[off + j] > max) {
                        max = logits[off + j];
                        best = j;
                    }
                }
                argmax[r][p] = best;
                if (from + p + 1 < len) {
                    double sum = 0;
                    for (int j = 0; j < v; j++) sum += Math.exp(logits[off + j] - max);
                    losses[r][p] = (float) (max + Math.log(sum) - logits[off + rows[r][from + p + 1]]);
                } else {
                    losses[r][p] = Float.NaN; // nothing follows the last position
                }
            }
        }
        return new CoreEval.Scores(losses, argmax);
    }

    @Override
    public int maxSeqLen() {
        return model.config().sequenceLen();
    }
}
