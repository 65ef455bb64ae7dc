package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The per-shape choice between cuBLAS and our tensor-core GEMM, without a GPU: a fake timer returns a set time per
 * kernel and a fake verifier a set error, so the test sees which runs get timed, which wins, that a winner is
 * verified and a wrong one never kept, that a shape is decided (and logged) once, and that shapes our kernels
 * cannot compute go to cuBLAS untimed.
 */
class GemmChooserTest {
    private static final TensorCoreGemm.Tile BIG = TensorCoreGemm.TILES.get(0), SMALL = TensorCoreGemm.TILES.get(1);

    /** Runnables that name themselves; the timer looks their time up and counts the calls. */
    private static final class Fake implements GemmChooser.Timer {
        final Map<String, Double> ms = new HashMap<>();
        final List<String> timed = new ArrayList<>();
        String current;

        @Override
        public double ms(Runnable body) {
            body.run();
            timed.add(current);
            return ms.get(current);
        }

        Runnable named(String name) {
            return () -> current = name;
        }
    }

    /** A timer that reads cuBLAS, our big tile and our small tile at these milliseconds. */
    private static Fake times(double cublas, double big, double small) {
        Fake f = new Fake();
        f.ms.put("cublas", cublas);
        f.ms.put("ours " + BIG, big);
        f.ms.put("ours " + SMALL, small);
        return f;
    }

    /** Our kernel's error against cuBLAS per tile (default: a correct kernel's rounding); records what it verified. */
    private static final class Check implements GemmChooser.Verifier {
        final Map<TensorCoreGemm.Tile, Double> err = new HashMap<>();
        final List<TensorCoreGemm.Tile> verified = new ArrayList<>();

        @Override
        public double error(TensorCoreGemm.Tile tile) {
            verified.add(tile);
            return err.getOrDefault(tile, 3e-7);
        }
    }

    private static GemmChooser.Choice choose(GemmChooser c, GemmChooser.Shape s, Fake f, Check v) {
        return c.choose(s, f.named("cublas"), t -> f.named("ours " + t), v);
    }

    private static GemmChooser chooser(Fake f, List<String> log, GemmChooser.Mode mode) {
        return new GemmChooser(TensorCoreGemm.TILES, f, log::add, mode);
    }

    @Test
    void keepsTheFasterPerShapeAndDecidesOnce() {
        Fake f = times(1.0, 0.8, 0.9);
        List<String> log = new ArrayList<>();
        GemmChooser c = chooser(f, log, GemmChooser.Mode.AUTO);
        GemmChooser.Shape s = new GemmChooser.Shape(65536, 3072, 768, false, true);
        Check v = new Check();
        assertNull(c.known(s));
        GemmChooser.Choice first = choose(c, s, f, v);
        assertTrue(first.ours());
        assertEquals(BIG, first.tile());
        assertEquals(List.of("cublas", "ours " + BIG, "ours " + SMALL), f.timed);
        assertEquals(List.of(BIG), v.verified, "the winner, and only it, is verified");
        assertSame(first, choose(c, s, f, v), "the choice is kept for the run");
        assertSame(first, c.known(s));
        assertEquals(3, f.timed.size(), "a known shape is not timed again");
        assertEquals(1, v.verified.size(), "nor verified again");
        assertEquals(1, log.size(), "logged once: " + log);
        assertTrue(log.getFirst().contains("65536x3072x768 NT") && log.getFirst().contains("125% of cuBLAS")
                && log.getFirst().contains("matches cuBLAS (max error 3.0e-07)"), log.getFirst());
    }

    @Test
    void cublasWinsTiesAndLosses() {
        Fake f = times(1.0, 1.0, 1.5);
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        Check v = new Check();
        GemmChooser.Choice ch = choose(c, new GemmChooser.Shape(128, 128, 64, false, true), f, v);
        assertFalse(ch.ours());
        assertEquals(1.0, ch.cublasMs());
        assertEquals(1.0, ch.oursMs());
        assertTrue(v.verified.isEmpty(), "a loser needs no verifying");
    }

    @Test
    void onlyTilesThatDivideTheShapeAreTried() {
        Fake f = new Fake();
        f.ms.put("cublas", 1.0);
        f.ms.put("ours " + SMALL, 0.5);
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        // M = 64: only the 64-row tile divides it
        GemmChooser.Choice ch = choose(c, new GemmChooser.Shape(64, 256, 64, false, true), f, new Check());
        assertEquals(SMALL, ch.tile());
        assertEquals(List.of("cublas", "ours " + SMALL), f.timed);
    }

