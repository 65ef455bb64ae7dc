package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Embedding lookup and its backward. table (V, E), ids (n) → out (n, E):
 * <pre>
 *   forward:   out[i, :] = table[ids[i], :]
 *   backward:  dTable[ids[i], :] += dy[i, :]     (scatter-add; repeated ids accumulate)
 * </pre>
 * The backward splits the E columns over threads, so two threads never add into the same element and repeated
 * ids need no locking. Ids are bounds-checked before anything is written.
 */
final class Embedding {
    private Embedding() {}

    private static final VectorSpecies<Float> S = Vec.F;

    static void checkIds(int[] ids, int io, int n, int v, String op) {
        for (int i = 0; i < n; i++) {
            int id = ids[io + i];
            if (id < 0 || id >= v) {
                throw new IllegalArgumentException(op + ": id " + id + " at position " + i + " is outside [0, " + v + ")");
            }
        }
    }

    static void forward(float[] table, int to, int[] ids, int io, int n, int e, float[] out, int oo) {
        Parallel.forRange(n, Math.max(1, 4096 / Math.max(e, 1)), (s, end) -> {
            for (int i = s; i < end; i++) System.arraycopy(table, to + ids[io + i] * e, out, oo + i * e, e);
        });
    }

    static void backward(float[] dy, int dyo, int[] ids, int io, int n, int e, float[] dTable, int dto) {
        // split columns in whole vectors so every thread keeps aligned vector adds
        Parallel.forRange(e, S.length(), (c0, c1) -> {
            int w = c1 - c0, ub = S.loopBound(w);
            for (int i = 0; i < n; i++) {
                int src = dyo + i * e + c0, dst = dto + ids[io + i] * e + c0;
                int j = 0;
                for (; j < ub; j += S.length()) {
                    FloatVector.fromArray(S, dTable, dst + j).add(FloatVector.fromArray(S, dy, src + j)).intoArray(dTable, dst + j);
                }
                for (; j < w; j++) dTable[dst + j] += dy[src + j];
            }
        });
    }
}
