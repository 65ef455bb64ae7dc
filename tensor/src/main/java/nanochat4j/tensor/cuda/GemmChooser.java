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
 * At the first GEMM of a shape both are timed ({@link Timer}: a warm-up, then the median of a few runs); before our
 * kernel is kept it is verified: its output on the same inputs must match cuBLAS's within bf16's rounding
 * ({@link #TOLERANCE} of the output's largest magnitude), else cuBLAS is kept and a warning logged, so a wrong kernel
 * is never chosen. A product that comes out all zeros verifies nothing ({@link #UNTESTABLE}): cuBLAS runs and the
 * shape is decided at a later GEMM. The choice holds for the rest of the run and is logged once. Our kernels compute A·Bᵀ, A·B and
 * Aᵀ·B with every dim a multiple of a tile; any other shape or layout goes to cuBLAS untimed. {@code
 * -Dnanochat4j.cuda.gemm=} {@code auto} (default), {@code cublas} or {@code ours} (the first fitting tile, untimed
 * but still verified) overrides the choice. The caller's timed and verified runs must leave the real output alone
 * (scratch outputs) when beta ≠ 0.
 */
public final class GemmChooser {
    /** A row-major GEMM C (m×n) = op(A)·op(B) with inner dim k. */
    public record Shape(int m, int n, int k, boolean transA, boolean transB) {
        /** The layout of the forward linear, A (m, k) and B (n, k), both k-contiguous. */
        public boolean nt() {
            return !transA && transB;
        }

        /** A layout one of our kernels computes (A·Bᵀ, A·B, Aᵀ·B). */
        public boolean ours() {
            return TensorCoreGemm.supports(transA, transB);
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

    /**
     * Largest difference allowed between our output and cuBLAS's on the same bf16 inputs, relative to the output's
     * largest magnitude: bf16's unit roundoff (2^-8). Both accumulate in fp32, so a correct kernel differs by far less
     * (summation order only); a wrong index or layout differs by about the output's own size.
     */
    public static final double TOLERANCE = 1.0 / 256;

    /**
     * {@link #relativeError} when both outputs are all zeros: such a GEMM cannot tell a wrong kernel from a right one
     * (every linear mistake maps zeros to zeros), and at step 0 many are (nanochat zero-initialises c_proj, so its
     * forward and the backward products through it are zero). The shape then stays undecided: cuBLAS runs, and the
     * next GEMM of the shape tries again.
     */
    public static final double UNTESTABLE = Double.NEGATIVE_INFINITY;

    /**
     * Max |ours − reference| over max |reference| (NaN when either holds a NaN, or the lengths differ: not a match;
     * {@link #UNTESTABLE} when both are all zeros).
     */
    public static double relativeError(float[] reference, float[] ours) {
        if (reference.length != ours.length) return Double.NaN;
        double maxRef = 0, maxDiff = 0;
        for (int i = 0; i < reference.length; i++) {
            double r = reference[i], o = ours[i];
            if (Double.isNaN(r) || Double.isNaN(o)) return Double.NaN;
            maxRef = Math.max(maxRef, Math.abs(r));
            maxDiff = Math.max(maxDiff, Math.abs(o - r));
        }
        if (maxRef == 0 && maxDiff == 0) return UNTESTABLE;
        return maxDiff == 0 ? 0 : maxDiff / Math.max(maxRef, Float.MIN_NORMAL);
    }

    /** Our kernel's error against cuBLAS ({@link #relativeError}) on the GEMM at hand, with a tile. */
    @FunctionalInterface
    public interface Verifier {
        double error(TensorCoreGemm.Tile tile);
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

    /** The chooser the backend uses: the device's tiles, the mode from {@code -Dnanochat4j.cuda.gemm}, log lines to stderr. */
    static GemmChooser forBackend(List<TensorCoreGemm.Tile> tiles, Timer timer) {
        return new GemmChooser(tiles, timer, line -> System.err.println("cuda: " + line), Mode.fromProperty());
    }

    /** The choice made for {@code shape}, or null while it is undecided. */
    public synchronized Choice known(Shape shape) {
        return choices.get(shape);
    }

    /**
     * The kernel for {@code shape}, timing {@code cublas} and {@code ours.apply(tile)} at its first use and verifying
     * our candidate with {@code verify}; the runnables may be run several times (scratch outputs when beta ≠ 0).
     */
    public synchronized Choice choose(Shape shape, Runnable cublas, Function<TensorCoreGemm.Tile, Runnable> ours, Verifier verify) {
        Choice c = choices.get(shape);
        if (c != null) return c;
        c = decide(shape, cublas, ours, verify);
        return c == null ? UNDECIDED : keep(shape, c);
    }

    /** cuBLAS for one call, the shape left undecided: our candidate could not be verified on it ({@link #UNTESTABLE}). */
    static final Choice UNDECIDED = new Choice(null, Double.NaN, Double.NaN, "undecided: both outputs all zeros, which cannot verify ours");

    /** Settles {@code shape} on cuBLAS without timing (e.g. no device memory for the scratch outputs); {@code why} is logged. */
    public synchronized Choice cublasFor(Shape shape, String why) {
        Choice c = choices.get(shape);
        return c != null ? c : keep(shape, new Choice(null, Double.NaN, Double.NaN, why));
    }

    private Choice keep(Shape shape, Choice c) {
        choices.put(shape, c);
        log.accept("gemm " + shape + " → " + c);
        return c;
    }

    /** Whether deciding {@code shape} would run any kernel (not forced to cuBLAS, a layout and a tile of ours fit). */
    public boolean runsKernelsToDecide(Shape shape) {
        if (mode == Mode.CUBLAS || !shape.ours()) return false;
        for (TensorCoreGemm.Tile t : tiles) if (t.fits(shape.m(), shape.n(), shape.k())) return true;
        return false;
    }

    /** The choice for {@code shape}, or null to leave it undecided this time ({@link #verified}). */
    private Choice decide(Shape shape, Runnable cublas, Function<TensorCoreGemm.Tile, Runnable> ours, Verifier verify) {
        if (mode == Mode.CUBLAS) return new Choice(null, Double.NaN, Double.NaN, "forced (-Dnanochat4j.cuda.gemm=cublas)");
        if (!shape.ours()) return new Choice(null, Double.NaN, Double.NaN, "our kernels compute A·Bᵀ, A·B and Aᵀ·B only");
        List<TensorCoreGemm.Tile> fitting = new ArrayList<>();
        for (TensorCoreGemm.Tile t : tiles) if (t.fits(shape.m(), shape.n(), shape.k())) fitting.add(t);
        if (fitting.isEmpty()) return new Choice(null, Double.NaN, Double.NaN, "no tile of ours divides the shape");
        if (mode == Mode.OURS) {
            return verified(fitting.getFirst(), Double.NaN, Double.NaN, "forced (-Dnanochat4j.cuda.gemm=ours)", verify);
        }
        double cublasMs = timer.ms(cublas);
        TensorCoreGemm.Tile best = null;
        double bestMs = Double.POSITIVE_INFINITY;
        for (TensorCoreGemm.Tile t : fitting) {
            double ms;
            try {
                ms = timer.ms(ours.apply(t));
            } catch (RuntimeException e) { // e.g. NVRTC refused the source: cuBLAS still works
                return new Choice(null, cublasMs, Double.NaN, "WARNING: our kernel (tile " + t + ") failed, cuBLAS kept: " + e.getMessage());
            }
            if (ms < bestMs) {
                bestMs = ms;
                best = t;
            }
        }
        String times = String.format(Locale.ROOT, "%.4f ms ours (tile %s, %.0f%% of cuBLAS's speed) vs %.4f ms cuBLAS", bestMs, best,
                100 * cublasMs / bestMs, cublasMs);
        return bestMs < cublasMs ? verified(best, cublasMs, bestMs, times, verify) : new Choice(null, cublasMs, bestMs, times);
    }

    /**
     * Our kernel at {@code tile} if its output matches cuBLAS's, else cuBLAS with the warning in {@code why}; null when
     * the output cannot tell ({@link #UNTESTABLE}).
     */
    private static Choice verified(TensorCoreGemm.Tile tile, double cublasMs, double oursMs, String why, Verifier verify) {
        double err;
        try {
            err = verify.error(tile);
        } catch (RuntimeException e) {
            return new Choice(null, cublasMs, oursMs, "WARNING: our kernel (tile " + tile + ") failed, cuBLAS kept: " + e.getMessage());
        }
        if (err == UNTESTABLE) return null; // decided at a later GEMM of the shape
        if (err <= TOLERANCE) return new Choice(tile, cublasMs, oursMs, why + String.format(Locale.ROOT, "; matches cuBLAS (max error %.1e)", err));
        return new Choice(null, cublasMs, oursMs, String.format(Locale.ROOT,
                "WARNING: our kernel (tile %s) disagrees with cuBLAS (max error %.3g of the output's largest magnitude, tolerance %.3g), "
                        + "cuBLAS kept; %s", tile, err, TOLERANCE, why));
    }

    /**
     * The decisions so far, one line per shape ("m n k NT 128,128,32,64,32" or "... cublas"), for a checkpoint: the two
     * kernels sum in different orders, so a resumed run must run the kernel the first run chose for each shape to
     * continue bit for bit, and a fresh timing could choose otherwise.
     */
    public synchronized List<String> saved() {
        List<String> out = new ArrayList<>();
        for (var e : choices.entrySet()) {
            Shape s = e.getKey();
            TensorCoreGemm.Tile t = e.getValue().tile();
            out.add(s.m() + " " + s.n() + " " + s.k() + " " + (s.transA() ? "T" : "N") + (s.transB() ? "T" : "N") + " "
                    + (t == null ? "cublas" : t.key()));
        }
        return out;
    }

    /**
     * Decides the shapes {@link #saved} listed as they were decided then (without timing; our kernel is still
     * verified at the shape's first use only through the run that chose it). A line naming a tile this build lacks
     * leaves its shape to be decided anew; a malformed line is an error naming it.
     */
    public synchronized void restore(List<String> lines) {
        for (String line : lines) {
            String[] f = line.trim().split(" ");
            if (f.length != 5 || !f[3].matches("[NT][NT]")) throw new IllegalArgumentException("GEMM choice \"" + line + "\": expected \"m n k NT tile|cublas\"");
            Shape s = new Shape(Integer.parseInt(f[0]), Integer.parseInt(f[1]), Integer.parseInt(f[2]), f[3].charAt(0) == 'T', f[3].charAt(1) == 'T');
            if (choices.containsKey(s)) continue;
            if (f[4].equals("cublas")) {
                keep(s, new Choice(null, Double.NaN, Double.NaN, "as in the checkpoint"));
                continue;
            }
            tiles.stream().filter(t -> t.key().equals(f[4])).findFirst().ifPresent(t -> keep(s, new Choice(t, Double.NaN, Double.NaN, "as in the checkpoint")));
        }
    }

    /** Forgets every decision, as a new process starts with none (a test that resumes in the process that saved). */
    public synchronized void forget() {
        choices.clear();
    }

    /** Every shape decided so far, in first-use order. */
    public synchronized Map<Shape, Choice> choices() {
        return new LinkedHashMap<>(choices);
    }
}
