package nanochat4j.train.eval;

import java.util.function.BiFunction;
import nanochat4j.train.data.DataLoader;

/**
 * Bits per byte (nanochat loss_eval.py), the validation metric that does not depend on the vocabulary:
 * bpb = Σ nats / (ln 2 · Σ bytes) over the counted target tokens, where a target counts when it is ≥ 0 (not
 * ignored) and its token has a byte length > 0 (so BOS and the other special tokens drop out of both sums).
 * Accumulates partial sums so ranks can add theirs (all-reduce {@link #nats()} and {@link #bytes()}, then
 * {@link #bpb(double, long)}); +∞ when no byte was counted.
 */
public final class BitsPerByte {
    private static final double LN2 = Math.log(2);

    private double nats;
    private long bytes;

    /**
     * Adds one batch: {@code losses[i]} is the cross-entropy in nats of predicting {@code targets[i]}
     * (reduction 'none'), {@code tokenBytes[id]} the UTF-8 length of token {@code id} (0 for special tokens).
     */
    public void add(float[] losses, int[] targets, int[] tokenBytes) {
        if (losses.length != targets.length) {
            throw new IllegalArgumentException("losses (" + losses.length + ") and targets (" + targets.length + ") differ in length");
        }
        double n = 0;
        long b = 0;
        for (int i = 0; i < targets.length; i++) {
            int t = targets[i];
            if (t < 0) continue;
            if (t >= tokenBytes.length) {
                throw new IllegalArgumentException("target " + t + " at " + i + " outside the token-bytes table of " + tokenBytes.length);
            }
            int len = tokenBytes[t];
            if (len > 0) {
                n += losses[i];
                b += len;
            }
        }
        nats += n;
        bytes += b;
    }

    /** Adds partial sums from elsewhere (another rank). */
    public void add(double nats, long bytes) {
        this.nats += nats;
        this.bytes += bytes;
    }

    public double nats() {
        return nats;
    }

    public long bytes() {
        return bytes;
    }

    /** This accumulator's bits per byte. */
    public double value() {
        return bpb(nats, bytes);
    }

    /** Σ nats / (ln 2 · Σ bytes), or +∞ for zero bytes. */
    public static double bpb(double nats, long bytes) {
        return bytes == 0 ? Double.POSITIVE_INFINITY : nats / (LN2 * bytes);
    }

    /**
     * nanochat's evaluate_bpb on one rank: {@code steps} batches from {@code loader} through {@code perTokenLoss}
     * (inputs, targets → losses in nats, one per target). Returns the partial sums (reduce them across ranks).
     */
    public static BitsPerByte evaluate(DataLoader loader, int steps, BiFunction<int[], int[], float[]> perTokenLoss, int[] tokenBytes) {
        BitsPerByte acc = new BitsPerByte();
        for (int s = 0; s < steps; s++) {
            DataLoader.Batch b = loader.next();
            acc.add(perTokenLoss.apply(b.inputs(), b.targets()), b.targets(), tokenBytes);
        }
        return acc;
    }
}
