package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** {@link Reduce#max} and {@link Reduce#softmaxRow} (the KV-cache decode's attention softmax) against plain references. */
class ReduceTest {
    private static final int[] SIZES = {1, 2, Vec.LANES - 1, Vec.LANES, Vec.LANES + 1, 3 * Vec.LANES + 5, 144, 1000};

    @Test
    void maxIsTheLargestElementAtEverySizeAndOffset() {
        SplittableRandom rnd = new SplittableRandom(11);
        for (int n : SIZES) {
            float[] x = new float[n + 3];
            for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * 10);
            float ref = Float.NEGATIVE_INFINITY;
            for (int i = 3; i < n + 3; i++) ref = Math.max(ref, x[i]);
            assertEquals(ref, Reduce.max(x, 3, n), "n=" + n);
        }
    }

    @Test
    void maxPropagatesNaNAndPrefersPositiveZero() {
        for (int n : SIZES) {
            for (int at = 0; at < n; at += Math.max(1, n / 3)) {
                float[] x = new float[n];
                java.util.Arrays.fill(x, -1f);
                x[at] = Float.NaN;
                assertTrue(Float.isNaN(Reduce.max(x, 0, n)), "NaN at " + at + " of " + n);
                java.util.Arrays.fill(x, -0f);
                x[at] = 0f;
                assertEquals(Float.floatToIntBits(0f), Float.floatToIntBits(Reduce.max(x, 0, n)), "+0 at " + at + " of " + n);
            }
        }
    }

    @Test
    void softmaxRowMatchesFloat64AndMayRunInPlace() {
        SplittableRandom rnd = new SplittableRandom(5);
        for (int n : SIZES) {
            float[] x = new float[n + 2], y = new float[n + 1];
            for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextGaussian() * 4);
            double m = Double.NEGATIVE_INFINITY, sum = 0;
            for (int i = 2; i < n + 2; i++) m = Math.max(m, x[i]);
            for (int i = 2; i < n + 2; i++) sum += Math.exp(x[i] - m);
            Reduce.softmaxRow(x, 2, y, 1, n);
            for (int i = 0; i < n; i++) {
                double ref = Math.exp(x[i + 2] - m) / sum;
                assertEquals(ref, y[i + 1], 2e-6 * ref + 1e-9, "n=" + n + " i=" + i);
            }
            float[] inPlace = x.clone();
            Reduce.softmaxRow(inPlace, 2, inPlace, 2, n);
            for (int i = 0; i < n; i++) assertEquals(Float.floatToIntBits(y[i + 1]), Float.floatToIntBits(inPlace[i + 2]), "in place, n=" + n);
        }
    }
}
