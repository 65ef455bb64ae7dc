package nanochat4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** Tensor metadata, views that share storage, copies, element access and their error messages. */
class TensorTest {

    @Test
    void reshapeSliceAndSelectShareStorage() {
        Tensor t = Tensor.of(new float[24], 2, 3, 4);
        Tensor flat = t.reshape(-1, 4);
        assertArrayEquals(new int[] {6, 4}, flat.shape());
        assertSame(t.floats(), flat.floats());
        Tensor s = t.slice(1, 2);
        assertEquals(12, s.offset());
        s.floats()[s.offset() + 2 * 4 + 3] = 7f;
        assertEquals(7f, t.floats()[(1 * 3 + 2) * 4 + 3]);
        Tensor row = t.select(1).select(2);
        assertArrayEquals(new int[] {4}, row.shape());
        assertEquals(7f, row.toFloatArray()[3]);
        assertEquals(4, t.cols());
        assertEquals(6, t.rows());
        assertEquals(4, t.shape(-1));
    }

    @Test
    void copiesAreIndependentAndConvert() {
        Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2);
        Tensor c = t.slice(1, 2).copy();
        c.fill(9f);
        assertEquals(3f, t.floats()[2]);
        assertArrayEquals(new float[] {3, 4}, t.slice(1, 2).toFloatArray());
        assertArrayEquals(new float[] {5, 6}, Tensor.ofInts(new int[] {5, 6}).toFloatArray());
        assertEquals(2.5f, Tensor.scalar(2.5f).item());
        assertEquals(0, Tensor.scalar(2.5f).rank());
        assertArrayEquals(new int[] {1}, Tensor.of(new float[] {1f}).shape());
        Tensor dst = Tensor.zeros(2);
        dst.copyFrom(t.select(0));
        assertArrayEquals(new float[] {1, 2}, dst.toFloatArray());
    }

    @Test
    void badShapesAndAccessesExplainThemselves() {
        var ex = assertThrows(IllegalArgumentException.class, () -> Tensor.of(new float[5], 2, 3));
        assertTrue(ex.getMessage().contains("[2, 3]"), ex.getMessage());
        Tensor t = Tensor.zeros(2, 3);
        ex = assertThrows(IllegalArgumentException.class, () -> t.reshape(4, -1));
        assertTrue(ex.getMessage().contains("reshape"), ex.getMessage());
        assertThrows(IllegalArgumentException.class, () -> t.slice(1, 3));
        assertThrows(IllegalStateException.class, t::item);
        assertThrows(IllegalStateException.class, t::ints);
        assertThrows(IndexOutOfBoundsException.class, () -> t.getFlat(6));
        assertThrows(IllegalArgumentException.class, () -> Tensor.zeros(-1, 2));
    }

    @Test
    void bf16ScalarConversionIsRoundToNearestEven() {
        assertEquals((short) 0x3f80, DType.toBf16(1f));
        assertEquals((short) 0x3f80, DType.toBf16(Float.intBitsToFloat(0x3f808000)));      // tie, even below
        assertEquals((short) 0x3f82, DType.toBf16(Float.intBitsToFloat(0x3f818000)));      // tie, even above
        assertEquals((short) 0x3f81, DType.toBf16(Float.intBitsToFloat(0x3f808001)));      // past the tie
        assertEquals(-3.0f, DType.fromBf16(DType.toBf16(-3.0f)));
        assertTrue(Float.isNaN(DType.fromBf16(DType.toBf16(Float.NaN))));
        Tensor h = Tensor.zeros(DType.BF16, 3);
        h.shorts()[1] = DType.toBf16(1.5f);
        assertEquals(1.5f, h.getFlat(1));
    }
}
