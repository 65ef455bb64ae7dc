package nanochat4j.model.engine;

import java.util.SplittableRandom;

/**
 * Next-token sampling as nanochat's {@code sample_next_token}: temperature 0 is greedy argmax; with top-k the k
 * largest logits (ties keep the lower id) are divided by the temperature, softmaxed and sampled; otherwise the whole
 * distribution is. The RNG is seeded, so a seed reproduces a generation exactly.
 */
public final class Sampler {
    private final SplittableRandom rng;

    public Sampler(long seed) {
        this.rng = new SplittableRandom(seed);
    }

    /** Samples one token id from {@code logits[off, off+vocab)}. */
    public int sample(float[] logits, int off, int vocab, double temperature, int topK) {
        if (vocab <= 0) throw new IllegalArgumentException("sample: empty vocabulary");
        if (temperature < 0 || Double.isNaN(temperature)) throw new IllegalArgumentException("sample: temperature " + temperature + " must be >= 0");
        if (temperature == 0) return argmax(logits, off, vocab);
        int k = topK > 0 ? Math.min(topK, vocab) : vocab;
        int[] ids = k < vocab ? topK(logits, off, vocab, k) : null;
        double max = Double.NEGATIVE_INFINITY;
        for (int j = 0; j < k; j++) max = Math.max(max, logits[off + (ids == null ? j : ids[j])]);
        double[] p = new double[k];
        double sum = 0;
        for (int j = 0; j < k; j++) {
            p[j] = Math.exp((logits[off + (ids == null ? j : ids[j])] - max) / temperature);
            sum += p[j];
        }
        double u = rng.nextDouble() * sum;
        for (int j = 0; j < k; j++) {
            u -= p[j];
            if (u < 0) return ids == null ? j : ids[j];
        }
        // rounding left u ≥ 0: the last token with non-zero mass
        for (int j = k - 1; j >= 0; j--) if (p[j] > 0) return ids == null ? j : ids[j];
        return ids == null ? 0 : ids[0];
    }

    /** Greedy choice: the largest logit, the lowest id on ties. */
    public static int argmax(float[] logits, int off, int vocab) {
        int best = 0;
        for (int j = 1; j < vocab; j++) if (logits[off + j] > logits[off + best]) best = j;
        return best;
    }

    /** Ids of the k largest logits, largest first; ties keep the lower id first. O(V log k) with a small heap. */
    static int[] topK(float[] logits, int off, int vocab, int k) {
        int[] heap = new int[k]; // min-heap by (logit, -id): the root is the weakest kept token
        int n = 0;
        for (int id = 0; id < vocab; id++) {
            if (n < k) {
                heap[n] = id;
                siftUp(heap, n++, logits, off);
            } else if (stronger(id, heap[0], logits, off)) {
                heap[0] = id;
                siftDown(heap, k, logits, off);
            }
        }
        int[] out = new int[k];
        for (int i = k - 1; i >= 0; i--) {
            out[i] = heap[0];
            heap[0] = heap[--n];
            siftDown(heap, n, logits, off);
        }
        return out;
    }

    private static boolean stronger(int a, int b, float[] l, int off) {
        return l[off + a] > l[off + b] || (l[off + a] == l[off + b] && a < b);
    }

    private static void siftUp(int[] h, int i, float[] l, int off) {
        while (i > 0) {
            int parent = (i - 1) / 2;
            if (!stronger(h[parent], h[i], l, off)) break;
            int t = h[parent];
            h[parent] = h[i];
            h[i] = t;
            i = parent;
        }
    }

    private static void siftDown(int[] h, int n, float[] l, int off) {
        int i = 0;
        while (true) {
            int a = 2 * i + 1;
            int b = a + 1;
            int weakest = i;
            if (a < n && stronger(h[weakest], h[a], l, off)) weakest = a;
            if (b < n && stronger(h[weakest], h[b], l, off)) weakest = b;
            if (weakest == i) return;
            int t = h[weakest];
            h[weakest] = h[i];
            h[i] = t;
            i = weakest;
        }
    }
}
