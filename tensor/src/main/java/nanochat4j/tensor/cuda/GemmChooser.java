package nanochat4j.tensor.cuda;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.function.Consumer;
import java.util.function.Function;

/**
 * Which kernel runs a bf16 GEMM of a given shape: cuBLAS GemmEx or our {@link TensorCoreGemm} at one of its tiles.
 * At the first GEMM of a shape both are timed ({@link Timer}: a warm-up, then the median of a few runs) and the
 * faster is kept for the rest of the run and logged once. Our kernel computes C = A·Bᵀ only, with every dim a
 * multiple of a tile; any other shape or layout goes to cuBLAS without timing. {@code -Dnanochat4j.cuda.gemm=}
 * {@code auto} (default), {@code cublas} or {@code ours} (the first fitting tile, untimed) overrides the choice.
 * The timed runs write the real output, so the chooser is only asked for GEMMs with beta = 0 (repeats are harmless).
 */
public final class GemmChooser {
    /** A row-major GEMM C (m×n) = op(A)·op(B) with inner dim k. */
    public record Shape(int m, int n, int k, boolean transA, boolean transB) {
        /** The layout our kernel computes: A (m, k) and B (n, k), both k-contiguous. */
        public boolean nt() {
            return !transA && transB;
        }

        @Override
        public String toString() {
            return m + "x" + n + "x" + k + " " + (transA ? "T" : "N") + (transB ? "T" : "N");
        }
    }

    /** cuBLAS when {@code tile} is null, else our kernel with it; the times are NaN where not measured. */
    public record Choice(TensorCoreGemm.Tile tile, double cublasMs, double oursMs, String why) {
        public boolean ours() {
            return tile != null;
        }

        @Override
        public String toString() {
            return (ours() ? "ours (tile " + tile + ")" : "cuBLAS") + ": " + why;
        }
    }

    /** Milliseconds one run of {@code body} takes on the device (warm-up first, then a median). */
    @FunctionalInterface
    public interface Timer {
        double ms(Runnable body);
    }

    public enum Mode {
        AUTO, CUBLAS, OURS;

        static Mode fromProperty() {
            String v = System.getProperty("nanochat4j.cuda.gemm", "auto");
            return switch (v.toLowerCase(Locale.ROOT)) {
                case "auto" -> AUTO;
                case "cublas" -> CUBLAS;
                case "ours" -> OURS;
                default -> throw new IllegalArgumentException("-Dnanochat4j.cuda.gemm=" + v + ": expected auto, cublas or ours");
            };
        }
    }

    private final Map<Shape, Choice> choices = new LinkedHashMap<>();
    private final List<TensorCoreGemm.Tile> tiles;
    private final Timer timer;
    private final Consumer<String> log;
    private final Mode mode;

    public GemmChooser(List<TensorCoreGemm.Tile> tiles, Timer timer, Consumer<String> log, Mode mode) {
        this.tiles = List.copyOf(tiles);
        this.timer = timer;
        this.log = log;
        this.mode = mode;
    }

    /** The chooser the backend uses: our tiles, the mode from {@code -Dnanochat4j.cuda.gemm}, log lines to stderr. */
    static GemmChooser forBackend(Timer timer) {
        return new GemmChooser(TensorCoreGemm.TILES, timer, line -> System.err.println("cuda: " + line), Mode.fromProperty());
    }

    /**
     * The kernel for {@code shape}, timing {@code cublas} and {@code ours.apply(tile)} at its first use; the
     * runnables compute the real GEMM (beta = 0).
     */
    public synchronized Choice choose(Shape shape, Runnable cublas, Function<TensorCoreGemm.Tile, Runnable> ours) {
        Choice c = choices.get(shape);
        if (c != null) return c;
        c = decide(shape, cublas, ours);
        choices.put(shape, c);
        log.accept("gemm " + shape + " → " + c);
        return c;
    }

    private Choice decide(Shape shape, Runnable cublas, Function<TensorCoreGemm.Tile, Runnable> ours) {
        if (mode == Mode.CUBLAS) return new Choice(null, Double.NaN, Double.NaN, "forced (-Dnanochat4j.cuda.gemm=cublas)");
        if (!shape.nt()) return new Choice(null, Double.NaN, Double.NaN, "our kernel computes A·Bᵀ only");
        List<TensorCoreGemm.Tile> fitting = new ArrayList<>();
        for (TensorCoreGemm.Tile t : tiles) if (t.fits(shape.m(), shape.n(), shape.k())) fitting.add(t);
        if (fitting.isEmpty()) return new Choice(null, Double.NaN, Double.NaN, "no tile of ours divides the shape");
        if (mode == Mode.OURS) return new Choice(fitting.getFirst(), Double.NaN, Double.NaN, "forced (-Dnanochat4j.cuda.gemm=ours)");
        double cublasMs = timer.ms(cublas);
        TensorCoreGemm.Tile best = null;
        double bestMs = Double.POSITIVE_INFINITY;
        for (TensorCoreGemm.Tile t : fitting) {
            double ms = timer.ms(ours.apply(t));
            if (ms < bestMs) {
                bestMs = ms;
                best = t;
            }
        }
        String times = String.format(Locale.ROOT, "%.4f ms ours (tile %s, %.0f%% of cuBLAS's speed) vs %.4f ms cuBLAS", bestMs, best,
                100 * cublasMs / bestMs, cublasMs);
        return bestMs < cublasMs ? new Choice(best, cublasMs, bestMs, times) : new Choice(null, cublasMs, bestMs, times);
    }

    /** Every shape decided so far, in first-use order. */
    public synchronized Map<Shape, Choice> choices() {
        return new LinkedHashMap<>(choices);
    }
}
