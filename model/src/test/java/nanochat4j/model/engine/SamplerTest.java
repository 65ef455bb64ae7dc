package nanochat4j.model.engine;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

class SamplerTest {

    @Test
    void temperatureZeroIsArgmaxWithTheLowestIdOnTies() {
        float[] l = {0.5f, 3f, -1f, 3f};
        assertEquals(1, new Sampler(1).sample(l, 0, 4, 0.0, 50));
        assertEquals(3, new Sampler(1).sample(new float[] {9f, 1f, 2f, 5f, 7f}, 1, 4, 0.0, 0));
    }

    @Test
    void topKKeepsTheLargestLogitsInOrder() {
        Random r = new Random(7);
        float[] l = new float[1000];
        for (int i = 0; i < l.length; i++) l[i] = (float) r.nextGaussian();
        int[] top = Sampler.topK(l, 0, l.length, 10);
        Integer[] sorted = new Integer[l.length];
        for (int i = 0; i < l.length; i++) sorted[i] = i;
        java.util.Arrays.sort(sorted, (a, b) -> l[a] != l[b] ? Float.compare(l[b], l[a]) : Integer.compare(a, b));
        for (int i = 0; i < 10; i++) assertEquals(sorted[i].intValue(), top[i]);
        assertArrayEquals(new int[] {0, 2}, Sampler.topK(new float[] {1f, 0f, 1f, 1f}, 0, 4, 2));
    }

    @Test
    void samplesFollowTheSoftmaxOfTheTopK() {
        float[] l = {(float) Math.log(1), (float) Math.log(2), (float) Math.log(3), (float) Math.log(4), -100f};
        int n = 200_000;
        int[] counts = new int[5];
        Sampler s = new Sampler(42);
        for (int i = 0; i < n; i++) counts[s.sample(l, 0, 5, 1.0, 3)]++;
        assertEquals(0, counts[0], "outside the top 3");
        assertEquals(0, counts[4]);
        assertEquals(2.0 / 9, counts[1] / (double) n, 0.005);
        assertEquals(3.0 / 9, counts[2] / (double) n, 0.005);
        assertEquals(4.0 / 9, counts[3] / (double) n, 0.005);
        // temperature 2 flattens: p ∝ sqrt(i)
        counts = new int[5];
        for (int i = 0; i < n; i++) counts[s.sample(l, 0, 5, 2.0, 0)]++;
        double z = 1 + Math.sqrt(2) + Math.sqrt(3) + 2 + Math.exp(-50);
        assertEquals(Math.sqrt(3) / z, counts[2] / (double) n, 0.005);
    }

    /**
     * Top-p: probabilities 0.4, 0.3, 0.2, 0.1 (a fifth token negligible); p = 0.65 keeps the first two (0.7 ≥ 0.65),
     * renormalized to 4/7 and 3/7; p = 0.85 three; p = 0 only the most probable; with top-k 2
     * the nucleus is taken of what top-k kept (0.4/0.7 and 0.3/0.7 of it: p = 0.5 keeps the first only).
     */
    @Test
    void topPKeepsTheSmallestMostProbableSetReachingP() {
        float[] l = {(float) Math.log(0.2), (float) Math.log(0.4), -100f, (float) Math.log(0.1), (float) Math.log(0.3)};
        int n = 200_000;
        int[] counts = new int[5];
        Sampler s = new Sampler(42);
        for (int i = 0; i < n; i++) counts[s.sample(l, 0, 5, 1.0, 0, 0.65)]++;
        assertEquals(0, counts[0] + counts[2] + counts[3], "outside the nucleus");
        assertEquals(4.0 / 7, counts[1] / (double) n, 0.005);
        assertEquals(3.0 / 7, counts[4] / (double) n, 0.005);
        counts = new int[5];
        for (int i = 0; i < n; i++) counts[s.sample(l, 0, 5, 1.0, 0, 0.85)]++;
        assertEquals(0, counts[2] + counts[3], "0.4 + 0.3 + 0.2 passes 0.85: token 3 is out");
        assertEquals(2.0 / 9, counts[0] / (double) n, 0.005);
        for (int i = 0; i < 1000; i++) assertEquals(1, s.sample(l, 0, 5, 1.0, 0, 0.0), "p = 0: the most probable token");
        for (int i = 0; i < 1000; i++) assertEquals(1, s.sample(l, 0, 5, 1.0, 2, 0.5), "top-k 2 keeps 1 and 4, 0.4/0.7 > 0.5");
        // a tie at the edge of the nucleus keeps the lower id
        float[] tie = {0f, 1f, 1f, -5f};
        for (int i = 0; i < 1000; i++) assertEquals(1, s.sample(tie, 0, 4, 1.0, 0, 0.3));
    }

    @Test
    void topPOfOneDrawsExactlyAsWithoutIt() {
        Random r = new Random(9);
        float[] l = new float[300];
        for (int i = 0; i < l.length; i++) l[i] = (float) r.nextGaussian() * 3;
        Sampler a = new Sampler(5), b = new Sampler(5);
        for (int i = 0; i < 500; i++) assertEquals(a.sample(l, 0, 300, 0.8, 40), b.sample(l, 0, 300, 0.8, 40, 1.0));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> a.sample(l, 0, 300, 1.0, 0, 1.5));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> a.sample(l, 0, 300, 1.0, 0, Double.NaN));
    }

    @Test
    void theSameSeedReproducesAndDifferentSeedsDiffer() {
        float[] l = new float[64];
        int[] a = new int[50];
        int[] b = new int[50];
        int[] c = new int[50];
        Sampler sa = new Sampler(3);
        Sampler sb = new Sampler(3);
        Sampler sc = new Sampler(4);
        for (int i = 0; i < 50; i++) {
            a[i] = sa.sample(l, 0, 64, 1.0, 0);
            b[i] = sb.sample(l, 0, 64, 1.0, 0);
            c[i] = sc.sample(l, 0, 64, 1.0, 0);
        }
        assertArrayEquals(a, b);
        assertTrue(!java.util.Arrays.equals(a, c));
    }
}
