package nanochat4j.tensor;

import java.util.Arrays;

/**
 * Argument checks and shape arithmetic that every backend applies the same way, so the CPU and CUDA backends refuse
 * the same bad input with the same message.
 */
public final class OpChecks {
    private OpChecks() {}

    public static void positiveCap(String op, float cap) {
        if (!(cap > 0f) || Float.isInfinite(cap)) throw new IllegalArgumentException(op + ": cap must be a finite positive number, got " + cap);
    }

    public static int[] dropLast(Tensor x) {
        return Arrays.copyOf(x.shape(), Math.max(0, x.rank() - 1));
    }

    public static int dim(String op, Tensor x, int dim) {
        int d = dim < 0 ? dim + x.rank() : dim;
        if (d < 0 || d >= x.rank()) throw bad(op, "dim " + dim + " out of range", x);
        return d;
    }

    public static int outer(int[] s, int d) {
        int n = 1;
        for (int i = 0; i < d; i++) n *= s[i];
        return n;
    }

    public static int inner(int[] s, int d) {
        int n = 1;
        for (int i = d + 1; i < s.length; i++) n *= s[i];
        return n;
    }

    public static void same(String op, Tensor a, Tensor b) {
        if (!a.sameShape(b)) throw bad(op, "shapes must be equal", a, b);
    }

    /** Every tensor holds as many elements as the first (in-place updates over flat state). */
    public static void sameCount(String op, Tensor... ts) {
        for (Tensor t : ts) if (t.numel() != ts[0].numel()) throw bad(op, "element counts must be equal", ts);
    }

    public static IllegalArgumentException bad(String op, String why, Tensor... ts) {
        StringBuilder sb = new StringBuilder(op).append(": ").append(why).append(" (got");
        for (Tensor t : ts) sb.append(' ').append(t == null ? "null" : Arrays.toString(t.shape()));
        return new IllegalArgumentException(sb.append(')').toString());
    }
}
