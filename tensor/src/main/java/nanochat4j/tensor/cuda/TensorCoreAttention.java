package nanochat4j.tensor.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Consumer;

/**
 * Whether the training step's attention runs on the tensor cores ({@code attention_tc_fwd.cu},
 * {@code attention_tc_bwd.cu}: bf16 operands, fp32 accumulation and softmax, as nanochat's attention under autocast)
 * or on {@code attention.cu}'s fp32 kernels, which run on the CUDA cores: a few percent of the card's bf16 peak, and
 * at T = 2048 most of a step. The tensor-core kernels serve {@link MatmulPrecision#BF16} at head dims that are
 * multiples of 16 up to 128, for training and for prefill chunks of 16 queries or more (decode steps stay fp32).
 *
 * <p>As {@link GemmChooser} does for our GEMM, the first use of each pass (forward, backward, prefill; each apart with
 * and without a sliding window that drops keys, so both masks are checked) at each head dim is
 * checked against the fp32 kernels on the same inputs: every output's rows (along its last dim) within
 * {@link #TOLERANCE} of the fp32 output's largest row norm, else the fp32 kernels keep that pass for the run and a
 * warning says so. The checking call returns the outputs that run from then on, so the checking step computes as every
 * later one does. On Hopper every pass at head dim {@value #WGMMA_HEAD_DIM} has two tensor-core candidates: the
 * warpgroup-MMA kernels ({@code attention_wgmma.cu}) are checked first; turned down, they leave the pass undecided
 * and its next call checks the mma.sync ones. An fp32 output that is all zeros checks
 * nothing (the backward at step 0, behind nanochat's zero-initialised projections; the tensor cores' are zeros then
 * too): that call returns the fp32 outputs and the next one checks. base-train's checkpoints carry the checks
 * ({@link #saved}), so a resumed run does not check again. {@code -Dnanochat4j.cuda.attention=auto}
 * (default), {@code fp32}, or {@code tc} (the tensor-core kernels unchecked: the conformance test's setting);
 * {@code -Dnanochat4j.cuda.attention.wgmma=false} keeps Hopper on the mma.sync kernels.
 */
public final class TensorCoreAttention {
    /**
     * Largest difference from the fp32 kernels allowed, relative to their output's largest magnitude (row norm): bf16 operands
     * (unit roundoff 2^-8) in the scores, the probabilities and the gradients' products put a correct kernel well
     * inside 2^-4; a wrong index, mask or fragment is off by about the output's own size.
     */
    public static final double TOLERANCE = 1.0 / 16;

    /** The head dim attention_wgmma.cu is written for (nanochat's at every depth). */
    public static final int WGMMA_HEAD_DIM = 128;

    /** The -Dnanochat4j.cuda.attention setting. */
    public enum Mode {
        AUTO, FP32, TC;

        static Mode fromProperty() {
            String s = System.getProperty("nanochat4j.cuda.attention", "auto").toUpperCase(Locale.ROOT);
            try {
                return valueOf(s);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("-Dnanochat4j.cuda.attention=" + s.toLowerCase(Locale.ROOT) + ": expected auto, fp32 or tc");
            }
        }
    }

    /** What a call does: the fp32 kernels, the tensor-core ones, or both (the check). */
    public enum Use { FP32, TC, CHECK }

    private final Consumer<String> log;
    private volatile Mode mode;
    /** Whether Hopper may run the wgmma kernels (-Dnanochat4j.cuda.attention.wgmma, default true). */
    private volatile boolean wgmmaAllowed = !"false".equals(System.getProperty("nanochat4j.cuda.attention.wgmma"));
    /** "fwd 128" → whether the tensor-core kernel passed its check (absent: not checked yet). */
    private final Map<String, Boolean> verdicts = new ConcurrentHashMap<>();

    TensorCoreAttention(Mode mode, Consumer<String> log) {
        this.mode = mode;
        this.log = log;
    }

    /** The backend's: the mode from the property, warnings to stderr. */
    static TensorCoreAttention fromProperty() {
        return new TensorCoreAttention(Mode.fromProperty(), line -> System.err.println("cuda: " + line));
    }

    /** Head dims the tensor-core kernels are written for. */
    public static boolean supports(int headDim) {
        return headDim >= 16 && headDim <= 128 && headDim % 16 == 0;
    }

    /** Sets the mode (tests); returns the previous one. */
    public Mode setMode(Mode m) {
        Mode old = mode;
        mode = m;
        return old;
    }

    /** Allows or forbids the wgmma kernels (a benchmark's comparison, a test's); returns the previous setting. */
    public boolean setWgmma(boolean allowed) {
        boolean old = wgmmaAllowed;
        wgmmaAllowed = allowed;
        return old;
    }

