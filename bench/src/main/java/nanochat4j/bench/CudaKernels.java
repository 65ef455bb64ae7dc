package nanochat4j.bench;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.Cublas;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.tensor.cuda.StreamTimer;
import nanochat4j.tensor.cuda.TensorCoreAttention;
import nanochat4j.tensor.cuda.TensorCoreGemm;

/**
 * {@code bench kernels --device cuda}: the same op list as the CPU run, on {@link CudaBackend}, timed with CUDA
 * events (the median of several back-to-back batches after a warm-up), against a dense peak given by
 * {@code --peak-tflops} (default 989, an H100/H200's dense bf16 rate; fp32 ops are far below it by design — the
 * fp32 column is what part 1's kernels reach). Adds cuBLAS bf16 GemmEx at the same shapes (the path part 2 moves
 * the model to) and attention at nanochat's d20 shape (T=2048, D=128).
 */
final class CudaKernels {
    /** Row names {@link GpuTargets} reads back from the JSON lines. */
    static final String GEMM_CUBLAS = "gemm cublas", GEMM_OURS = "gemm ours", ATTENTION_FWD_BWD_TC = "attention fwd+bwd tc";

    private final PrintWriter out;
    private final boolean json, quick;
    private final List<String> ops;
    private final double peakTflops;
    private final CudaBackend be;
    private final CudaContext ctx;
    private StreamTimer timer; // for the length of run()
    private final SplittableRandom rnd = new SplittableRandom(42);
    private final ObjectMapper mapper = new ObjectMapper();

    CudaKernels(PrintWriter out, boolean json, boolean quick, List<String> ops, double peakTflops) {
        this.out = out;
        this.json = json;
        this.quick = quick;
        this.ops = ops;
        this.peakTflops = peakTflops;
        this.be = CudaBackend.get();
        this.ctx = be.context();
    }

    int run() {
        if (!json) {
            out.printf(Locale.ROOT, "CUDA kernels on %s; ms = median of CUDA-event-timed batches; peak = %.0f TFLOP/s (--peak-tflops)%n",
                    ctx.describe(), peakTflops);
            out.printf(Locale.ROOT, "%-14s %-48s %10s %10s %7s  %s%n", "op", "shape", "ms", "TFLOP/s", "%peak", "note");
            out.flush();
        }
        try (StreamTimer t = new StreamTimer(ctx.driver(), ctx.stream())) {
            timer = t;
            if (wants("gemm")) gemms();
            if (wants("gemm")) ownGemms(false);
            if (wants("gemm-bwd")) ownGemms(true);
            if (wants("attention")) attention();
            if (wants("cross_entropy")) crossEntropy();
            if (wants("rms_norm")) rmsNorm();
            if (wants("rotary")) rotary();
            if (wants("launch")) launch();
        }
        return 0;
    }

    private boolean wants(String op) {
        return ops == null || ops.contains(op);
    }

    private void gemms() {
        int bt = quick ? 64 : 16384, vocab = quick ? 256 : 65536;
        int[] squares = quick ? new int[] {64} : new int[] {2048, 4096, 8192};
        for (int s : squares) {
            gemm(s + "x" + s + "x" + s, s, s, s);
        }
        int c = quick ? 32 : 1280; // d20
        int[][] weights = {{c, c}, {4 * c, c}, {c, 4 * c}, {vocab, c}};
        String[] names = {"d20 attn CxC", "d20 mlp c_fc", "d20 mlp c_proj", "d20 lm_head"};
        for (int w = 0; w < weights.length; w++) gemm(names[w] + " fwd " + bt + "x" + weights[w][0] + "x" + weights[w][1], bt, weights[w][0], weights[w][1]);
    }

    /** fp32 through the backend (cuBLAS SGEMM) and bf16 GemmEx with fp32 accumulation, C = A·Bᵀ, A m×k, B n×k. */
    private void gemm(String shape, int m, int n, int k) {
        Tensor a = up(m, k), b = up(n, k);
        double flops = 2.0 * m * n * k;
        print(time("gemm fp32", shape, flops, -1, () -> be.matmul(a, false, b, true)));
        Tensor ah = be.toBf16(a), bh = be.toBf16(b), cc = be.zeros(m, n);
        Cublas blas = ctx.cublas();
        print(time("gemm bf16", shape, flops, -1, () -> blas.gemmBf16RowMajor(false, true, m, n, k, 1f, ah.deviceAddress(), bh.deviceAddress(), 0f,
                cc.deviceAddress())));
    }

