package nanochat4j.tensor;

/** How per-row losses are combined: MEAN over the non-ignored rows, SUM, or NONE (one loss per row, 0 where ignored). */
public enum Reduction {
    MEAN, SUM, NONE
}
