package nanochat4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The CPU's forms of what recorded GPU work uses: nothing to record (its work runs as issued), and the ops that read
 * a position from an int32 scalar agree with their host-position forms (CudaGraphTest holds the GPU's to the same).
 */
class PositionAtOpsCpuTest {
    private final Backend be = Backend.cpu();

    @Test
    void theCpuRecordsNothing() {
        int[] ran = {0};
        assertNull(be.record(() -> ran[0]++));
        assertEquals(0, ran[0]);
    }

    @Test
    void positionReadingOpsAgreeWithTheirHostPositionForms() {
        SplittableRandom rnd = new SplittableRandom(2);
        int b = 2, tmax = 40, h = 4, kv = 2, d = 16, pos = 23;
        Backend.RotaryTables rt = be.rotaryTables(64, d, 10000);
        Tensor at = Tensor.ofInts(new int[] {pos}, 1);
        Tensor x = random(rnd, b, 1, h, d);
        assertArrayEquals(be.rotaryRmsNorm(x, rt.cos(), rt.sin(), pos, 1.2f, false).y().toFloatArray(), be.rotaryRmsNormAt(x, rt.cos(), rt.sin(), at, 1.2f).toFloatArray());
        Tensor k1 = random(rnd, b, tmax, kv, d), k2 = k1.copy(), v = random(rnd, b, tmax, kv, d), kNew = random(rnd, b, 1, kv, d);
        be.narrowAssign(k1, 1, pos, kNew);
        be.narrowAssignAt(k2, 1, at, kNew);
        assertArrayEquals(k1.toFloatArray(), k2.toFloatArray());
        Tensor q = random(rnd, b, 1, h, d);
        assertArrayEquals(be.attentionCached(q, k1, v, pos, 8, 0.2f).toFloatArray(), be.attentionCachedAt(q, k1, v, at, 8, 0.2f).toFloatArray());
        Tensor chunk = random(rnd, b, 2, h, d);
        assertThrows(IllegalArgumentException.class, () -> be.attentionCachedAt(chunk, k1, v, at, 8, 0.2f), "a decode step's, one query");
        be.addToInt(at, 3);
        assertEquals(pos + 3, at.toIntArray()[0]);
        assertThrows(IllegalArgumentException.class, () -> be.addToInt(Tensor.of(new float[] {1f}), 1));
    }

    private static Tensor random(SplittableRandom rnd, int... shape) {
        float[] a = new float[Tensor.numel(shape)];
        for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextDouble(-1, 1);
        return Tensor.of(a, shape);
    }
}