    /**
     * Whether the tensor-core kernels of {@code pass} at head dim {@code d} are attention_wgmma.cu's: on a Hopper GPU at
     * head dim {@value #WGMMA_HEAD_DIM}, unless a check turned them down for the pass.
     */
    public boolean wgmma(String pass, int d, boolean hopper) {
        return wgmmaAllowed && hopper && d == WGMMA_HEAD_DIM && !Boolean.FALSE.equals(verdicts.get(pass + "-wgmma " + d));
    }

    /**
     * The checks made, for a checkpoint: "fwd 128 tc", "bwd 64 fp32", …. A resumed run {@link #restore}s them instead of
     * checking at its first step, where attention has sharpened (bf16 and fp32 gradients differ more in peaked rows)
     * and where the two kernels would be compared on a mixture the uninterrupted run never computed.
     */
    public List<String> saved() { // "bwd-wgmma 128 fp32": the wgmma kernels turned down for that pass
        List<String> out = new ArrayList<>();
        new TreeMap<>(verdicts).forEach((k, ok) -> out.add(k + " " + (ok ? "tc" : "fp32")));
        return out;
    }

    /** Takes the checks {@link #saved} listed as made; a line not of that form is an error naming it. */
    public void restore(List<String> lines) {
        for (String line : lines) {
            String[] f = line.trim().split(" ");
            if (f.length != 3 || !f[1].matches("[0-9]+") || !(f[2].equals("tc") || f[2].equals("fp32"))) {
                throw new IllegalArgumentException("attention check \"" + line + "\": expected \"fwd|bwd|prefill[-window][-wgmma] HEAD_DIM tc|fp32\"");
            }
            verdicts.put(f[0] + " " + f[1], f[2].equals("tc"));
        }
    }

    /** Forgets every check (a test's stand-in for a new process, as {@link GemmChooser#forget}). */
    public void forget() {
        verdicts.clear();
    }

    /** What the {@code pass} ("fwd", "bwd", "prefill", each maybe "-window") at head dim {@code d} runs now, under {@code precision}. */
    public Use use(String pass, int d, MatmulPrecision precision) {
        if (precision != MatmulPrecision.BF16 || mode == Mode.FP32 || !supports(d)) return Use.FP32;
        if (mode == Mode.TC) return Use.TC;
        Boolean ok = verdicts.get(pass + " " + d);
        return ok == null ? Use.CHECK : ok ? Use.TC : Use.FP32;
    }

    /**
     * Records a check from each output's row norms: {@code norms[i]} of the fp32 kernels' output, {@code errors[i]} of
     * the difference between the two kernels'. Returns what the pass runs from now on: {@link Use#CHECK} (undecided)
     * when every fp32 output and every difference is all zeros, else {@link Use#TC} or {@link Use#FP32}. With
     * {@code wgmma} the candidate was the one {@link #wgmma} named: passing, it decides the pass as {@link Use#TC};
     * failing, it is turned down for the pass and {@link Use#CHECK} leaves the pass to the mma.sync kernels' check.
     */
    public Use check(String pass, int d, boolean wgmma, float[][] norms, float[][] errors) {
        double worst = 0;
        boolean testable = false;
        for (int i = 0; i < norms.length; i++) {
            double scale = max(norms[i]), err = max(errors[i]);
            if (scale == 0 && err == 0) continue;
            testable = true;
            double e = err / scale; // NaN or infinite (something where the fp32 kernel gave zeros) fails below
            worst = Double.isNaN(e) || Double.isNaN(worst) ? Double.NaN : Math.max(worst, e);
        }
        if (!testable) return Use.CHECK;
        boolean ok = worst <= TOLERANCE;
        if (wgmma) {
            verdicts.put(pass + "-wgmma " + d, ok);
            if (ok) verdicts.put(pass + " " + d, true);
            else log.accept(String.format(Locale.ROOT, "attention %s at head dim %d: the wgmma kernels differ from the fp32 ones by %.3g of their"
                    + " largest output (allowed %.3g); the mma.sync tensor-core kernels are checked next", pass, d, worst, TOLERANCE));
            return ok ? Use.TC : Use.CHECK;
        }
        verdicts.put(pass + " " + d, ok);
        if (!ok) {
            log.accept(String.format(Locale.ROOT, "attention %s at head dim %d: the tensor-core kernel differs from the fp32 one by %.3g of its"
                    + " largest output (allowed %.3g); the fp32 kernel runs this pass from now on", pass, d, worst, TOLERANCE));
        }
        return ok ? Use.TC : Use.FP32;
    }

    /** The largest value (NaN if any is). */
    private static double max(float[] a) {
        double m = 0;
        for (float x : a) {
            if (Float.isNaN(x)) return Double.NaN;
            m = Math.max(m, x);
        }
        return m;
    }
}
