package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.Random;
import nanochat4j.tensor.cpu.Gemm;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** The half-computed symmetric products of the polar-express iteration equal the full GEMMs bit for bit. */
class PolarExpressTest {

    @ParameterizedTest
    @CsvSource({"64, 96, 64", "96, 64, 16", "200, 300, 48", "300, 200, 48", "256, 256, 40", "1, 12, 1", "385, 193, 32", "130, 130, 64"})
    void upperTriangleProductsEqualTheFullGemmBitwise(int rows, int cols, int blockRows) {
        int count = 2, s = Math.min(rows, cols), mn = rows * cols, ss = s * s;
        PolarExpress pe = new PolarExpress(rows, cols, count, blockRows);
        Random r = new Random(rows * 31L + cols);
        float[] x = pe.x();
        for (int i = 0; i < count * mn; i++) x[i] = (float) r.nextGaussian();
        float[] full = new float[count * ss];
        if (rows > cols) {
            Gemm.sgemmBatched(count, true, false, s, s, rows, 1f, x, 0, cols, mn, x, 0, cols, mn, 0f, full, 0, s, ss);
        } else {
            Gemm.sgemmBatched(count, false, true, s, s, cols, 1f, x, 0, cols, mn, x, 0, cols, mn, 0f, full, 0, s, ss);
        }
        pe.gram(count);
        float[] gram = Arrays.copyOf(pe.gramBuffer(), count * ss);
        assertArrayEquals(full, gram, "gram " + rows + "x" + cols);
        float[] square = new float[count * ss];
        Gemm.sgemmBatched(count, false, false, s, s, s, 1f, gram, 0, s, ss, gram, 0, s, ss, 0f, square, 0, s, ss);
        pe.gramSquared(count);
        assertArrayEquals(square, Arrays.copyOf(pe.gramSquaredBuffer(), count * ss), "gram squared " + rows + "x" + cols);
    }

    @Test
    void blockRowsSplitLargeSidesIntoAboutSixBlocks() {
        assertEquals(100, PolarExpress.blockRows(100));
        assertEquals(256, PolarExpress.blockRows(256)); // d4: one plain GEMM
        assertEquals(96, PolarExpress.blockRows(384));  // d6: four blocks
        assertEquals(128, PolarExpress.blockRows(768)); // d12
        assertEquals(216, PolarExpress.blockRows(1280));
    }

    @Test
    void tooManyIterationsAreRejected() {
        PolarExpress pe = new PolarExpress(4, 4, 1);
        assertThrows(IllegalArgumentException.class, () -> pe.iterate(1, 6));
        assertThrows(IllegalArgumentException.class, () -> pe.iterate(2, 5));
    }
}
