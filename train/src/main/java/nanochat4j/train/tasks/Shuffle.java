package nanochat4j.train.tasks;

import java.util.ArrayList;
import java.util.List;
import nanochat4j.train.eval.PyRandom;

/**
 * The deterministic shuffles of the tasks. TaskMixture's is exactly nanochat's ({@code random.Random(42).shuffle}
 * of the index list). Each dataset's own shuffle is nanochat's {@code numpy.random.default_rng(42).permutation}
 * there; numpy's PCG64 stream is not ported, so here it is the same Python-random shuffle with seed 42: the order
 * is fixed and reproducible, but the first N problems of a task are not the same N as nanochat's.
 */
final class Shuffle {
    private Shuffle() {}

    static int[] permutation(int n, long seed) {
        List<Integer> idx = new ArrayList<>(n);
        for (int i = 0; i < n; i++) idx.add(i);
        new PyRandom(seed).shuffle(idx);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = idx.get(i);
        return out;
    }
}
