package nanochat4j.model.engine;

import java.util.SplittableRandom;

/**
 * Next-token sampling as nanochat's {@code sample_next_token}: temperature 0 is greedy argmax; with top-k the k
 * largest logits (ties keep the lower id) are divided by the temperature, softmaxed and sampled; otherwise the whole
 * distribution is. Beyond nanochat, top-p (nucleus sampling, which OpenAI's API has): of those, the most probable
 * tokens whose probabilities add up to at least p, renormalized (at least the most probable one). The RNG is seeded,
 * so a seed reproduces a generation exactly; top-p 1 draws exactly as without it.
 */
public final class Sampler {
    private final SplittableRandom rng;

    public Sampler(long seed) {
        this.rng = new SplittableRandom(seed);
    }

    /** Samples one token id from {@code logits[off, off+vocab)}. */
    public int sample(float[] logits, int off, int vocab, double temperature, int topK) {
        return sample(logits, off, vocab, temperature, topK, 1.0);
    }

    /** Samples one token id from {@code logits[off, off+vocab)}, keeping the nucleus of mass {@code topP} (1: all). */
    public int sample(float[] logits, int off, int vocab, double temperature, int topK, double topP) {
        if (vocab <= 0) throw new IllegalArgumentException("sample: empty vocabulary");
        if (temperature < 0 || Double.isNaN(temperature)) throw new IllegalArgumentException("sample: temperature " + temperature + " must be >= 0");
        if (!(topP >= 0 && topP <= 1)) throw new IllegalArgumentException("sample: top-p " + topP + " must be in [0, 1]");
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
        if (topP < 1) return nucleus(p, sum, topP, ids);
        double u = rng.nextDouble() * sum;
        for (int j = 0; j < k; j++) {
            u -= p[j];
            if (u < 0) return ids == null ? j : ids[j];
        }
        // rounding left u ≥ 0: the last token with non-zero mass
        for (int j = k - 1; j >= 0; j--) if (p[j] > 0) return ids == null ? j : ids[j];
        return ids == null ? 0 : ids[0];
    }

    /**
     * Samples among the most probable candidates whose weights {@code p} (summing to {@code sum}; candidate j is token
     * {@code ids[j]}, or j when ids is null) reach {@code topP}·sum: taken largest first (the lower id first on ties)
     * from a max-heap, so a peaked distribution costs O(V) and a few pops rather than a sort of the vocabulary.
     */
    private int nucleus(double[] p, double sum, double topP, int[] ids) {
        int k = p.length;
        int[] heap = new int[k];   // candidate indices, a max-heap by (p, -token)
        for (int j = 0; j < k; j++) heap[j] = j;
        for (int i = k / 2 - 1; i >= 0; i--) heapDown(heap, i, k, p, ids);
        int[] kept = new int[k];
        int n = 0, size = k;
        double mass = 0, target = topP * sum;
        do {
            int top = heap[0];
            kept[n++] = top;
            mass += p[top];
            heap[0] = heap[--size];
            heapDown(heap, 0, size, p, ids);
        } while (mass < target && size > 0);
        double u = rng.nextDouble() * mass;
        for (int i = 0; i < n; i++) {
            u -= p[kept[i]];
            if (u < 0) return token(kept[i], ids);
        }
        return token(kept[n - 1], ids);   // rounding left u ≥ 0: the least probable kept token
    }

    private static int token(int candidate, int[] ids) {
        return ids == null ? candidate : ids[candidate];
    }

    /** Whether candidate a ranks above b: more probable, or as probable with the lower token id. */
    private static boolean above(int a, int b, double[] p, int[] ids) {
        return p[a] > p[b] || (p[a] == p[b] && token(a, ids) < token(b, ids));
    }

    private static void heapDown(int[] h, int i, int n, double[] p, int[] ids) {
        while (true) {
            int a = 2 * i + 1, b = a + 1, best = i;
            if (a < n && above(h[a], h[best], p, ids)) best = a;
            if (b < n && above(h[b], h[best], p, ids)) best = b;
            if (best == i) return;
            int t = h[best];
            h[best] = h[i];
            h[i] = t;
            i = best;
        }
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
