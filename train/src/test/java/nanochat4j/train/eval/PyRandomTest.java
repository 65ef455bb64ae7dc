package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Expected values come from CPython 3.11's random module. */
class PyRandomTest {

    private static long[] bits(long seed, int n) {
        PyRandom r = new PyRandom(seed);
        long[] out = new long[n];
        for (int i = 0; i < n; i++) out[i] = r.getrandbits(32);
        return out;
    }

    @Test
    void getrandbitsMatchesCPythonForSmallZeroAndMultiWordSeeds() {
        assertArrayEquals(new long[] {2653228291L, 3975144315L, 2290358181L, 3048911309L, 1571306751L}, bits(1337, 5));
        assertArrayEquals(new long[] {3626764237L, 1654615998L, 3255389356L}, bits(0, 3));
        assertArrayEquals(new long[] {2166296868L, 2220160828L, 1153647273L}, bits((1L << 40) + 5, 3));
    }

    @Test
    void shuffleMatchesCPython() {
        List<Integer> x = new ArrayList<>(IntStream.range(0, 20).boxed().toList());
        new PyRandom(42).shuffle(x);
        assertEquals(List.of(19, 5, 14, 4, 9, 13, 15, 18, 6, 12, 17, 10, 1, 11, 2, 16, 7, 8, 0, 3), x);
    }

    @Test
    void sampleMatchesCPythonInPoolAndSetModes() {
        int[] avail = IntStream.range(0, 100).filter(i -> i != 7).toArray();
        assertArrayEquals(new int[] {78, 64, 98, 28, 37, 33, 25, 92, 63, 71}, new PyRandom(1234 + 7).sample(avail, 10));
        assertArrayEquals(new int[] {4, 1, 3}, new PyRandom(1234).sample(new int[] {1, 2, 3, 4}, 3));
        int[] big = IntStream.range(1, 2000).toArray();
        assertArrayEquals(new int[] {305, 1817, 811, 634, 492, 1947, 467, 720, 1025, 1279}, new PyRandom(1234 + 3).sample(big, 10));
    }
}
