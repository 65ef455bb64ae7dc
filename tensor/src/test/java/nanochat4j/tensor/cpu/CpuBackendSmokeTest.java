package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** A first end-to-end pass through the Backend seam: each op family runs once on tiny, hand-checkable inputs. */
class CpuBackendSmokeTest {
    private final Backend be = Backend.cpu();

    @Test
    void linearMatchesHandComputedProduct() {
        Tensor x = Tensor.of(new float[] {1, 2, 3, 4, 5, 6}, 2, 3);
        Tensor w = Tensor.of(new float[] {1, 0, -1, 2, 1, 0}, 2, 3);
        assertArrayEquals(new float[] {-2, 4, -2, 13}, be.linear(x, w).toFloatArray());
    }

    @Test
    void rmsNormOfConstantRowIsScale() {
        Tensor y = be.rmsNorm(Tensor.full(3f, 2, 5), 1.2f);
        for (float v : y.toFloatArray()) assertEquals(1.2f, v, 1e-6f);
    }

    @Test
    void crossEntropyOfUniformLogitsIsLogV() {
        Tensor logits = Tensor.zeros(3, 7);
        Tensor targets = Tensor.ofInts(new int[] {1, -1, 6});
        Backend.Loss l = be.crossEntropy(logits, targets, 15f, Reduction.MEAN, true);
        assertEquals(Math.log(7), l.loss().item(), 1e-6);
        double gradSum = 0;
        for (float g : l.dlogits().toFloatArray()) gradSum += g;
        assertEquals(0, gradSum, 1e-6, "softmax − one-hot sums to 0 per row");
    }

    @Test
    void embeddingRejectsOutOfRangeIds() {
        Tensor table = Tensor.zeros(4, 2);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.embedding(table, Tensor.ofInts(new int[] {0, 4})));
        org.junit.jupiter.api.Assertions.assertTrue(ex.getMessage().contains("embedding"), ex.getMessage());
    }
}