    /** The backward's layouts, dx = dy·W (NN) and dW = dyᵀ·x (TN), are timed and verified like the forward's. */
    @Test
    void backwardLayoutsAreTimedAndVerifiedLikeTheForward() {
        for (GemmChooser.Shape s : List.of(new GemmChooser.Shape(65536, 768, 3072, false, false),   // dx = dy·W
                new GemmChooser.Shape(3072, 768, 65536, true, false))) {                             // dW = dyᵀ·x
            Fake f = times(1.0, 0.9, 0.95);
            Check v = new Check();
            GemmChooser.Choice ch = choose(chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO), s, f, v);
            assertEquals(BIG, ch.tile(), s.toString());
            assertEquals(List.of("cublas", "ours " + BIG, "ours " + SMALL), f.timed, s.toString());
            assertEquals(List.of(BIG), v.verified, s.toString());
        }
    }

    /** A faster kernel whose output disagrees with cuBLAS (wrong, or NaN) is never chosen: cuBLAS, and a warning. */
    @Test
    void aFasterKernelThatDisagreesWithCublasIsNotKept() {
        for (double bad : new double[] {0.5, GemmChooser.TOLERANCE * 1.01, Double.NaN}) {
            Fake f = times(1.0, 0.5, 0.6);
            Check v = new Check();
            v.err.put(BIG, bad);
            List<String> log = new ArrayList<>();
            GemmChooser c = chooser(f, log, GemmChooser.Mode.AUTO);
            GemmChooser.Shape s = new GemmChooser.Shape(256, 256, 256, true, false);
            GemmChooser.Choice ch = choose(c, s, f, v);
            assertFalse(ch.ours(), "error " + bad);
            assertSame(ch, c.known(s));
            assertEquals(1, log.size());
            assertTrue(log.getFirst().contains("256x256x256 TN → cuBLAS: WARNING: our kernel (tile " + BIG + ") disagrees with cuBLAS"),
                    log.getFirst());
        }
        // forced: verified all the same
        Fake f = new Fake();
        Check v = new Check();
        v.err.put(BIG, 1.0);
        GemmChooser.Choice ch = choose(chooser(f, new ArrayList<>(), GemmChooser.Mode.OURS), new GemmChooser.Shape(256, 256, 64, false, true), f, v);
        assertFalse(ch.ours());
        assertEquals(List.of(BIG), v.verified);
    }

    /**
     * At step 0 a zero-initialised c_proj makes whole products zero in both kernels: that proves nothing about ours, so
     * the shape stays undecided (cuBLAS runs, nothing is kept or logged) until a GEMM with a nonzero product decides it.
     */
    @Test
    void anAllZeroProductLeavesTheShapeUndecided() {
        Fake f = times(1.0, 0.5, 0.6);
        List<String> log = new ArrayList<>();
        GemmChooser c = chooser(f, log, GemmChooser.Mode.AUTO);
        GemmChooser.Shape s = new GemmChooser.Shape(65536, 768, 3072, false, true);
        Check zeros = new Check();
        zeros.err.put(BIG, GemmChooser.UNTESTABLE);
        GemmChooser.Choice first = choose(c, s, f, zeros);
        assertFalse(first.ours(), "cuBLAS while ours cannot be verified");
        assertNull(c.known(s), "not kept");
        assertTrue(log.isEmpty(), "nothing logged: " + log);
        GemmChooser.Choice second = choose(c, s, f, new Check());
        assertTrue(second.ours(), "decided by the first product that can verify it");
        assertSame(second, c.known(s));
        assertEquals(1, log.size());
        // forced to ours: the same
        Check z = new Check();
        z.err.put(BIG, GemmChooser.UNTESTABLE);
        GemmChooser forced = chooser(new Fake(), new ArrayList<>(), GemmChooser.Mode.OURS);
        assertFalse(choose(forced, s, new Fake(), z).ours());
        assertNull(forced.known(s));
    }

    /**
     * A resumed run takes the first run's kernel per shape from the checkpoint, untimed (the kernels' sums differ in the
     * low bits, and fresh timings could choose otherwise); shapes not listed are decided as usual.
     */
    @Test
    void savedChoicesComeBackUntimedOnResume() {
        Fake f = times(1.0, 0.5, 0.6);
        GemmChooser first = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        GemmChooser.Shape fwd = new GemmChooser.Shape(65536, 3072, 768, false, true), dw = new GemmChooser.Shape(3072, 768, 65536, true, false);
        GemmChooser.Shape odd = new GemmChooser.Shape(100, 100, 100, false, true);
        choose(first, fwd, f, new Check());
        Check wrongDw = new Check();
        wrongDw.err.put(BIG, 1.0);
        choose(first, dw, f, wrongDw);
        choose(first, odd, f, new Check());
        List<String> saved = first.saved();
        assertEquals(List.of("65536 3072 768 NT 128,128,32,64,32", "3072 768 65536 TN cublas", "100 100 100 NT cublas"), saved);

        Fake later = new Fake(); // a resumed run where timings would now favour the other kernel
        later.ms.put("cublas", 0.1);
        later.ms.put("ours " + BIG, 0.9);
        later.ms.put("ours " + SMALL, 0.9);
        GemmChooser resumed = chooser(later, new ArrayList<>(), GemmChooser.Mode.AUTO);
        resumed.restore(saved);
        assertEquals(BIG, choose(resumed, fwd, later, new Check()).tile(), "the checkpoint's kernel, not a new timing");
        assertFalse(choose(resumed, dw, later, new Check()).ours());
        assertTrue(later.timed.isEmpty(), "restored shapes are not timed: " + later.timed);
        assertEquals(saved, resumed.saved());
        resumed.restore(List.of("8 8 8 NT 1,2,3,4,5")); // a tile this build lacks: decided anew
        assertNull(resumed.known(new GemmChooser.Shape(8, 8, 8, false, true)));
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> resumed.restore(List.of("8 8 NT cublas")));
    }

    /** Our kernel failing to build or run (an NVRTC error, say) while timed or verified: cuBLAS, and a warning naming it. */
    @Test
    void aKernelThatFailsLeavesCublas() {
        Fake f = new Fake();
        f.ms.put("cublas", 1.0);
        List<String> log = new ArrayList<>();
        GemmChooser c = chooser(f, log, GemmChooser.Mode.AUTO);
        GemmChooser.Choice ch = c.choose(new GemmChooser.Shape(256, 256, 64, false, false), f.named("cublas"),
                t -> () -> { throw new CudaException("nvrtcCompileProgram(gemm.cu): NVRTC_ERROR_COMPILATION", 6); }, t -> 0.0);
        assertFalse(ch.ours());
        assertTrue(log.getFirst().contains("WARNING: our kernel (tile " + BIG + ") failed, cuBLAS kept: nvrtcCompileProgram"), log.getFirst());
        ch = chooser(f, log, GemmChooser.Mode.OURS).choose(new GemmChooser.Shape(256, 256, 64, true, false), f.named("cublas"),
                t -> f.named("ours"), t -> { throw new CudaException("cuLaunchKernel(gemm_bf16_tn): CUDA_ERROR_LAUNCH_FAILED", 719); });
        assertFalse(ch.ours());
        assertTrue(log.getLast().contains("failed, cuBLAS kept: cuLaunchKernel(gemm_bf16_tn)"), log.getLast());
    }

    @Test
    void relativeErrorIsAgainstTheLargestReferenceMagnitude() {
        assertEquals(0.0, GemmChooser.relativeError(new float[] {1, -2, 3}, new float[] {1, -2, 3}));
        assertEquals(0.25, GemmChooser.relativeError(new float[] {4, -1, 0}, new float[] {4, -1, 1}), 1e-12);
        assertEquals(GemmChooser.UNTESTABLE, GemmChooser.relativeError(new float[] {0, 0}, new float[] {0, 0}));
        assertTrue(GemmChooser.relativeError(new float[] {0, 0}, new float[] {0, 1e-30f}) > 1, "an all-zero reference: any difference fails");
        assertTrue(Double.isNaN(GemmChooser.relativeError(new float[] {1, 2}, new float[] {1, Float.NaN})));
        assertTrue(Double.isNaN(GemmChooser.relativeError(new float[] {1, 2}, new float[] {1})));
    }

    @Test
    void transposedATransposedBAndShapesNoTileDividesGoToCublasUntimed() {
        Fake f = new Fake();
        Check v = new Check();
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        for (GemmChooser.Shape s : List.of(new GemmChooser.Shape(128, 128, 128, true, true), // Aᵀ·Bᵀ: no kernel of ours
                new GemmChooser.Shape(100, 128, 64, false, true),                              // M = 100
                new GemmChooser.Shape(128, 100, 64, false, false))) {                          // N = 100
            GemmChooser.Choice ch = choose(c, s, f, v);
            assertFalse(ch.ours(), s.toString());
            assertNull(ch.tile());
        }
        assertTrue(f.timed.isEmpty(), "nothing timed: " + f.timed);
        assertTrue(v.verified.isEmpty(), "nothing verified: " + v.verified);
        assertEquals(3, c.choices().size());
        for (GemmChooser.Shape s : c.choices().keySet()) assertFalse(c.runsKernelsToDecide(s), s.toString());
        assertTrue(c.runsKernelsToDecide(new GemmChooser.Shape(128, 128, 128, true, false)));
        assertFalse(chooser(f, new ArrayList<>(), GemmChooser.Mode.CUBLAS).runsKernelsToDecide(new GemmChooser.Shape(128, 128, 128, false, true)));
        GemmChooser.Shape big = new GemmChooser.Shape(1024, 1024, 1024, false, true);
        assertFalse(c.cublasFor(big, "no device memory for the scratch outputs").ours());
        assertFalse(choose(c, big, f, v).ours(), "settled on cuBLAS: not timed later");
        assertTrue(f.timed.isEmpty());
    }

    @Test
    void forcedModesSkipTheTiming() {
        Fake f = new Fake();
        Check v = new Check();
        GemmChooser.Shape s = new GemmChooser.Shape(256, 256, 64, false, true);
        assertEquals(BIG, choose(chooser(f, new ArrayList<>(), GemmChooser.Mode.OURS), s, f, v).tile());
        assertFalse(choose(chooser(f, new ArrayList<>(), GemmChooser.Mode.CUBLAS), s, f, v).ours());
        assertTrue(f.timed.isEmpty());
        assertEquals(List.of(BIG), v.verified, "forced ours is still verified; forced cuBLAS needs nothing");
    }
}
