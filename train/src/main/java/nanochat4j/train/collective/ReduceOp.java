package nanochat4j.train.collective;

/** How a collective combines the ranks' values: sum, mean (the sum divided by the world size once), or maximum. */
public enum ReduceOp {
    SUM, AVG, MAX
}
