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
 * kernel, so the test sees which runs get timed, which wins, that a shape is decided (and logged) once, and that
 * shapes our kernel cannot compute go to cuBLAS untimed.
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

    private static GemmChooser chooser(Fake f, List<String> log, GemmChooser.Mode mode) {
        return new GemmChooser(TensorCoreGemm.TILES, f, log::add, mode);
    }

    @Test
    void keepsTheFasterPerShapeAndDecidesOnce() {
        Fake f = new Fake();
        f.ms.put("cublas", 1.0);
        f.ms.put("ours " + BIG, 0.8);
        f.ms.put("ours " + SMALL, 0.9);
        List<String> log = new ArrayList<>();
        GemmChooser c = chooser(f, log, GemmChooser.Mode.AUTO);
        GemmChooser.Shape s = new GemmChooser.Shape(65536, 3072, 768, false, true);
        GemmChooser.Choice first = c.choose(s, f.named("cublas"), t -> f.named("ours " + t));
        assertTrue(first.ours());
        assertEquals(BIG, first.tile());
        assertEquals(List.of("cublas", "ours " + BIG, "ours " + SMALL), f.timed);
        assertSame(first, c.choose(s, f.named("cublas"), t -> f.named("ours " + t)), "the choice is kept for the run");
        assertEquals(3, f.timed.size(), "a known shape is not timed again");
        assertEquals(1, log.size(), "logged once: " + log);
        assertTrue(log.getFirst().contains("65536x3072x768 NT") && log.getFirst().contains("125% of cuBLAS"), log.getFirst());
    }

    @Test
    void cublasWinsTiesAndLosses() {
        Fake f = new Fake();
        f.ms.put("cublas", 1.0);
        f.ms.put("ours " + BIG, 1.0);
        f.ms.put("ours " + SMALL, 1.5);
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        GemmChooser.Choice ch = c.choose(new GemmChooser.Shape(128, 128, 64, false, true), f.named("cublas"), t -> f.named("ours " + t));
        assertFalse(ch.ours());
        assertEquals(1.0, ch.cublasMs());
        assertEquals(1.0, ch.oursMs());
    }

    @Test
    void onlyTilesThatDivideTheShapeAreTried() {
        Fake f = new Fake();
        f.ms.put("cublas", 1.0);
        f.ms.put("ours " + SMALL, 0.5);
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        // M = 64: only the 64-row tile divides it
        GemmChooser.Choice ch = c.choose(new GemmChooser.Shape(64, 256, 64, false, true), f.named("cublas"), t -> f.named("ours " + t));
        assertEquals(SMALL, ch.tile());
        assertEquals(List.of("cublas", "ours " + SMALL), f.timed);
    }

    @Test
    void otherLayoutsAndShapesNoTileDividesGoToCublasUntimed() {
        Fake f = new Fake();
        GemmChooser c = chooser(f, new ArrayList<>(), GemmChooser.Mode.AUTO);
        for (GemmChooser.Shape s : List.of(new GemmChooser.Shape(128, 128, 128, false, false), // dx = dy·W
                new GemmChooser.Shape(128, 128, 128, true, false),                                  // dW = dyᵀ·x
                new GemmChooser.Shape(100, 128, 64, false, true))) {                                // M = 100
            GemmChooser.Choice ch = c.choose(s, f.named("cublas"), t -> f.named("ours " + t));
            assertFalse(ch.ours(), s.toString());
            assertNull(ch.tile());
        }
        assertTrue(f.timed.isEmpty(), "nothing timed: " + f.timed);
        assertEquals(3, c.choices().size());
    }

    @Test
    void forcedModesSkipTheTiming() {
        Fake f = new Fake();
        GemmChooser.Shape s = new GemmChooser.Shape(256, 256, 64, false, true);
        assertEquals(BIG, chooser(f, new ArrayList<>(), GemmChooser.Mode.OURS).choose(s, f.named("cublas"), t -> f.named("ours")).tile());
        assertFalse(chooser(f, new ArrayList<>(), GemmChooser.Mode.CUBLAS).choose(s, f.named("cublas"), t -> f.named("ours")).ours());
        assertTrue(f.timed.isEmpty());
    }
}
