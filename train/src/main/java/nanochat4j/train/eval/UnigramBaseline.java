package nanochat4j.train.eval;

/**
 * The bits per byte of a unigram model of the tokenizer's own tokens — the bar a trained model must clearly beat:
 * token frequencies counted on training tokens (add-one smoothed over the vocabulary), scored on validation
 * targets exactly like {@link BitsPerByte} (only targets with bytes count).
 */
public final class UnigramBaseline {
    private final long[] counts;
    private long total;

    public UnigramBaseline(int vocabSize) {
        counts = new long[vocabSize];
    }

    /** Counts training tokens (e.g. a loader batch's targets). */
    public void count(int[] tokens) {
        for (int t : tokens) {
            if (t >= 0) {
                counts[t]++;
                total++;
            }
        }
    }

    /** Adds the unigram model's loss on {@code targets} to {@code acc} (nats of the smoothed frequencies). */
    public void score(int[] targets, int[] tokenBytes, BitsPerByte acc) {
        float[] losses = new float[targets.length];
        double denom = total + counts.length;
        for (int i = 0; i < targets.length; i++) {
            int t = targets[i];
            losses[i] = t < 0 ? 0f : (float) -Math.log((counts[t] + 1) / denom);
        }
        acc.add(losses, targets, tokenBytes);
    }
}
