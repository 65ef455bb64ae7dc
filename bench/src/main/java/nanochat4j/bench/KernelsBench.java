package nanochat4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.function.BiFunction;
import java.util.function.Supplier;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.FmaPeak;
import nanochat4j.tensor.cpu.Gemm;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code nanochat4j bench kernels}: a quick timing of the CPU kernels against this machine's fp32 peak, measured in
 * the same process by {@link FmaPeak} moments before each op (so a busy machine shows up in both numbers).
 * <ul>
 *   <li>GEMM: square 512/1024/2048, and every layer product of d4 (C=256) and d6 (C=384) at B·T = 4096 — forward
 *       y = x·Wᵀ and the two backward products dX = dY·W, dW = dYᵀ·X for W in (C,C), (4C,C), (C,4C) and the
 *       lm_head (32768, C).</li>
 *   <li>Attention forward+backward (B=8, T=512, H=4 and 6, D=64, full causal), flops as nanochat's estimate_flops
 *       attention term: 12·H·D·T per token.</li>
 *   <li>softcap + cross-entropy forward+backward (4096 × 32768) as training runs it, inside the fused lm_head op
 *       (d6's C = 384): the fused op's time minus its three lm_head products, as a share of the lm_head forward GEMM;
 *       and the row kernel alone over the same logits in the fused op's 1024-row chunks (a figure the host's drift
 *       does not swamp).</li>
 *   <li>rms_norm and rotary forward+backward: memory bound, so no GFLOP/s; the note gives GB/s.</li>
 * </ul>
 * Each op: warm-up runs until the JIT has settled and the heap has stopped growing ({@link PageFaults}), then the
 * FMA peaks, 200 ms of untimed runs again (the pool idles while the C loop runs), then the median of several timed
 * runs; a row whose timed runs still faulted fresh pages in says so in its note.
 * {@code --json}: one object per line with keys op, shape, ms, gflops (null when not counted), peak_gflops,
 * c_peak_gflops (gcc's FMA loop run beside a flop-bound op; null for the others or without gcc), note.
 * Hidden {@code --quick}: tiny sizes for tests.
 */
@Command(name = "kernels", mixinStandardHelpOptions = true,
        description = "Time the CPU (or, with --device cuda, the GPU) kernels: GEMM, attention, cross-entropy, rms_norm, rotary.")
public final class KernelsBench implements Callable<Integer> {
    @Option(names = "--json", description = "one JSON object per line (op, shape, ms, gflops, peak_gflops, note)")
    boolean json;

    @Option(names = "--ops", split = ",", description = "only these ops: gemm, attention, cross_entropy, rms_norm, rotary (cuda also: "
            + "gemm-bwd, the backward's dx and dW products of every layer, and launch)")
    List<String> ops;

    @Option(names = "--device", defaultValue = "cpu", description = "cpu (default) or cuda: the CUDA backend, timed with CUDA events")
    String device;

    @Option(names = "--peak-tflops", defaultValue = "989", description = "with --device cuda: the peak the %%peak column divides by (default: H100/H200 dense bf16)")
    double peakTflops;

    @Option(names = "--quick", hidden = true, description = "tiny sizes, a few milliseconds in all (tests)")
    boolean quick;

    @Spec
    CommandSpec spec;

    private final Backend be = Backend.cpu();
    private final SplittableRandom rnd = new SplittableRandom(42);
    private final ObjectMapper mapper = new ObjectMapper();
    private PrintWriter out;
    private double lmHeadMs = Double.NaN;
    /** The d6 lm_head's three products (fwd, dX, dW) in ms, once timed: what the fused lm_head + CE op spends in GEMMs. */
    private double lmHeadGemmsMs = Double.NaN;
    /** The triad bandwidth (GB/s) the memory-bound ops are judged against; NaN until measured. */
    private double bandwidth = Double.NaN;
    /** gcc's FMA loop at the JVM's vector width: the flop-bound rows also say their share of it. */
    /** The C loop, kept built to be run again beside each flop-bound op; null until {@link #cPeak()}. */
    private CFmaPeak.Loop cLoop;
    /** GEMM operands are read from one random array and written to one output array, both grown as needed. */
    private float[] operands = new float[0], product = new float[0];

    /**
     * A row, one timed op: flops < 0 when the op is memory bound (then bytes gives its traffic for the note);
     * {@code cPeak} is the C FMA loop's GFLOP/s measured beside a flop-bound op, {@code kernel} the GEMM micro-kernel's
     * alone right after a GEMM row (NaN for the others).
     */
    private record Result(String op, String shape, double ms, double flops, double bytes, double peak, String note, double cPeak,
            double kernel) {
        Result(String op, String shape, double ms, double flops, double bytes, double peak, String note) {
            this(op, shape, ms, flops, bytes, peak, note, Double.NaN, Double.NaN);
        }

        Result withKernel(double gflops) {
            return new Result(op, shape, ms, flops, bytes, peak, note, cPeak, gflops);
        }
    }

    @Override
    public Integer call() {
        out = spec.commandLine().getOut();
        if (!device.equals("cpu") && !device.equals("cuda")) throw new IllegalArgumentException("--device: '" + device + "' is not cpu or cuda");
        List<String> known = device.equals("cuda") ? List.of("gemm", "gemm-bwd", "attention", "cross_entropy", "rms_norm", "rotary", "launch")
                : List.of("gemm", "attention", "cross_entropy", "rms_norm", "rotary");
        if (ops != null) {
            for (String o : ops) {
                if (!known.contains(o)) throw new IllegalArgumentException("--ops: unknown op '" + o + "', use " + known);
            }
        }
        if (device.equals("cuda")) return new CudaKernels(out, json, quick, ops, peakTflops).run();
        if (!json) {
            out.printf(Locale.ROOT, "CPU kernels: %d threads, %d-bit vectors; peak = Vector API FMA loop on all threads, "
                    + "measured before each op; ms = median%n", Parallel.threads(), Vec.F.vectorBitSize());
            out.printf(Locale.ROOT, "paths: %s; %s; exp/tanh/sigmoid: VecMath polynomials (plain vector arithmetic, no SVML call)%n",
                    Gemm.describe(), nanochat4j.tensor.cpu.Attention.describe());
            out.printf(Locale.ROOT, "%-14s %-44s %10s %9s %9s %7s  %s%n", "op", "shape", "ms", "GFLOP/s", "peak", "%peak", "note");
            out.flush();
        }
        try (Deopts d = Deopts.start()) {
            jit = d;
            runOps();
        } finally {
            if (cLoop != null) cLoop.close();
        }
        return 0;
    }

    private void runOps() {
        if (wants("gemm") || wants("attention") || wants("cross_entropy")) cPeak();
        if (wants("gemm")) {
            gemms();
            operands = product = null; // ~1 GB at full size: let the memory-bound ops have it
        }
        if (wants("attention")) attention();
        if (wants("cross_entropy") || wants("rms_norm") || wants("rotary")) bandwidth();
        if (wants("cross_entropy")) crossEntropy();
        if (wants("rms_norm")) rmsNorm();
        if (wants("rotary")) rotary();
    }

    /** Iterations of the C loop: ~50 ms at full size. */
    private long cIters() {
        return quick ? 100_000 : 20_000_000;
    }

    /** Counts the JIT's deoptimizations over each op's timed runs (a storm goes into the row's note). */
    private Deopts jit;

    private boolean wants(String op) {
        return ops == null || ops.contains(op);
    }

    // ------------------------------------------------------------------ GEMM

    private void gemms() {
        int bt = quick ? 64 : 4096, vocab = quick ? 256 : 32768;
        // The ceiling of every row below: the micro-kernel with its panels in L1 (~0.1 s a run at full size)
        int calls = quick ? 200 : 10_000;
        double kernelFlops = Gemm.kernelInL1(calls);
        print(time("gemm", "micro-kernel alone, one pair of panels in L1", kernelFlops, -1, () -> Gemm.kernelInL1(calls)));
        int[] squares = quick ? new int[] {48} : new int[] {512, 1024, 2048};
        for (int s : squares) gemm(s + "x" + s + "x" + s, s, s, s, false, false);
        int[][] dims = quick ? new int[][] {{2, 16}} : new int[][] {{4, 256}, {6, 384}};
        for (int[] d : dims) {
            int c = d[1];
            String tag = "d" + d[0] + " ";
            int[][] weights = {{c, c}, {4 * c, c}, {c, 4 * c}, {vocab, c}}; // (out, in)
            String[] names = {"attn CxC", "mlp c_fc", "mlp c_proj", "lm_head"};
            for (int w = 0; w < weights.length; w++) {
                int o = weights[w][0], i = weights[w][1];
                String name = tag + names[w];
                double fwd = gemm(name + " fwd x*Wt " + bt + "x" + o + "x" + i, bt, o, i, false, true);
                double all = fwd + gemm(name + " dX=dY*W " + bt + "x" + i + "x" + o, bt, i, o, false, false)
                        + gemm(name + " dW=dYt*X " + o + "x" + i + "x" + bt, o, i, bt, true, false);
                if (w == 3 && c == lmHeadC()) {
                    lmHeadMs = fwd;
                    lmHeadGemmsMs = all;
                }
            }
        }
    }

    /** Width of the lm_head the CE row is judged against: d6's (the --quick model's 16). */
    private int lmHeadC() {
        return quick ? 16 : 384;
    }

    /** Times C = op(A)·op(B) with op(A) m×k, op(B) k×n; returns the median ms. */
    private double gemm(String shape, int m, int n, int k, boolean ta, boolean tb) {
        int need = Math.max(m * k, k * n);
        if (operands == null || operands.length < need) operands = random(need);
        if (product == null || product.length < m * n) product = new float[m * n];
        float[] ab = operands, c = product;
        int lda = ta ? m : k, ldb = tb ? k : n;
        Result r = time("gemm", shape, 2.0 * m * n * k, -1, () -> Gemm.sgemm(ta, tb, m, n, k, 1f, ab, 0, lda, ab, 0, ldb, 0f, c, 0, n));
        print(r.withKernel(kernelAlone()));
        return r.ms;
    }

    /**
     * The micro-kernel alone, run right after a GEMM row's timed runs: GFLOP/s, the best of 5 short runs. The C loop
     * touches only registers, so a host whose loads slow down (a neighbour on our shared guests) leaves it unmoved,
     * while the kernel, with its loads, slows down with the GEMM: a row's share of it says what the code around the
     * kernel costs, in any window (docs/BENCHMARKS.md, session 34).
     */
    private double kernelAlone() {
        int calls = quick ? 50 : 5_000;
        double best = 0;
        for (int i = 0; i < 5; i++) {
            long t0 = System.nanoTime();
            double flops = Gemm.kernelInL1(calls);
            best = Math.max(best, flops / (System.nanoTime() - t0));
        }
        return best;
    }

    // ------------------------------------------------------------------ attention

    private void attention() {
        int batch = quick ? 1 : 8, t = quick ? 32 : 512, d = quick ? 16 : 64;
        for (int h : quick ? new int[] {2} : new int[] {4, 6}) {
            Tensor q = tensor(batch, t, h, d), k = tensor(batch, t, h, d), v = tensor(batch, t, h, d), dy = tensor(batch, t, h, d);
            float scale = (float) (1 / Math.sqrt(d));
            double flops = 12.0 * h * d * t * ((double) batch * t);
            print(time("attention", "fwd+bwd B=" + batch + " T=" + t + " H=" + h + " D=" + d + " causal", flops, -1, () -> {
                Backend.AttentionOut y = be.attention(q, k, v, -1, scale);
                be.attentionBackward(q, k, v, y.y(), y.lse(), dy, -1, scale);
            }));
        }
    }

    // ------------------------------------------------------------------ memory-bound fused ops

    /** Builds the C FMA loop, runs it once and prints its figure (or why there is none) as its own row. */
    private void cPeak() {
        cLoop = CFmaPeak.build(Parallel.threads(), Vec.F.vectorBitSize());
        CFmaPeak.Peak cPeak = cLoop.measure(cIters());
        String note = cPeak.measured() ? cPeak.how() : "no C peak: " + cPeak.reason();
        print(new Result("c_fma_peak", Vec.F.vectorBitSize() + "-bit, " + Parallel.threads() + " threads", Double.NaN,
                cPeak.measured() ? 0 : -1, -1, cPeak.gflops(), note));
    }

    /** Measures the memory bandwidth the memory-bound ops' notes compare with, and prints it as its own row. */
    private void bandwidth() {
        bandwidth = quick ? MemBandwidth.measure(1, 1 << 16) : MemBandwidth.measure(5, 1 << 24);
        String note = "STREAM triad a = b + s*c, 3 x " + (quick ? "256 KiB" : "64 MiB") + " arrays, all threads";
        print(new Result("bandwidth", "triad", Double.NaN, -1, -1, Double.NaN, String.format(Locale.ROOT, "%.1f GB/s; %s", bandwidth, note)));
    }

    /**
     * softcap + CE as training runs it: inside the fused lm_head op, over 1024-row logits chunks, the gradient written
     * over the logits. Its time is the fused op's minus its three lm_head products timed alone (the GEMM rows), so
     * any cost of chunking the GEMMs is counted against the CE.
     */
    private void crossEntropy() {
        int rows = quick ? 64 : 4096, vocab = quick ? 256 : 32768, c = lmHeadC();
        if (Double.isNaN(lmHeadGemmsMs)) {
            lmHeadMs = gemm("lm_head fwd x*Wt " + rows + "x" + vocab + "x" + c, rows, vocab, c, false, true);
            lmHeadGemmsMs = lmHeadMs + gemm("lm_head dX=dY*W " + rows + "x" + c + "x" + vocab, rows, c, vocab, false, false)
                    + gemm("lm_head dW=dYt*X " + vocab + "x" + c + "x" + rows, vocab, c, rows, true, false);
        }
        operands = product = null; // the fused op's logits chunk and gradients need the room
        Tensor x = tensor(rows, c), w = be.scale(tensor(vocab, c), 0.05f);
        int[] tg = new int[rows];
        for (int i = 0; i < rows; i++) tg[i] = rnd.nextInt(vocab);
        Tensor targets = Tensor.ofInts(tg);
        Result fused = time("lm_head_ce", "fused fwd+bwd " + rows + "x" + vocab + "x" + c, 6.0 * rows * vocab * c, -1,
                () -> be.linearSoftcapCrossEntropy(x, w, targets, vocab, 15f, Reduction.MEAN, true));
        print(fused);
        double ceMs = fused.ms - lmHeadGemmsMs;
        double bytes = 2.0 * 4 * rows * vocab; // reads the logits, writes dlogits over them
        String note = String.format(Locale.ROOT, "the fused op minus its three GEMMs (%.1f ms); %.2fx the lm_head fwd GEMM (target <= 0.4x)",
                lmHeadGemmsMs, ceMs / lmHeadMs);
        if (!(ceMs > 0)) { // timing noise larger than the CE (tiny --quick sizes): no figure rather than a negative one
            note = String.format(Locale.ROOT, "not resolved: the three GEMMs alone (%.1f ms) took longer than the fused op", lmHeadGemmsMs);
            ceMs = Double.NaN;
            bytes = -1;
        }
        print(new Result("cross_entropy", "softcap+CE fwd+bwd " + rows + "x" + vocab + " in the fused op", ceMs, -1, bytes,
                fused.peak, note));
        // The same work timed alone: the fused op's difference is the small rest of two large GEMM timings, so the
        // host's drift decides its sign. The row kernel over the same logits in the fused op's 1024-row chunks.
        int chunkRows = Math.min(rows, 1024), chunks = rows / chunkRows;
        Tensor logits = be.scale(tensor(chunkRows, vocab), 8f);
        Tensor chunkTargets = Tensor.ofInts(Arrays.copyOf(tg, chunkRows));
        Result alone = time("cross_entropy", "softcap+CE fwd+bwd " + chunks + "x" + chunkRows + "x" + vocab + " alone", -1, bytes, () -> {
            for (int i = 0; i < chunks; i++) be.crossEntropy(logits, chunkTargets, 15f, Reduction.MEAN, true);
        });
        print(new Result(alone.op, alone.shape, alone.ms, -1, bytes, alone.peak, String.format(Locale.ROOT,
                "%.2fx the lm_head fwd GEMM (target <= 0.4x); each chunk writes a fresh gradient (the fused op writes over its logits)%s",
                alone.ms / lmHeadMs, alone.note == null ? "" : "; " + alone.note)));
    }

    private void rmsNorm() {
        int rows = quick ? 64 : 4096, c = quick ? 32 : 768;
        double bytes = 5.0 * 4 * rows * c; // fwd: x in, y out; bwd: x, dy in, dx out
        Rotation r = new Rotation(4L * 4 * rows * c, () -> tensor(rows, c), () -> tensor(rows, c));
        print(r.row(time("rms_norm", "fwd+bwd " + rows + "x" + c, -1, bytes, r.primed((x, dy) -> new Tensor[] {
                be.rmsNorm(x, 1f), be.rmsNormBackward(x, dy, 1f)}))));
    }

    private void rotary() {
        int batch = quick ? 1 : 8, t = quick ? 32 : 512, h = quick ? 2 : 6, d = quick ? 16 : 64;
        Backend.RotaryTables tables = be.rotaryTables(t, d, 100000);
        double bytes = 4.0 * 4 * batch * t * h * d; // x in, y out; dy in, dx out (the tables stay in cache)
        Rotation r = new Rotation(4L * 4 * batch * t * h * d, () -> tensor(batch, t, h, d), () -> tensor(batch, t, h, d));
        print(r.row(time("rotary", "fwd+bwd B=" + batch + " T=" + t + " H=" + h + " D=" + d, -1, bytes, r.primed((x, dy) -> new Tensor[] {
                be.rotary(x, tables.cos(), tables.sin(), 0), be.rotaryBackward(dy, tables.cos(), tables.sin(), 0)}))));
    }

    /**
     * A memory-bound op run as a training step runs it, from memory and not from cache: each run reads the next of
     * {@code sets} input pairs and writes, inside a {@link Recycler} scope, into outputs given back by the run
     * {@code sets − 1} runs earlier (in base-train the tape gives them back a step before they are reused, so the JVM
     * clears no new array). Inputs and outputs in flight come to ≥ 1 GiB, four times the largest L3 we run on.
     */
    private final class Rotation {
        private final Tensor[] xs, dys;
        private final ArrayDeque<Tensor> inFlight = new ArrayDeque<>();
        private int next;

        Rotation(long bytesPerSet, Supplier<Tensor> x, Supplier<Tensor> dy) {
            int sets = quick ? 2 : (int) Math.max(2, Math.min(256, (1L << 30) / bytesPerSet + 1));
            xs = new Tensor[sets];
            dys = new Tensor[sets];
            for (int i = 0; i < sets; i++) {
                xs[i] = x.get();
                dys[i] = dy.get();
            }
        }

        /**
         * The op as a timed body, after one whole rotation: until then each run writes new outputs (nothing has been
         * given back yet), which the warm-up could mistake for settled when G1 hands out already-touched regions.
         */
        Runnable primed(BiFunction<Tensor, Tensor, Tensor[]> op) {
            for (int i = 0; i < xs.length; i++) run(op);
            return () -> run(op);
        }

        private void run(BiFunction<Tensor, Tensor, Tensor[]> op) {
            int i = next++ % xs.length;
            try (var step = Recycler.open()) {
                Tensor[] out = op.apply(xs[i], dys[i]);
                inFlight.addAll(Arrays.asList(out));
                while (inFlight.size() > out.length * (xs.length - 1)) Recycler.give(inFlight.poll());
            }
        }

        Result row(Result op) {
            String how = String.format(Locale.ROOT, "outputs recycled as in a training step, %d input sets in rotation", xs.length);
            return new Result(op.op, op.shape, op.ms, op.flops, op.bytes, op.peak, op.note == null ? how : how + "; " + op.note);
        }
    }

    // ------------------------------------------------------------------ timing and output

    /**
     * A run that faults in fewer fresh pages than this (1 MiB of 4 KiB pages) and whose resident set grows by less
     * than SETTLED_BYTES no longer grows the heap (a huge page is one fault for 2 MiB: {@link PageFaults#resident}).
     */
    private static final long SETTLED_FAULTS = 256, SETTLED_BYTES = 1 << 20;

    /** Warm-up, then the FMA peak, then the median of timed runs (as many as fit ~2 s, 3 to 15). */
    private Result time(String op, String shape, double flops, double bytes, Runnable body) {
        // Warm up until the JIT has settled: Vector API code runs orders of magnitude slower before C2 compiles
        // it, so stop only once a run is within 20% of the fastest so far (at most 30 runs), and until the heap
        // has settled: a run that still faults fresh pages in pays for the heap's growth, not for the op
        // (PageFaults). At most ~20 s either way.
        long w0 = System.nanoTime();
        double fastest = Double.MAX_VALUE, last;
        long lastFaults, lastGrowth;
        int warm = 0;
        boolean jitSettled, heapSettled;
        do {
            PageFaults.Mark m = PageFaults.Mark.now();
            long t0 = System.nanoTime();
            body.run();
            last = (System.nanoTime() - t0) / 1e6;
            lastFaults = m.faultsSince();
            lastGrowth = m.growthSince();
            fastest = Math.min(fastest, last);
            warm++;
            jitSettled = warm >= 30 || (warm >= 3 && last <= 1.2 * fastest && System.nanoTime() - w0 >= 300_000_000L);
            heapSettled = lastFaults < SETTLED_FAULTS && lastGrowth < SETTLED_BYTES;
        } while (!quick && System.nanoTime() - w0 < 20_000_000_000L && !(jitSettled && heapSettled));
        double oneMs = fastest;
        int reps = quick ? 2 : (int) Math.max(3, Math.min(15, 2000 / oneMs));
        double peak = quick ? FmaPeak.measure(2, 20_000) : FmaPeak.measure(5, 2_000_000);
        // the C peak beside a flop-bound op, not only the one at the start: the host's speed drifts within minutes
        double cBeside = flops > 0 && cLoop != null ? cLoop.measure(cIters()).gflops() : Double.NaN;
        // The peaks leave this JVM's threads idle for most of a second (the C loop is another process), and on our
        // 2-vCPU guests the fork-joins that follow such a pause ran both halves on one CPU for a while: 512³ timed
        // right after them ran at one thread's speed (86 against 155 GFLOP/s, docs/BENCHMARKS.md session 28). So
        // the op runs again, untimed, for 200 ms first (20 ms was not enough, 100 ms was).
        long r0 = System.nanoTime();
        do body.run(); while (!quick && System.nanoTime() - r0 < 200_000_000L);
        double[] ms = new double[reps];
        Deopts.Window w = jit.open();
        PageFaults.Mark m = PageFaults.Mark.now(); // after the JFR window opens: its buffers are not the op's
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            body.run();
            ms[i] = (System.nanoTime() - t0) / 1e6;
        }
        jit.close(w, false);   // a storm outlasts the ~1 s JFR takes to deliver its events; no wait per row
        long faults = m.faultsSince() / reps, growth = m.growthSince() / reps;
        Arrays.sort(ms);
        double med = reps % 2 == 1 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2;
        String note = faults < SETTLED_FAULTS && growth < SETTLED_BYTES ? null
                : String.format(Locale.ROOT, "%.1f MB of fresh memory (%d page faults) a run: the heap was still growing (first touches counted)",
                        growth / 1e6, faults);
        String storm = Deopts.note(w, "the timed runs");
        if (storm != null) note = note == null ? storm : storm + "; " + note;
        return new Result(op, shape, med, flops, bytes, peak, note, cBeside, Double.NaN);
    }

    private void print(Result r) {
        boolean cRow = r.op.equals("c_fma_peak");
        Double gflops = cRow ? (Double.isNaN(r.peak) ? null : r.peak) : r.flops > 0 ? r.flops / r.ms / 1e6 : null;
        String note = r.note;
        if (!cRow && gflops != null && !Double.isNaN(r.cPeak)) {
            String share = String.format(Locale.ROOT, "%.0f%% of the C peak (%.1f GFLOP/s, run beside it)", 100 * gflops / r.cPeak, r.cPeak);
            note = note == null ? share : share + "; " + note;
        }
        if (gflops != null && !Double.isNaN(r.kernel)) {
            String share = String.format(Locale.ROOT, "%.0f%% of the micro-kernel alone (%.1f GFLOP/s, run after it)", 100 * gflops / r.kernel, r.kernel);
            note = note == null ? share : note + "; " + share;
        }
        if (r.bytes > 0) {
            double gbs = r.bytes / r.ms / 1e6;
            String bw = Double.isNaN(bandwidth) ? String.format(Locale.ROOT, "%.1f GB/s", gbs)
                    : String.format(Locale.ROOT, "%.1f GB/s = %.0f%% of the triad%s", gbs, 100 * gbs / bandwidth,
                            r.op.equals("cross_entropy") ? "" : " (target >= 50%)");
            note = note == null ? bw : bw + "; " + note;
        }
        if (json) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("op", r.op);
            row.put("shape", r.shape);
            row.put("ms", round(r.ms));
            row.put("gflops", gflops == null ? null : round(gflops));
            row.put("peak_gflops", round(r.peak));
            row.put("c_peak_gflops", Double.isNaN(r.cPeak) ? null : round(r.cPeak));
            row.put("kernel_gflops", Double.isNaN(r.kernel) ? null : round(r.kernel));
            row.put("note", note);
            try {
                out.println(mapper.writeValueAsString(row));
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            out.printf(Locale.ROOT, "%-14s %-44s %10s %9s %9s %7s  %s%n", r.op, r.shape, fixed(r.ms, 3),
                    gflops == null ? "-" : fixed(gflops, 1), fixed(r.peak, 1),
                    gflops == null || cRow ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * gflops / r.peak),
                    note == null ? "" : note);
        }
        out.flush();
    }

    /** x with the given decimals, or "-" when there is no such figure (NaN). */
    private static String fixed(double x, int decimals) {
        return Double.isNaN(x) ? "-" : String.format(Locale.ROOT, "%." + decimals + "f", x);
    }

    /** x to 5 significant digits (tiny --quick timings must not round to zero). */
    private static Double round(double x) {
        if (Double.isNaN(x)) return null;   // the bandwidth row has no time or FMA peak
        return new java.math.BigDecimal(x).round(new java.math.MathContext(5)).doubleValue();
    }

    private float[] random(int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (rnd.nextDouble() * 2 - 1);
        return x;
    }

    private Tensor tensor(int... shape) {
        int n = 1;
        for (int s : shape) n *= s;
        return Tensor.of(random(n), shape);
    }
}
