package nanochat4j.autograd;

import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;

/**
 * A per-op wall-clock profile of the tape, switched on with {@code -Dnanochat4j.opTimes=true} (off: one static
 * boolean test per op). Backward time is exact per node (its closure); forward time of an op is the time since
 * the previous op was recorded on the thread, i.e. the op's kernel plus the model code in between — good enough to
 * see where a step goes. Single-threaded use (the training thread); {@link #reset} between phases.
 */
public final class OpTimes {
    private OpTimes() {}

    /** Whether the tape records op times ({@code nanochat4j.opTimes}). */
    public static final boolean ENABLED = Boolean.getBoolean("nanochat4j.opTimes");

    private static final Map<String, long[]> TIMES = new TreeMap<>(); // op → {forward ns, forward count, backward ns, backward count}
    private static long last = System.nanoTime();

    static void forward(String op) {
        long now = System.nanoTime();
        long[] t = TIMES.computeIfAbsent(op, k -> new long[4]);
        t[0] += now - last;
        t[1]++;
        last = now;
    }

    static void backward(String op, long ns) {
        long[] t = TIMES.computeIfAbsent(op, k -> new long[4]);
        t[2] += ns;
        t[3]++;
    }

    /** Starts the clock for the next op's forward time (call before a forward, so it excludes what ran before). */
    public static void mark() {
        last = System.nanoTime();
    }

    /** Forgets everything recorded; the next op's forward time counts from now. */
    public static void reset() {
        TIMES.clear();
        last = System.nanoTime();
    }

    /** The profile as a table (seconds per op kind, forward and backward, divided by {@code steps}). */
    public static String table(int steps) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%-30s %10s %10s %8s%n", "op (per step)", "fwd s", "bwd s", "count"));
        double fw = 0, bw = 0;
        for (var e : TIMES.entrySet()) {
            long[] t = e.getValue();
            fw += t[0] / 1e9 / steps;
            bw += t[2] / 1e9 / steps;
            sb.append(String.format(Locale.ROOT, "%-30s %10.4f %10.4f %8d%n", e.getKey(), t[0] / 1e9 / steps, t[2] / 1e9 / steps,
                    Math.max(t[1], t[3]) / steps));
        }
        sb.append(String.format(Locale.ROOT, "%-30s %10.4f %10.4f%n", "total", fw, bw));
        return sb.toString();
    }
}