    /**
     * Our tensor-core GEMM (every generated tile: Hopper's wgmma ones, split-K included where they fit, then the
     * mma.sync ones) beside cuBLAS bf16 GemmEx on the layer shapes of d12 (batch 32), d20 and d24 (batch 16) at 2048
     * tokens a row, for the attention projections, the MLP and lm_head: y = x·Wᵀ, or with {@code backward} the two
     * products of its backward, dx = dy·W (A·B) and dW = dyᵀ·x (Aᵀ·B). The note names the faster per shape — the one a
     * caller should take there.
     */
    private void ownGemms(boolean backward) {
        int[][] models = quick ? new int[][] {{0, 128, 1}} : new int[][] {{12, 768, 32}, {20, 1280, 16}, {24, 1536, 16}};
        for (int[] md : models) {
            int c = md[1], rows = quick ? 128 : md[2] * 2048, vocab = quick ? 256 : 32768;
            int[][] nk = quick ? new int[][] {{128, 128}} : new int[][] {{c, c}, {4 * c, c}, {c, 4 * c}, {vocab, c}};
            String[] names = quick ? new String[] {"tiny"} : new String[] {"attn CxC", "mlp c_fc", "mlp c_proj", "lm_head"};
            for (int i = 0; i < nk.length; i++) {
                int n = nk[i][0], k = nk[i][1];
                // lm_head runs over row chunks (the chunked loss), and a whole 65536×32768 C would pass 2^31 elements
                int m = n == vocab && !quick ? 16384 : rows;
                String layer = "d" + md[0] + " " + names[i];
                if (!backward) {
                    ownGemm(layer + " " + m + "x" + n + "x" + k, m, n, k, false, true); // y (m, n) = x (m, k) · W (n, k)ᵀ
                } else {
                    ownGemm(layer + " dx " + m + "x" + k + "x" + n, m, k, n, false, false); // dx (m, k) = dy (m, n) · W (n, k)
                    ownGemm(layer + " dW " + n + "x" + k + "x" + m, n, k, m, true, false);  // dW (n, k) = dy (m, n)ᵀ · x (m, k)
                }
                ctx.releasePool(); // the next shape's operands may be larger
            }
        }
    }

    /** cuBLAS, then each tile of ours that fits, on C (m, n) = op(A)·op(B) (A (k, m) when transA; B (n, k) when transB), then the pick. */
    private void ownGemm(String shape, int m, int n, int k, boolean transA, boolean transB) {
        TensorCoreGemm own = new TensorCoreGemm(ctx);
        Tensor a = be.toBf16(transA ? up(k, m) : up(m, k)), b = be.toBf16(transB ? up(n, k) : up(k, n)), cc = be.zeros(m, n);
        double flops = 2.0 * m * n * k;
        Result cublas = time(GEMM_CUBLAS, shape, flops, -1, () -> ctx.cublas().gemmBf16RowMajor(transA, transB, m, n, k, 1f, a.deviceAddress(),
                b.deviceAddress(), 0f, cc.deviceAddress()));
        print(cublas);
        Result best = null;
        String bestTile = null;
        for (TensorCoreGemm.Tile tile : TensorCoreGemm.tiles(ctx.hopper())) {
            if (!tile.fits(m, n, k)) continue;
            Result r = time(GEMM_OURS, shape, flops, -1, () -> own.run(a, transA, b, transB, cc, 1f, 0f, tile));
            r = new Result(r.op(), r.shape(), r.ms(), r.flops(), r.bytes(), String.format(Locale.ROOT, "tile %s, %.0f%% of cuBLAS", tile, 100 * cublas.ms() / r.ms()));
            print(r);
            if (best == null || r.ms() < best.ms()) {
                best = r;
                bestTile = tile.toString();
            }
        }
        String pick = best == null || best.ms() >= cublas.ms() ? "cuBLAS" : "ours (" + bestTile + ")";
        print(new Result("gemm pick", shape, Math.min(cublas.ms(), best == null ? cublas.ms() : best.ms()), flops, -1, "faster: " + pick));
    }

