package nanochat4j.train.eval;

import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Tensor;

/**
 * CORE's view of a GPT: per-position cross-entropy of the next token and the argmax prediction, from one batched
 * forward of the soft-capped logits. Thread-safe (each thread has its own autograd tape; inference records none).
 */
public record ModelScorer(GPT model) implements CoreEval.Scorer {

    @Override
    public CoreEval.Scores score(int[][] rows) {
        int b = rows.length;
        int t = rows[0].length;
        int[] ids = new int[b * t];
        for (int r = 0; r < b; r++) System.arraycopy(rows[r], 0, ids, r * t, t);
        float[] logits = model.logits(Tensor.ofInts(ids, b, t)).toFloatArray();
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
                if (p + 1 < t) {
                    double sum = 0;
                    for (int j = 0; j < v; j++) sum += Math.exp(logits[off + j] - max);
                    losses[r][p] = (float) (max + Math.log(sum) - logits[off + rows[r][p + 1]]);
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
