package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import nanochat4j.tensor.cuda.TensorCoreAttention.Mode;
import nanochat4j.tensor.cuda.TensorCoreAttention.Use;
import org.junit.jupiter.api.Test;

/** When the training step's attention runs on the tensor cores: the decision, without a GPU. */
class TensorCoreAttentionTest {
    private final List<String> warnings = new ArrayList<>();
    private final TensorCoreAttention tc = new TensorCoreAttention(Mode.AUTO, warnings::add);
    private static final MatmulPrecision BF16 = MatmulPrecision.BF16;

    @Test
    void onlyBf16AtHeadDimsTheKernelsAreWrittenForAndNeverWhenSetToFp32() {
        assertEquals(Use.FP32, tc.use("fwd", 128, MatmulPrecision.FP32), "fp32 precision keeps the fp32 kernels");
        for (int d : new int[] {8, 24, 144, 256}) assertEquals(Use.FP32, tc.use("fwd", d, BF16), "head dim " + d);
        for (int d : new int[] {16, 32, 64, 128}) assertEquals(Use.CHECK, tc.use("bwd", d, BF16), "head dim " + d);
        tc.setMode(Mode.FP32);
        assertEquals(Use.FP32, tc.use("fwd", 128, BF16));
        tc.setMode(Mode.TC);
        assertEquals(Use.TC, tc.use("fwd", 128, BF16), "tc: unchecked");
        assertEquals(Use.FP32, tc.use("fwd", 128, MatmulPrecision.FP32));
    }

    @Test
    void aPassIsCheckedOnceAtEachHeadDimAndAWrongKernelIsDroppedWithAWarning() {
        float[] ref = {1f, -2f, 0.5f}, near = {1.01f, -2.02f, 0.5f}, off = {1f, 2f, 0.5f};
        assertTrue(tc.check("fwd", 128, new float[][] {ref, {3f}}, new float[][] {near, {3.01f}}));
        assertEquals(Use.TC, tc.use("fwd", 128, BF16));
        assertEquals(Use.CHECK, tc.use("fwd", 64, BF16), "each head dim on its own");
        assertEquals(Use.CHECK, tc.use("bwd", 128, BF16), "each pass on its own");
        assertTrue(tc.check("bwd", 128, new float[][] {ref, ref}, new float[][] {near, off}), "one output off fails the pass");
        assertEquals(Use.FP32, tc.use("bwd", 128, BF16));
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.getFirst().contains("attention bwd at head dim 128") && warnings.getFirst().contains("fp32 kernel runs"), warnings.toString());
        assertTrue(tc.check("fwd", 64, new float[][] {ref}, new float[][] {{Float.NaN, -2f, 0.5f}}));
        assertEquals(Use.FP32, tc.use("fwd", 64, BF16), "a NaN the fp32 kernel does not give fails");
    }

    @Test
    void allZeroReferencesDecideNothing() {
        float[] zeros = new float[4];
        assertFalse(tc.check("bwd", 128, new float[][] {zeros, zeros}, new float[][] {zeros.clone(), zeros.clone()}), "step 0: dy is zero");
        assertEquals(Use.CHECK, tc.use("bwd", 128, BF16), "the next call checks");
        assertTrue(warnings.isEmpty());
        assertTrue(tc.check("bwd", 128, new float[][] {zeros}, new float[][] {{1, 2, 3, 4}}), "zeros against something: decided");
        assertEquals(Use.FP32, tc.use("bwd", 128, BF16), "a kernel that makes gradients out of none is wrong");
    }

    /** A resumed run takes the checks from its checkpoint and does not check again at its (sharper) first step. */
    @Test
    void checksGoIntoACheckpointAndComeBackUntested() {
        float[] ref = {1f, -2f}, off = {-1f, 2f};
        tc.check("fwd", 128, new float[][] {ref}, new float[][] {ref.clone()});
        tc.check("bwd", 128, new float[][] {ref}, new float[][] {off});
        List<String> saved = tc.saved();
        assertEquals(List.of("bwd 128 fp32", "fwd 128 tc"), saved);
        TensorCoreAttention resumed = new TensorCoreAttention(Mode.AUTO, warnings::add);
        resumed.restore(saved);
        assertEquals(Use.TC, resumed.use("fwd", 128, BF16));
        assertEquals(Use.FP32, resumed.use("bwd", 128, BF16));
        assertEquals(Use.CHECK, resumed.use("fwd", 64, BF16), "what was never checked is checked");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> resumed.restore(List.of("fwd 128 fast")));
        assertTrue(e.getMessage().contains("fwd 128 fast"), e.getMessage());
        tc.forget();
        assertEquals(Use.CHECK, tc.use("fwd", 128, BF16));
    }

    @Test
    void theModeComesFromItsPropertyOrTheValuesAreNamed() {
        String old = System.getProperty("nanochat4j.cuda.attention");
        try {
            System.setProperty("nanochat4j.cuda.attention", "TC");
            assertEquals(Mode.TC, Mode.fromProperty());
            System.setProperty("nanochat4j.cuda.attention", "fast");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, Mode::fromProperty);
            assertTrue(e.getMessage().contains("expected auto, fp32 or tc"), e.getMessage());
        } finally {
            if (old == null) System.clearProperty("nanochat4j.cuda.attention");
            else System.setProperty("nanochat4j.cuda.attention", old);
        }
    }
}