    private void attention() {
        int[][] shapes = quick ? new int[][] {{1, 32, 2, 128}} : new int[][] {{8, 512, 6, 64}, {4, 2048, 10, 128}};
        for (int[] s : shapes) {
            int batch = s[0], t = s[1], h = s[2], d = s[3];
            Tensor q = up(batch, t, h, d), k = up(batch, t, h, d), v = up(batch, t, h, d), dy = up(batch, t, h, d);
            float scale = (float) (1 / Math.sqrt(d));
            double fwd = 4.0 * h * d * (double) t * t * batch / 2; // causal: half the scores
            String shape = "B=" + batch + " T=" + t + " H=" + h + " D=" + d + " causal";
            Backend.AttentionOut[] y = {be.attention(q, k, v, -1, scale)};
            print(time("attention fwd", shape, fwd, -1, () -> y[0] = be.attention(q, k, v, -1, scale)));
            print(time("attention bwd", shape, 2.5 * fwd, -1, () -> be.attentionBackward(q, k, v, y[0].y(), y[0].lse(), dy, -1, scale)));
            Tensor q1 = up(batch, 1, h, d);
            print(time("attention dec", "B=" + batch + " Tq=1 over " + t + " H=" + h + " D=" + d, -1, 2.0 * 4 * batch * t * h * d,
                    () -> be.attentionCached(q1, k, v, t - 1, -1, scale)));
            if (TensorCoreAttention.supports(d)) attentionTc(q, k, v, dy, scale, fwd, shape, 12.0 * batch * h * d * (double) t * t);
        }
    }

    /**
     * The training step's attention under bf16 (the tensor-core kernels, unchecked), and fwd+bwd at nanochat's flop
     * count (12·H·D·T per token: the figure for the card's bf16 peak). The backward reads q, k, v and y as the
     * bf16 copies a training step keeps. On Hopper at head dim 128 both kernel families are timed: wgmma and mma.sync.
     */
    private void attentionTc(Tensor q, Tensor k, Tensor v, Tensor dy, float scale, double fwd, String shape, double nanochatFlops) {
        MatmulPrecision precision = be.setMatmulPrecision(MatmulPrecision.BF16);
        TensorCoreAttention tc = be.tensorCoreAttention();
        TensorCoreAttention.Mode mode = tc.setMode(TensorCoreAttention.Mode.TC);
        boolean wgmmaSetting = tc.setWgmma(true);
        try {
            boolean hopper = tc.wgmma("fwd", q.shape(3), be.context().hopper());
            for (boolean wgmma : hopper ? new boolean[] {true, false} : new boolean[] {false}) {
                tc.setWgmma(wgmma);
                String kernels = hopper ? (wgmma ? " (wgmma)" : " (mma.sync)") : "";
                Backend.AttentionOut[] y = {be.attention(q, k, v, -1, scale)};
                Result f = time("attention fwd tc" + kernels, shape, fwd, -1, () -> y[0] = be.attention(q, k, v, -1, scale));
                Tensor qs = be.saveForBackward(q), ks = be.saveForBackward(k), vs = be.saveForBackward(v), ys = be.saveForBackward(y[0].y());
                Result b = time("attention bwd tc" + kernels, shape, 2.5 * fwd, -1,
                        () -> be.attentionBackward(qs, ks, vs, ys, y[0].lse(), dy, -1, scale));
                print(f);
                print(b);
                print(new Result(ATTENTION_FWD_BWD_TC + kernels, shape, f.ms() + b.ms(), nanochatFlops, -1, "nanochat's count: 12·H·D·T flops a token"));
            }
        } finally {
            tc.setWgmma(wgmmaSetting);
            tc.setMode(mode);
            be.setMatmulPrecision(precision);
        }
    }

    private void crossEntropy() {
        int rows = quick ? 64 : 8192, vocab = quick ? 256 : 32768; // 1 GiB of logits
        Tensor logits = be.scale(up(rows, vocab), 5f);
        int[] tg = new int[rows];
        for (int i = 0; i < rows; i++) tg[i] = rnd.nextInt(vocab);
        Tensor targets = be.upload(Tensor.ofInts(tg));
        print(time("cross_entropy", "softcap+CE fwd+bwd " + rows + "x" + vocab, -1, 2.0 * 4 * rows * vocab,
                () -> be.crossEntropy(logits, targets, 15f, Reduction.MEAN, true)));
    }

