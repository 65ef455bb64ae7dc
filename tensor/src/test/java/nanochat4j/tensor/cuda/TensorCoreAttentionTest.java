package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
        // row norms of the fp32 outputs, and of the differences: within 1/16 of the largest norm, or not
        float[] norms = {1f, 2f, 0.5f}, near = {0.01f, 0.02f, 0f}, off = {0f, 4f, 0f};
        assertEquals(Use.TC, tc.check("fwd", 128, false, new float[][] {norms, {3f}}, new float[][] {near, {0.01f}}));
        assertEquals(Use.TC, tc.use("fwd", 128, BF16));
        assertEquals(Use.CHECK, tc.use("fwd", 64, BF16), "each head dim on its own");
        assertEquals(Use.CHECK, tc.use("bwd", 128, BF16), "each pass on its own");
        assertEquals(Use.FP32, tc.check("bwd", 128, false, new float[][] {norms, norms}, new float[][] {near, off}), "one output off fails the pass");
        assertEquals(Use.FP32, tc.use("bwd", 128, BF16));
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.getFirst().contains("attention bwd at head dim 128") && warnings.getFirst().contains("fp32 kernel runs"), warnings.toString());
        assertEquals(Use.FP32, tc.check("fwd", 64, false, new float[][] {norms}, new float[][] {{Float.NaN, 0f, 0f}}), "a NaN difference fails");
        assertEquals(Use.FP32, tc.use("fwd", 64, BF16));
    }

    @Test
    void allZeroReferencesDecideNothing() {
        float[] zeros = new float[4];
        assertEquals(Use.CHECK, tc.check("bwd", 128, false, new float[][] {zeros, zeros}, new float[][] {zeros.clone(), zeros.clone()}),
                "step 0: dy is zero");
        assertEquals(Use.CHECK, tc.use("bwd", 128, BF16), "the next call checks");
        assertTrue(warnings.isEmpty());
        assertEquals(Use.FP32, tc.check("bwd", 128, false, new float[][] {zeros}, new float[][] {{1, 2, 3, 4}}),
                "a kernel that makes gradients out of none is wrong");
        assertEquals(Use.FP32, tc.use("bwd", 128, BF16));
    }

    /**
     * On Hopper at head dim 128 a pass checks the wgmma kernels first; turned down (with a warning), they leave the pass
     * undecided and the mma.sync kernels take the next check — a resumed run remembers both.
     */
    @Test
    void theWgmmaKernelsAreCheckedFirstOnHopperAndTurnedDownFallBackToMmaSync() {
        assertTrue(tc.wgmma("bwd", 128, true));
        assertTrue(tc.wgmma("bwd-window", 128, true));
        assertTrue(!tc.wgmma("bwd", 128, false), "not Hopper");
        assertTrue(!tc.wgmma("bwd", 64, true), "written for head dim 128");
        assertTrue(tc.wgmma("fwd", 128, true) && tc.wgmma("prefill-window", 128, true), "every pass");
        float[] norms = {1f, 2f}, near = {0.01f, 0f}, off = {0f, 4f};
        assertEquals(Use.CHECK, tc.check("bwd", 128, true, new float[][] {norms}, new float[][] {off}), "wrong wgmma: still undecided");
        assertEquals(1, warnings.size(), warnings.toString());
        assertTrue(warnings.getFirst().contains("wgmma kernels differ") && warnings.getFirst().contains("mma.sync"), warnings.toString());
        assertTrue(!tc.wgmma("bwd", 128, true), "turned down for the pass");
        assertTrue(tc.wgmma("bwd-window", 128, true), "each pass on its own");
        assertEquals(Use.CHECK, tc.use("bwd", 128, BF16), "the mma.sync kernels are checked next");
        assertEquals(Use.TC, tc.check("bwd", 128, false, new float[][] {norms}, new float[][] {near}));
        assertEquals(Use.TC, tc.check("bwd-window", 128, true, new float[][] {norms}, new float[][] {near}));
        assertEquals(Use.TC, tc.use("bwd-window", 128, BF16), "a passing wgmma check decides the pass");
        assertEquals(List.of("bwd 128 tc", "bwd-wgmma 128 fp32", "bwd-window 128 tc", "bwd-window-wgmma 128 tc"), tc.saved());
        TensorCoreAttention resumed = new TensorCoreAttention(Mode.AUTO, warnings::add);
        resumed.restore(tc.saved());
        assertTrue(!resumed.wgmma("bwd", 128, true) && resumed.wgmma("bwd-window", 128, true));
        assertEquals(Use.TC, resumed.use("bwd", 128, BF16));
        boolean before = resumed.setWgmma(false);
        assertTrue(before && !resumed.wgmma("bwd-window", 128, true), "switched off");
    }

    /** A resumed run takes the checks from its checkpoint and does not check again at its (sharper) first step. */
    @Test
    void checksGoIntoACheckpointAndComeBackUntested() {
        float[] norms = {1f, 2f};
        tc.check("fwd", 128, false, new float[][] {norms}, new float[][] {{0f, 0f}});
        tc.check("bwd", 128, false, new float[][] {norms}, new float[][] {{2f, 4f}});
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