    private void rmsNorm() {
        int rows = quick ? 64 : 65536, c = quick ? 32 : 1280;
        Tensor x = up(rows, c), dy = up(rows, c);
        print(time("rms_norm", "fwd+bwd " + rows + "x" + c, -1, 5.0 * 4 * rows * c, () -> {
            be.rmsNorm(x, 1f);
            be.rmsNormBackward(x, dy, 1f);
        }));
    }

    private void rotary() {
        int batch = quick ? 1 : 32, t = quick ? 32 : 2048, h = quick ? 2 : 10, d = quick ? 16 : 128;
        Tensor x = up(batch, t, h, d), dy = up(batch, t, h, d);
        Backend.RotaryTables tables = be.rotaryTables(t, d, 100000);
        print(time("rotary", "fwd+bwd B=" + batch + " T=" + t + " H=" + h + " D=" + d, -1, 4.0 * 4 * batch * t * h * d, () -> {
            be.rotary(x, tables.cos(), tables.sin(), 0);
            be.rotaryBackward(dy, tables.cos(), tables.sin(), 0);
        }));
    }

    /** Launch overhead: a one-element axpy back to back; the note gives host µs per launch. */
    private void launch() {
        Tensor one = be.zeros(1);
        int n = quick ? 100 : 5000;
        for (int i = 0; i < 100; i++) be.axpy(1f, one, one);
        ctx.synchronize();
        long t0 = System.nanoTime();
        double gpuMs = timer.ms(() -> {
            for (int i = 0; i < n; i++) be.axpy(1f, one, one);
        });
        double hostUs = (System.nanoTime() - t0) / 1e3 / n;
        print(new Result("launch", "axpy of 1 element x" + n, gpuMs / n, -1, -1,
                String.format(Locale.ROOT, "%.2f us per launch from Java (host clock)", hostUs)));
    }

    private record Result(String op, String shape, double ms, double flops, double bytes, String note) {}

    /** Warm-up (compiles the kernels), then the median over 5 batches of back-to-back runs timed with events. */
    private Result time(String op, String shape, double flops, double bytes, Runnable body) {
        body.run();
        ctx.synchronize();
        double one = Math.max(1e-3, timer.ms(body));
        int per = quick ? 1 : (int) Math.max(1, Math.min(50, 100 / one));
        double[] ms = new double[quick ? 2 : 5];
        for (int i = 0; i < ms.length; i++) {
            ms[i] = timer.ms(() -> {
                for (int j = 0; j < per; j++) body.run();
            }) / per;
        }
        Arrays.sort(ms);
        return new Result(op, shape, ms[ms.length / 2], flops, bytes, null);
    }

    private void print(Result r) {
        Double tflops = r.flops > 0 ? r.flops / r.ms / 1e9 : null;
        String note = r.note;
        if (r.bytes > 0) {
            String bw = String.format(Locale.ROOT, "%.0f GB/s", r.bytes / r.ms / 1e6);
            note = note == null ? bw : bw + "; " + note;
        }
        if (json) {
            Map<String, Object> row = new LinkedHashMap<>();
            row.put("device", "cuda");
            row.put("op", r.op);
            row.put("shape", r.shape);
            row.put("ms", r.ms);
            row.put("tflops", tflops);
            row.put("peak_tflops", peakTflops);
            row.put("note", note);
            try {
                out.println(mapper.writeValueAsString(row));
            } catch (JsonProcessingException e) {
                throw new UncheckedIOException(e);
            }
        } else {
            out.printf(Locale.ROOT, "%-14s %-48s %10.4f %10s %7s  %s%n", r.op, r.shape, r.ms,
                    tflops == null ? "-" : String.format(Locale.ROOT, "%.2f", tflops),
                    tflops == null ? "-" : String.format(Locale.ROOT, "%.1f%%", 100 * tflops / peakTflops), note == null ? "" : note);
        }
        out.flush();
    }

    private Tensor up(int... shape) {
        float[] x = new float[Tensor.numel(shape)];
        for (int i = 0; i < x.length; i++) x[i] = (float) (rnd.nextDouble() * 2 - 1);
        return be.upload(Tensor.of(x, shape));
    }
}
