package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.OpChecks.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.OpChecks;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.CpuBackend;

/**
 * {@link Backend} on an NVIDIA GPU: every tensor argument and result lives in device memory (see
 * {@link CudaContext}); kernels are the CUDA C sources under {@code nanochat4j/cuda/}, compiled by NVRTC at first
 * use; matmuls go through cuBLAS in fp32 (the interface's dtype), except the linear layers under
 * {@link MatmulPrecision#BF16} (nanochat's CUDA policy: bf16 operands, fp32 accumulation and output; each weight
 * cast once until it changes, {@link Bf16WeightCache}; our tensor-core GEMM where {@link GemmChooser} timed it
 * faster than cuBLAS). Work is queued on one stream and only the calls
 * that must return a host value wait for it (bad-id and non-finite checks, the count of MEAN's rows).
 * Shapes and dtypes are checked as {@link CpuBackend} checks them, with the same messages, plus "on this device".
 */
public final class CudaBackend implements Backend {
    private static final int BLOCK = 256;
    private static final int NOT_SET = 0x7f7f7f7f; // each byte 0x7f: what memset(…, 0x7f) leaves in an int
    private static volatile CudaBackend instance;

    private final CudaContext ctx;
    private volatile MatmulPrecision precision = MatmulPrecision.FP32;
    private final Bf16WeightCache weightCopies = new Bf16WeightCache();
    private final TensorCoreAttention tcAttention = TensorCoreAttention.fromProperty();
    private final UploadedIds uploadedIds = new UploadedIds();
    private final TensorCoreGemm ownGemm;
    private final GemmChooser chooser;

    private CudaBackend(CudaContext ctx) {
        this.ctx = ctx;
        this.ownGemm = new TensorCoreGemm(ctx);
        this.chooser = GemmChooser.forBackend(TensorCoreGemm.tiles(ctx.hopper()), this::timeMs);
        ctx.onCopyInto(s -> {
            weightCopies.forget(s);
            uploadedIds.forget(s);
            forgetCasts(s);
        });
    }

    /**
     * Sets how the linear layers compute from now on (see {@link MatmulPrecision}; FP32 until set, so the fp32
     * conformance of every op holds) and returns the previous setting. base-train sets it from --precision (bf16).
     */
    public MatmulPrecision setMatmulPrecision(MatmulPrecision p) {
        MatmulPrecision old = precision;
        precision = p;
        return old;
    }

    public MatmulPrecision matmulPrecision() {
        return precision;
    }

    /** bf16 weight casts made and cache hits so far. */
    public long[] weightCastCounts() {
        return weightCopies.counts();
    }

    /** The per-shape GEMM choices made so far (bf16 GEMMs: cuBLAS or our kernel). */
    public GemmChooser gemmChooser() {
        return chooser;
    }

    /** A write in place into {@code t}'s storage: bf16 copies made from it and the ids known in it are stale. */
    private void writes(Tensor t) {
        weightCopies.forget(t.deviceStorage());
        uploadedIds.forget(t.deviceStorage());
        forgetCasts(t.deviceStorage());
    }

    /** The backend of GPU 0; throws {@link CudaUnavailableException} (one-line reason) where there is none. */
    public static CudaBackend get() {
        CudaBackend b = instance;
        if (b == null) {
            synchronized (CudaBackend.class) {
                b = instance;
                if (b == null) instance = b = new CudaBackend(CudaContext.get());
            }
        }
        b.ctx.bind();
        return b;
    }

    public CudaContext context() {
        return ctx;
    }

    @Override
    public DeviceMemory deviceMemory() {
        return ctx.memory();
    }

    @Override
    public boolean startProfile() {
        ctx.startProfile();
        return true;
    }

    @Override
    public List<KernelTime> stopProfile() {
        return ctx.stopProfile();
    }

    @Override
    public String describe() {
        return "CUDA (" + ctx.describe() + ")";
    }

    @Override
    public Device device() {
        return Device.CUDA;
    }

    @Override
    public Tensor zeros(int... shape) {
        ctx.bind();
        return ctx.zeros(DType.F32, shape);
    }

    /**
     * nanochat's fused AdamW step in place on the device (optim.cu's adamw_f32): p, its gradient g and the moments
     * m, v (same element count, F32). The scalars are AdamW's fp32 ones (decay = 1 − lr·wd, w1 = 1 − β1,
     * w2 = 1 − β2, bias2 = 1 − β2^t, stepSize = lr/(1 − β1^t)); the result equals the CPU kernel's bit for bit.
     */
    @Override
    public void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float decay, float w1, float w2, float bias2, float eps, float stepSize) {
        f32("adamw", "p", p);
        f32("adamw", "g", g);
        f32("adamw", "m", m);
        f32("adamw", "v", v);
        int n = p.numel();
        if (g.numel() != n || m.numel() != n || v.numel() != n) throw bad("adamw", "p, g, m and v must have the same element count", p, g, m, v);
        writes(p);
        if (n > 0) {
            ctx.module("optim", blockDefines()).launch("adamw_f32", grid(n), 1, 1, BLOCK, 0,
                    p, g, m, v, n, decay, w1, w2, bias2, eps, stepSize);
        }
    }

    /** Muon's cautious update in place (optim.cu's muon_cautious_f32): p ← p − (lr·u + [u·p ≥ 0]·lrWd·p), p and u of equal size. */
    @Override
    public void muonCautious(Tensor p, Tensor u, float lr, float lrWd) {
        f32("muonCautious", "p", p);
        f32("muonCautious", "u", u);
        if (p.numel() != u.numel()) throw bad("muonCautious", "p and u must have the same element count", p, u);
        writes(p);
        if (p.numel() > 0) {
            ctx.module("optim", blockDefines()).launch("muon_cautious_f32", grid(p.numel()), 1, 1, BLOCK, 0,
                    p, u, p.numel(), lr, lrWd);
        }
    }

    @Override
    public void zero(Tensor x) {
        onDevice("zero", "x", x);
        writes(x);
        ctx.memset(x, 0);
    }

    /**
     * Copies a host tensor to this device (explicit, blocking); a tensor already here is returned as is. The range of
     * int ids are noted on the way, so embeddings of them, their backward and a loss over them need no device → host
     * wait (see {@link UploadedIds}).
     */
    @Override
    public Tensor upload(Tensor host) {
        ctx.bind();
        if (host.isOnDevice()) return host;
        Tensor d = ctx.upload(host);
        if (host.dtype() == DType.I32) uploadedIds.remember(d.deviceStorage(), host.toIntArray());
        return d;
    }

    private CudaContext.Module mod(String source) {
        return ctx.module(source, blockDefines());
    }

    private int grid(long n) {
        return (int) Math.max(1, Math.min((n + BLOCK - 1) / BLOCK, (long) ctx.multiprocessors() * 16));
    }

    private static long p(Tensor t) {
        return t.deviceAddress();
    }

    /**
     * Keeps tensors whose raw addresses went to cuBLAS reachable until here, past the calls (kernel launches take the
     * tensors themselves; see CudaContext.Module#launch for the race this prevents).
     */
    private static void fence(Tensor... used) {
        Reference.reachabilityFence(used);
    }

    // ------------------------------------------------------------------ matmul

    private static OpChecks.Matmul plan(String op, Tensor a, boolean transA, Tensor b, boolean transB) {
        f32(op, "a", a);
        f32(op, "b", b);
        return OpChecks.matmul(op, a, transA, b, transB);
    }

    /**
     * Row-major C (m×n) = alpha·op(A)·op(B) + beta·C as cuBLAS's column-major Cᵀ = op(B)ᵀ·op(A)ᵀ: B goes first,
     * the transposes carry over, and the leading dims are the row-major row lengths. Strides are in elements.
     */
    private void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long strideA,
                      long b, long strideB, float beta, long c, long strideC, int batch) {
        if (batch == 0 || m == 0 || n == 0) return;
        int lda = transA ? m : k, ldb = transB ? k : n;
        int opA = transA ? Cublas.OP_T : Cublas.OP_N, opB = transB ? Cublas.OP_T : Cublas.OP_N;
        if (k == 0) return; // callers handle C = beta·C themselves
        ctx.bind();
        Cublas blas = ctx.cublas();
        if (batch == 1) {
            blas.sgemm(opB, opA, n, m, k, alpha, b, ldb, a, lda, beta, c, n);
        } else if (strideB == 0 && strideA != 0 && !transA) {
            // a batch of row-major A against one shared B is one tall GEMM
            blas.sgemm(opB, opA, n, m * batch, k, alpha, b, ldb, a, lda, beta, c, n);
        } else {
            blas.sgemmStridedBatched(opB, opA, n, m, k, alpha, b, ldb, strideB, a, lda, strideA, beta, c, n, strideC, batch);
        }
    }

    @Override
    public Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB) {
        OpChecks.Matmul pl = plan("matmul", a, transA, b, transB);
        Tensor c = ctx.zeros(DType.F32, pl.outShape());
        gemm(transA, transB, pl.m(), pl.n(), pl.k(), 1f, p(a), pl.strideA(), p(b), pl.strideB(), 0f, p(c), (long) pl.m() * pl.n(), pl.batch());
        fence(a, b);
        return c;
    }

    /**
     * Under bf16 matmuls: A and B cast to bf16 (one cast when they are the same tensor, as a Gram matrix's), then one
     * cuBLAS call for the whole batch (GemmEx, or GemmStridedBatchedEx over a stack), bf16 in, fp32 accumulation and
     * output. Muon's polar express in fp32 ran on the CUDA cores, ~1/15 of the tensor cores' rate (at d24 an estimated
     * ~0.5 s an optimizer step). One batched call rather than a GemmEx a matrix: one by one, a d12 stack's 768×768
     * products are too small to fill the GPU (a few dozen 128×128 tiles each), and a d24 step would launch ~2,000 of them. Never the chooser's kernel: a
     * product must not depend on a timing, for with bf16 operands the last bit of such a difference can become a whole
     * rounding step in the next iteration. The batch is always a whole stack (DeviceMuon is never split between ranks),
     * so cuBLAS's choice of kernel, and with it every bit, is the same at every step and on every rank.
     */
    @Override
    public Tensor matmulAtPrecision(Tensor a, boolean transA, Tensor b, boolean transB) {
        if (!bf16()) return matmul(a, transA, b, transB);
        OpChecks.Matmul pl = plan("matmulAtPrecision", a, transA, b, transB);
        Tensor c = ctx.zeros(DType.F32, pl.outShape());
        if (pl.batch() == 0 || pl.m() == 0 || pl.n() == 0 || pl.k() == 0) return c;
        Tensor ah = castBf16(a, a.numel()), bh = a == b ? ah : castBf16(b, b.numel());
        ctx.bind();
        ctx.cublas().gemmBf16RowMajor(pl.batch(), transA, transB, pl.m(), pl.n(), pl.k(), 1f, p(ah), pl.strideA(), p(bh), pl.strideB(), 0f, p(c));
        recycle(ah, a == b ? null : bh); // stream-ordered after the GEMMs that read them
        fence(a, b);
        return c;
    }

    // ------------------------------------------------------------------ bf16 GEMMs (MatmulPrecision.BF16)

    private boolean bf16() {
        return precision == MatmulPrecision.BF16;
    }

    /**
     * The first {@code count} fp32 values of {@code src}, rounded to a new bf16 tensor. src goes to the launch whole,
     * which keeps it reachable through the output's allocation: were it a temporary that only its raw address still
     * named, a GC could hand its block back to the pool and the allocation could return that very block as the output.
     */
    private Tensor castBf16(Tensor src, long count) {
        int n = Math.toIntExact(count);   // the kernel's n is an int: a Long here would be read as its low 4 bytes
        Tensor y = ctx.empty(DType.BF16, n);
        if (n > 0) mod("elementwise").launch("f32_to_bf16", grid(n), 1, 1, BLOCK, 0, src, y, n);
        return y;
    }

    /**
     * Temporaries of one op that no later kernel reads: their memory goes back to the pool now rather than when a GC
     * finds them (stream order makes the reuse safe), so a step's bf16 activation copies and logits chunks do not
     * pile up on the device.
     */
    private static void recycle(Tensor... temps) {
        for (Tensor t : temps) if (t != null) t.deviceStorage().recycle();
    }

    /** One activation cast: its source's storage and window, and the bf16 copy. */
    private record Cast(DeviceStorage src, int offset, int numel, Tensor bf16) {}

    /** The two latest activation casts of each thread (see {@link #activationBf16}). */
    private final ThreadLocal<Cast[]> casts = ThreadLocal.withInitial(() -> new Cast[2]);
    private final AtomicLong activationCasts = new AtomicLong(), activationReuses = new AtomicLong();

    /** Activation casts to bf16 made and reused so far (see {@link #activationBf16}). */
    public long[] activationCastCounts() {
        return new long[] {activationCasts.get(), activationReuses.get()};
    }

    /**
     * An activation as it enters a bf16 GEMM. A thread's two most recently used casts are kept: q, k and v take the
     * same hn, and a linear's two backward GEMMs the same dy (the weight gradient's with x, the other cast kept), so
     * each is cast once; a GEMM's two operands are the two most recent, so neither replaces the other. A copy goes
     * back to the pool when it is replaced (stream order: the GEMMs that read it are queued) or its source is written
     * in place ({@link #writes}).
     */
    private Tensor activationBf16(Tensor x) {
        if (x.dtype() == DType.BF16) return x;   // already the operand (relu2Operand's)
        Cast[] c = casts.get();
        DeviceStorage s = x.deviceStorage();
        for (int i = 0; i < c.length; i++) {
            Cast k = c[i];
            if (k != null && k.src == s && k.offset == x.offset() && k.numel == x.numel()) {
                activationReuses.incrementAndGet();
                c[i] = c[0];   // the latest use first: a cast taken for a GEMM is never the one the next cast replaces
                c[0] = k;
                return k.bf16;
            }
        }
        activationCasts.incrementAndGet();
        Tensor h = castBf16(x, x.numel());
        if (c[1] != null) recycle(c[1].bf16);
        c[1] = c[0];
        c[0] = new Cast(s, x.offset(), x.numel(), h);
        return h;
    }

    /** Drops this thread's casts of {@code s} (written in place), or all of them (null: a recording starts or ends). */
    private void forgetCasts(DeviceStorage s) {
        Cast[] c = casts.get();
        for (int i = 0; i < c.length; i++) {
            if (c[i] != null && (s == null || c[i].src == s)) {
                recycle(c[i].bf16);
                c[i] = null;
            }
        }
        attentionCopies.get().removeIf(a -> {
            boolean stale = s == null || a.src() == s;
            if (stale) recycle(a.bf16());
            return stale;
        });
    }

    /** The latest training attention forward's bf16 copies of q, k, v on this thread (see {@link #attentionInputsBf16}). */
    private final ThreadLocal<List<Cast>> attentionCopies = ThreadLocal.withInitial(ArrayList::new);
    private final AtomicLong attentionHandovers = new AtomicLong();

    /** How many of the attention forward's bf16 copies {@link #saveForBackward} has handed over instead of casting. */
    public long attentionCopiesHandedOver() {
        return attentionHandovers.get();
    }

    /**
     * q, k, v as bf16 for attn_wg_fwd_bf16 (streamed by cp.async, half the bytes of fp32). A training step's backward
     * keeps exactly these copies — {@link #saveForBackward} at the block's shelve hands them over instead of casting
     * again — so the forward pays no cast of its own. Copies an earlier forward left untaken (an eval forward's, which
     * nothing shelves) go back to the pool here.
     */
    private Tensor[] attentionInputsBf16(Tensor... qkv) {
        List<Cast> held = attentionCopies.get();
        for (Cast c : held) recycle(c.bf16());
        held.clear();
        Tensor[] out = new Tensor[qkv.length];
        for (int i = 0; i < qkv.length; i++) {
            Tensor x = qkv[i];
            if (x.dtype() == DType.BF16) {
                out[i] = x;
                continue;
            }
            Cast same = heldCopy(x);   // k and v may be one tensor (a test's)
            out[i] = same != null ? same.bf16().reshape(x.shape()) : castBf16(x, x.numel()).reshape(x.shape());
            if (same == null) held.add(new Cast(x.deviceStorage(), x.offset(), x.numel(), out[i]));
        }
        return out;
    }

    /** This thread's held attention copy of exactly x's elements, or null. */
    private Cast heldCopy(Tensor x) {
        for (Cast c : attentionCopies.get()) {
            if (c.src() == x.deviceStorage() && c.offset() == x.offset() && c.numel() == x.numel()) return c;
        }
        return null;
    }

    /** A weight's bf16 copy, cast once until the weight is written (see {@link Bf16WeightCache}). */
    private Tensor weightBf16(Tensor w) {
        return weightCopies.get(w, t -> {
            // made inside a recording, the copy would hold its values only once the graph runs: eager work reading it
            // from the cache before then would read garbage
            if (ctx.recording()) throw new IllegalStateException("a bf16 copy of weight " + t + " would be made inside a recording: run the work once before recording it");
            return castBf16(t, t.numel());
        });
    }

    /**
     * Row-major C (m×n) = alpha·op(A)·op(B) + beta·C with bf16 A and B (device addresses), fp32 accumulation and C:
     * cuBLAS GemmEx, or our tensor-core kernel where the chooser timed it faster for this shape and verified it.
     */
    private void gemmBf16(boolean transA, boolean transB, int m, int n, int k, float alpha, long a, long b, float beta, long c) {
        if (m == 0 || n == 0 || k == 0) return;
        ctx.bind();
        if (!TensorCoreGemm.aligned(a, b, c)) { // a window our kernels cannot load: cuBLAS, leaving the shape undecided
            ctx.cublas().gemmBf16RowMajor(transA, transB, m, n, k, alpha, a, b, beta, c);
            return;
        }
        GemmChooser.Shape shape = new GemmChooser.Shape(m, n, k, transA, transB);
        GemmChooser.Choice choice = chooser.known(shape);
        if (choice == null) choice = firstUse(shape, alpha, a, b, beta, c);
        if (choice.ours()) ownGemm.run(a, b, c, m, n, k, 1, true, transA, transB, alpha, beta, choice.tile());
        else ctx.cublas().gemmBf16RowMajor(transA, transB, m, n, k, alpha, a, b, beta, c);
    }

    /**
     * The first GEMM of a shape: the chooser times cuBLAS and our tiles and verifies its candidate against cuBLAS on
     * two scratch outputs, each a fresh copy of C before a verified run (so beta ≠ 0 reads the real C and nothing
     * writes it); the caller then runs the chosen kernel once on the real C.
     */
    private GemmChooser.Choice firstUse(GemmChooser.Shape shape, float alpha, long a, long b, float beta, long c) {
        if (!chooser.runsKernelsToDecide(shape)) { // cuBLAS without a run: no scratch outputs needed
            return chooser.choose(shape, () -> {}, tile -> () -> {}, tile -> Double.NaN);
        }
        int m = shape.m(), n = shape.n(), k = shape.k();
        boolean transA = shape.transA(), transB = shape.transB();
        long elems = (long) m * n;
        if (elems > Integer.MAX_VALUE) return chooser.cublasFor(shape, "output too large to verify ours against cuBLAS on the host");
        Tensor ref, mine;
        try {
            ref = ctx.empty(DType.F32, (int) elems);
            mine = ctx.empty(DType.F32, (int) elems);
        } catch (CudaOutOfMemoryException e) {
            return chooser.cublasFor(shape, "no device memory for the scratch outputs that time and verify ours ("
                    + CudaOutOfMemoryException.human(e.requested()) + ")");
        }
        Runnable cublas = () -> ctx.cublas().gemmBf16RowMajor(transA, transB, m, n, k, alpha, a, b, beta, p(ref));
        java.util.function.Function<TensorCoreGemm.Tile, Runnable> ours =
                tile -> () -> ownGemm.run(a, b, p(mine), m, n, k, 1, true, transA, transB, alpha, beta, tile);
        GemmChooser.Verifier verify = tile -> {
            ctx.driver().copyDtoDAsync(p(ref), c, 4 * elems, ctx.stream());
            ctx.driver().copyDtoDAsync(p(mine), c, 4 * elems, ctx.stream());
            float[] base = beta != 0f ? ref.toFloatArray() : null;
            cublas.run();
            ours.apply(tile).run();
            float[] want = ref.toFloatArray(), got = mine.toFloatArray();
            if (base != null) { // compare the products alone: a large accumulated C must not hide a wrong one
                for (int i = 0; i < want.length; i++) {
                    want[i] -= beta * base[i];
                    got[i] -= beta * base[i];
                }
            }
            return GemmChooser.relativeError(want, got);
        };
        try {
            return chooser.choose(shape, cublas, ours, verify);
        } finally {
            recycle(ref, mine); // stream-ordered after the runs that write them; an undecided shape comes back here
        }
    }

    /** Device milliseconds of one run of {@code body}: a warm-up (compiles, picks algorithms), then the median of 3. */
    private double timeMs(Runnable body) {
        try (StreamTimer timer = new StreamTimer(ctx.driver(), ctx.stream())) {
            body.run();
            double[] ms = new double[3];
            for (int i = 0; i < ms.length; i++) ms[i] = timer.ms(body);
            Arrays.sort(ms);
            return ms[1];
        }
    }

    @Override
    public Tensor linear(Tensor x, Tensor w) {
        if (!(bf16() && x != null && x.dtype() == DType.BF16)) f32("linear", "x", x);   // bf16: relu2Operand's, taken as it is
        f32("linear", "w", w);
        int[] ys = OpChecks.linear(x, w);
        int out = w.shape(0), in = w.shape(1), rows = x.rows();
        if (rows == 0 || out == 0 || in == 0) return ctx.zeros(DType.F32, ys);
        return timesWeight(x, w, true, ys);
    }

    /**
     * a (rows × k) · op(W) into a new tensor of {@code shape}: the linear forward (W transposed) and its input
     * gradient (W as is); bf16 operands under {@link MatmulPrecision#BF16}, the weight's copy cached.
     */
    private Tensor timesWeight(Tensor a, Tensor w, boolean transW, int[] shape) {
        int rows = a.rows(), n = transW ? w.shape(0) : w.shape(1), k = transW ? w.shape(1) : w.shape(0);
        try {
            if (bf16()) {
                Tensor y = ctx.empty(DType.F32, shape), ah = activationBf16(a), wh = weightBf16(w);
                gemmBf16(false, transW, rows, n, k, 1f, p(ah), p(wh), 0f, p(y));
                fence(wh, ah);
                return y;
            }
            Tensor y = ctx.zeros(DType.F32, shape);
            gemm(false, transW, rows, n, k, 1f, p(a), 0, p(w), 0, 0f, p(y), 0, 1);
            return y;
        } finally {
            fence(a, w);
        }
    }

    @Override
    public Tensor linearBackwardInput(Tensor dy, Tensor w) {
        f32("linearBackwardInput", "dy", dy);
        f32("linearBackwardInput", "w", w);
        int[] xs = OpChecks.linearBackwardInput(dy, w);
        int out = w.shape(0), in = w.shape(1), rows = dy.rows();
        if (rows == 0 || in == 0 || out == 0) return ctx.zeros(DType.F32, xs);
        return timesWeight(dy, w, false, xs);
    }

    @Override
    public void linearBackwardWeight(Tensor dy, Tensor x, Tensor dW, boolean accumulate) {
        String op = "linearBackwardWeight";
        f32(op, "dy", dy);
        boolean saved = x != null && x.dtype() == DType.BF16;   // a saveForBackward copy (Autograd.shelve's)
        if (!saved) f32(op, "x", x);
        f32(op, "dW", dW);
        OpChecks.linearBackwardWeight(dy, x, dW);
        int out = dW.shape(0), in = dW.shape(1), rows = dy.rows();
        writes(dW);
        if (!accumulate) ctx.memset(dW, 0);
        if (rows == 0) return;
        if (bf16()) {
            Tensor dyh = activationBf16(dy), xh = saved ? x : activationBf16(x);   // a saved copy is the GEMM's operand as is
            gemmBf16(true, false, out, in, rows, 1f, p(dyh), p(xh), 1f, p(dW));
            fence(dyh, xh);
        } else {
            Tensor xf = savedValue(x);
            gemm(true, false, out, in, rows, 1f, p(dy), 0, p(xf), 0, 1f, p(dW), 0, 1);
            if (xf != x) recycle(xf);
        }
        fence(dy, x, dW);
    }

    // ------------------------------------------------------------------ normalization, rotary

    @Override
    public Tensor rmsNorm(Tensor x, float scale) {
        savedOrF32("rmsNorm", "x", x);
        Tensor y = ctx.empty(DType.F32, x.shape());
        String fn = x.dtype() == DType.BF16 ? "rms_norm_fwd_bf16x" : "rms_norm_fwd";
        if (x.numel() > 0) mod("norm").launch(fn, x.rows(), 1, 1, BLOCK, 0, x, y, x.cols(), scale, RMS_EPS, 0L);
        return y;
    }

    /** rms_norm_fwd leaving each row's 1/rms too: one pass over x (composed, 1/rms took another pass and seven launches). */
    @Override
    public NormOut rmsNormKeepingInv(Tensor x, float scale) {
        f32("rmsNormKeepingInv", "x", x);
        Tensor y = ctx.empty(DType.F32, x.shape());
        int[] s = x.shape();
        s[s.length - 1] = 1;
        Tensor inv = ctx.empty(DType.F32, s);
        if (x.numel() > 0) mod("norm").launch("rms_norm_fwd", x.rows(), 1, 1, BLOCK, 0, x, y, x.cols(), scale, RMS_EPS, inv);
        return new NormOut(y, inv);
    }

    /** y fp32 or its saved bf16 copy (read as it is, widened in the kernel). */
    @Override
    public Tensor rmsNormBackwardFromOutput(Tensor dy, Tensor y, Tensor inv, float scale) {
        String op = "rmsNormBackwardFromOutput";
        f32(op, "dy", dy);
        savedOrF32(op, "y", y);
        f32(op, "inv", inv);
        same(op, dy, y);
        if (inv.numel() != y.rows()) throw bad(op, "inv must hold one 1/rms per row of y", y, inv);
        Tensor dx = ctx.empty(DType.F32, y.shape());
        String fn = y.dtype() == DType.BF16 ? "rms_norm_bwd_from_out_bf16y" : "rms_norm_bwd_from_out";
        if (y.numel() > 0) mod("norm").launch(fn, y.rows(), 1, 1, BLOCK, 0, dy, y, inv, dx, y.cols(), scale);
        return dx;
    }

    /** An fp32 tensor, or a bf16 one (what {@link #saveForBackward} kept) on this device. */
    private static void savedOrF32(String op, String name, Tensor t) {
        if (t != null && t.dtype() == DType.BF16) onDevice(op, name, t);
        else f32(op, name, t);
    }

    @Override
    public Tensor rmsNormBackward(Tensor x, Tensor dy, float scale) {
        savedOrF32("rmsNormBackward", "x", x);
        f32("rmsNormBackward", "dy", dy);
        same("rmsNormBackward", x, dy);
        Tensor dx = ctx.empty(DType.F32, x.shape());
        String fn = x.dtype() == DType.BF16 ? "rms_norm_bwd_bf16x" : "rms_norm_bwd";
        if (x.numel() > 0) mod("norm").launch(fn, x.rows(), 1, 1, BLOCK, 0, x, dy, dx, x.cols(), scale, RMS_EPS);
        return dx;
    }

    /** Computed on the host exactly as the CPU backend does (fp32 angles), then uploaded: bit-identical tables. */
    @Override
    public RotaryTables rotaryTables(int maxT, int headDim, double base) {
        RotaryTables host = CpuBackend.INSTANCE.rotaryTables(maxT, headDim, base);
        return new RotaryTables(upload(host.cos()), upload(host.sin()));
    }

    private Tensor rotary(String op, Tensor x, Tensor cos, Tensor sin, int offset, float sign) {
        rotaryOperands(op, x, cos, sin, offset);
        int t = x.shape(1), h = x.shape(2), d = x.shape(3);
        Tensor y = ctx.empty(DType.F32, x.shape());
        int n = x.numel() / 2;
        if (n > 0) mod("norm").launch("rotary", grid(n), 1, 1, BLOCK, 0, x, y, cos, sin, t, h, d, offset, sign, n);
        return y;
    }

    /** rotary + QK-norm in one kernel per head row (norm.cu's rotary_rms_norm). */
    @Override
    public NormOut rotaryRmsNorm(Tensor x, Tensor cos, Tensor sin, int offset, float scale, boolean keepInv) {
        rotaryOperands("rotaryRmsNorm", x, cos, sin, offset);
        return rotaryRmsNorm(x, cos, sin, offset, null, scale, keepInv);
    }

    /** At positions offset + (offsetAt's value when the kernel runs, when given: its range is the caller's to check). */
    private NormOut rotaryRmsNorm(Tensor x, Tensor cos, Tensor sin, int offset, Tensor offsetAt, float scale, boolean keepInv) {
        int t = x.shape(1), h = x.shape(2), d = x.shape(3);
        Tensor y = ctx.empty(DType.F32, x.shape()), inv = keepInv ? ctx.empty(DType.F32, x.shape(0), t, h, 1) : null;
        if (x.numel() > 0) {
            mod("norm").launch("rotary_rms_norm", x.rows(), 1, 1, BLOCK, 0, x, y, optional(inv), cos, sin, t, h, d, offset, scale, RMS_EPS,
                    optional(offsetAt));
        }
        return new NormOut(y, inv);
    }

    @Override
    public Tensor rotaryRmsNormAt(Tensor x, Tensor cos, Tensor sin, Tensor offset, float scale) {
        scalarInt("rotaryRmsNormAt", offset);
        rotaryOperands("rotaryRmsNormAt", x, cos, sin, 0);
        return rotaryRmsNorm(x, cos, sin, 0, offset, scale, false).y();
    }

    /** y fp32 or its saved bf16 copy (read as it is, widened in the kernel). */
    @Override
    public Tensor rotaryRmsNormBackward(Tensor dy, Tensor y, Tensor inv, Tensor cos, Tensor sin, int offset, float scale) {
        String op = "rotaryRmsNormBackward";
        rotaryOperands(op, dy, cos, sin, offset);
        savedOrF32(op, "y", y);
        f32(op, "inv", inv);
        same(op, dy, y);
        if (inv.numel() != y.rows()) throw bad(op, "inv must hold one 1/rms per head row of y", y, inv);
        int t = y.shape(1), h = y.shape(2), d = y.shape(3);
        Tensor dx = ctx.empty(DType.F32, y.shape());
        String fn = y.dtype() == DType.BF16 ? "rotary_rms_norm_bwd_bf16y" : "rotary_rms_norm_bwd";
        if (y.numel() > 0) mod("norm").launch(fn, y.rows(), 1, 1, BLOCK, 0, dy, y, inv, cos, sin, dx, t, h, d, offset, scale);
        return dx;
    }

    /** x (B,T,H,D) with even D, fp32 cos/sin (Tmax, D/2) holding positions offset..offset+T−1. */
    private static void rotaryOperands(String op, Tensor x, Tensor cos, Tensor sin, int offset) {
        f32(op, "x", x);
        f32(op, "cos", cos);
        f32(op, "sin", sin);
        OpChecks.rotary(op, x, cos, sin, offset);
    }

    /** A kernel's optional pointer argument: the tensor, or a null pointer. */
    private static Object optional(Tensor t) {
        return t == null ? (Object) 0L : t;
    }

    private static void scalarInt(String op, Tensor t) {
        idType(op, "position", t);
        if (t.numel() != 1) throw new IllegalArgumentException(op + ": the position must be one int32 on the device, got " + t);
    }

    @Override
    public Tensor rotary(Tensor x, Tensor cos, Tensor sin, int offset) {
        return rotary("rotary", x, cos, sin, offset, 1f);
    }

    @Override
    public Tensor rotaryBackward(Tensor dy, Tensor cos, Tensor sin, int offset) {
        return rotary("rotaryBackward", dy, cos, sin, offset, -1f);
    }

    // ------------------------------------------------------------------ activations

    private static final int OP_RELU2 = 0, OP_SIGMOID = 1, OP_TANH = 2, OP_SOFTCAP = 3, OP_SQRT = 4, OP_RSQRT = 5, OP_CLAMP = 6;

    private Tensor unary(String op, Tensor x, int code, float p0, float p1) {
        f32(op, "x", x);
        Tensor y = ctx.empty(DType.F32, x.shape());
        if (x.numel() > 0) mod("elementwise").launch("unary_f32", grid(x.numel()), 1, 1, BLOCK, 0, x, y, x.numel(), code, p0, p1);
        return y;
    }

    private Tensor unaryGrad(String op, String aName, Tensor a, Tensor dy, int code, float p0) {
        f32(op, aName, a);
        f32(op, "dy", dy);
        same(op, a, dy);
        Tensor dx = ctx.empty(DType.F32, a.shape());
        if (a.numel() > 0) mod("elementwise").launch("unary_grad_f32", grid(a.numel()), 1, 1, BLOCK, 0, a, dy, dx, a.numel(), code, p0);
        return dx;
    }

    @Override public Tensor relu2(Tensor x) { return unary("relu2", x, OP_RELU2, 0f, 0f); }

    @Override
    public Tensor relu2Backward(Tensor x, Tensor dy) {
        if (x == null || x.dtype() != DType.BF16) return unaryGrad("relu2Backward", "x", x, dy, OP_RELU2, 0f);
        onDevice("relu2Backward", "x", x);   // the saved bf16 copy, widened in the kernel
        f32("relu2Backward", "dy", dy);
        same("relu2Backward", x, dy);
        Tensor dx = ctx.empty(DType.F32, x.shape());
        if (x.numel() > 0) mod("elementwise").launch("relu2_grad_bf16a", grid(x.numel()), 1, 1, BLOCK, 0, x, dy, dx, x.numel());
        return dx;
    }

    /** Under bf16 matmuls relu(x)² straight to bf16 (from x in fp32 or its saved bf16 copy), else {@link #relu2} in fp32. */
    @Override
    public Tensor relu2Operand(Tensor x) {
        onDevice("relu2Operand", "x", x);
        if (!bf16()) return Backend.super.relu2Operand(x);   // fp32 GEMMs read fp32
        boolean half = x.dtype() == DType.BF16;
        if (!half) f32("relu2Operand", "x", x);
        Tensor u = ctx.empty(DType.BF16, x.shape());
        if (x.numel() > 0) mod("elementwise").launch(half ? "relu2_bf16_to_bf16" : "relu2_to_bf16", grid(x.numel()), 1, 1, BLOCK, 0, x, u, x.numel());
        return u;
    }

    @Override public Tensor sigmoid(Tensor x) { return unary("sigmoid", x, OP_SIGMOID, 0f, 0f); }

    @Override public Tensor sigmoidBackward(Tensor y, Tensor dy) { return unaryGrad("sigmoidBackward", "y", y, dy, OP_SIGMOID, 0f); }

    @Override
    public Tensor softcap(Tensor x, float cap) {
        positiveCap("softcap", cap);
        return unary("softcap", x, OP_SOFTCAP, cap, 0f);
    }

    @Override
    public Tensor softcapBackward(Tensor x, Tensor dy, float cap) {
        positiveCap("softcapBackward", cap);
        return unaryGrad("softcapBackward", "x", x, dy, OP_SOFTCAP, cap);
    }


    // ------------------------------------------------------------------ elementwise with broadcasting

    private static final int MAX_RANK = 8;

    /** Element strides of {@code s} as seen from an output of rank r, 0 on broadcast dims. */
    private static int[] bstrides(int[] s, int[] out) {
        int r = out.length;
        int[] st = new int[r];
        int stride = 1;
        for (int i = s.length - 1; i >= 0; i--) {
            int o = i + (r - s.length);
            st[o] = s[i] == 1 && out[o] != 1 ? 0 : stride;
            stride *= s[i];
        }
        return st;
    }

    private Tensor binary(String op, int code, Tensor a, Tensor b) {
        f32(op, "a", a);
        f32(op, "b", b);
        int[] out = OpChecks.broadcast(op, a, b);
        if (out.length > MAX_RANK) throw bad(op, "rank above " + MAX_RANK, a, b);
        Tensor c = ctx.empty(DType.F32, out);
        if (c.numel() == 0) return c;
        int[] sa = bstrides(a.shape(), out), sb = bstrides(b.shape(), out);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4L * (1 + 3 * MAX_RANK), 4);
            s.set(ValueLayout.JAVA_INT, 0, out.length);
            for (int i = 0; i < out.length; i++) {
                s.setAtIndex(ValueLayout.JAVA_INT, 1 + i, out[i]);
                s.setAtIndex(ValueLayout.JAVA_INT, 1 + MAX_RANK + i, sa[i]);
                s.setAtIndex(ValueLayout.JAVA_INT, 1 + 2 * MAX_RANK + i, sb[i]);
            }
            mod("elementwise").launch("binary_bcast_f32", grid(c.numel()), 1, 1, BLOCK, 0, a, b, c, c.numel(), code, s);
        }
        return c;
    }

    @Override public Tensor add(Tensor a, Tensor b) { return binary("add", 0, a, b); }

    @Override public Tensor mul(Tensor a, Tensor b) { return binary("mul", 2, a, b); }

    @Override public Tensor div(Tensor a, Tensor b) { return binary("div", 3, a, b); }

    @Override public Tensor sqrt(Tensor x) { return unary("sqrt", x, OP_SQRT, 0f, 0f); }

    @Override public Tensor rsqrt(Tensor x) { return unary("rsqrt", x, OP_RSQRT, 0f, 0f); }

    @Override
    public Tensor sumToShape(Tensor x, int... shape) {
        f32("sumToShape", "x", x);
        OpChecks.sumToShape(x, shape);
        if (x.rank() > MAX_RANK) throw bad("sumToShape", "rank above " + MAX_RANK, x);
        Tensor out = ctx.empty(DType.F32, shape);
        if (out.numel() == 0) return out;
        int[] xs = x.shape();
        int r = xs.length, lead = r - shape.length;
        int[] xStride = new int[r];
        for (int i = r - 1, st = 1; i >= 0; i--) {
            xStride[i] = st;
            st *= xs[i];
        }
        int redRank = 0;
        int[] redShape = new int[MAX_RANK], redStride = new int[MAX_RANK], outStride = new int[MAX_RANK];
        for (int i = 0; i < r; i++) {
            int o = i - lead;
            boolean reduced = o < 0 || (shape[o] == 1 && xs[i] != 1);
            if (reduced) {
                redShape[redRank] = xs[i];
                redStride[redRank++] = xStride[i];
            } else {
                outStride[o] = xStride[i];
            }
        }
        int redCount = x.numel() / out.numel();
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4L * (2 + 4 * MAX_RANK), 4);
            s.set(ValueLayout.JAVA_INT, 0, shape.length);
            for (int i = 0; i < shape.length; i++) {
                s.setAtIndex(ValueLayout.JAVA_INT, 1 + i, shape[i]);
                s.setAtIndex(ValueLayout.JAVA_INT, 1 + MAX_RANK + i, outStride[i]);
            }
            s.setAtIndex(ValueLayout.JAVA_INT, 1 + 2 * MAX_RANK, redRank);
            for (int i = 0; i < redRank; i++) {
                s.setAtIndex(ValueLayout.JAVA_INT, 2 + 2 * MAX_RANK + i, redShape[i]);
                s.setAtIndex(ValueLayout.JAVA_INT, 2 + 3 * MAX_RANK + i, redStride[i]);
            }
            mod("elementwise").launch("sum_to_f32", out.numel(), 1, 1, BLOCK, 0, x, out, redCount, s);
        }
        return out;
    }

    @Override
    public Tensor scale(Tensor x, float s) {
        f32("scale", "x", x);
        Tensor y = ctx.empty(DType.F32, x.shape());
        if (x.numel() > 0) mod("elementwise").launch("axpby_f32", grid(x.numel()), 1, 1, BLOCK, 0, s, x, 0f, 0L, y, x.numel());
        return y;
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        f32("axpy", "x", x);
        f32("axpy", "y", y);
        same("axpy", x, y);
        writes(y);
        if (x.numel() > 0) mod("elementwise").launch("axpby_f32", grid(x.numel()), 1, 1, BLOCK, 0, alpha, x, 1f, y, y, x.numel());
    }

    @Override
    public Tensor axpby(float a, Tensor x, float b, Tensor y) {
        f32("axpby", "x", x);
        f32("axpby", "y", y);
        same("axpby", x, y);
        Tensor out = ctx.empty(DType.F32, x.shape());
        if (x.numel() > 0) {
            mod("elementwise").launch("axpby_f32", grid(x.numel()), 1, 1, BLOCK, 0, a, x, b, b == 0f ? 0L : y, out, x.numel());
        }
        return out;
    }

    private static void oneElement(String op, String name, Tensor s) {
        f32(op, name, s);
        OpChecks.oneElement(op, name, s);
    }

    @Override
    public Tensor lambdaMix(Tensor a, Tensor x, Tensor b, Tensor x0) {
        oneElement("lambdaMix", "a", a);
        oneElement("lambdaMix", "b", b);
        f32("lambdaMix", "x", x);
        f32("lambdaMix", "x0", x0);
        same("lambdaMix", x, x0);
        Tensor y = ctx.empty(DType.F32, x.shape());
        if (x.numel() > 0) mod("elementwise").launch("lambda_mix_f32", grid(x.numel()), 1, 1, BLOCK, 0, a, x, b, x0, y, x.numel());
        return y;
    }

    @Override
    public MixGrads lambdaMixBackward(Tensor dy, Tensor a, Tensor x, Tensor b, Tensor x0) {
        String op = "lambdaMixBackward";
        oneElement(op, "a", a);
        oneElement(op, "b", b);
        f32(op, "dy", dy);
        savedOrF32(op, "x", x);
        savedOrF32(op, "x0", x0);
        same(op, dy, x);
        same(op, dy, x0);
        // One pass over dy, x and x0 as the forward kept them (bf16 where shelved) instead of two widened copies, two
        // dots and two products: dx = a·dy and dx0 = b·dy with the lambdas read on the device, da and db as dot()
        // sums them (same grid, same order: equal bit for bit). a·dy, not lambdaMix(a, dy, 0, dy): 0·inf is NaN.
        Tensor dx = ctx.empty(DType.F32, dy.shape());
        Tensor dx0 = ctx.empty(DType.F32, dy.shape());
        Tensor da = ctx.empty(DType.F32, a.shape());
        Tensor db = ctx.empty(DType.F32, b.shape());
        int n = dy.numel();
        int blocks = reduceBlocks(n);
        CudaContext.Memory partial = ctx.allocate(16L * blocks);
        CudaContext.Module m = mod("reduce");
        m.launch("lambda_mix_backward_partial", blocks, 1, 1, BLOCK, 0, dy, x, x.dtype() == DType.BF16 ? 1 : 0,
                x0, x0.dtype() == DType.BF16 ? 1 : 0, a, b, dx, dx0, n, partial);
        m.launch("reduce_final", 1, 1, 1, BLOCK, 0, partial, blocks, 1.0, da);
        m.launch("reduce_final", 1, 1, 1, BLOCK, 0, partial.address() + 8L * blocks, blocks, 1.0, db);
        partial.recycle(); // the stream runs reduce_final before any later user of the block
        return new MixGrads(da, dx, db, dx0);
    }

    @Override
    public Tensor lerp(Tensor a, Tensor b, float w) {
        f32("lerp", "a", a);
        f32("lerp", "b", b);
        same("lerp", a, b);
        Tensor out = ctx.empty(DType.F32, a.shape());
        if (a.numel() > 0) mod("elementwise").launch("lerp_f32", grid(a.numel()), 1, 1, BLOCK, 0, a, b, out, a.numel(), w);
        return out;
    }

    @Override
    public Tensor clamp(Tensor x, float lo, float hi) {
        f32("clamp", "x", x);
        OpChecks.clamp(x, lo, hi);
        return unary("clamp", x, OP_CLAMP, lo, hi);
    }

    // ------------------------------------------------------------------ reductions

    private static final int RED_SUM = 0, RED_DOT = 1;

    /** Blocks of a whole-tensor reduction's first pass (grid-stride beyond): its grid fixes the order of the sum. */
    private static int reduceBlocks(int n) {
        return (int) Math.min(1024, Math.max(1, (n + BLOCK - 1) / BLOCK));
    }

    private Tensor reduce(Tensor a, Tensor b, int mode, double scale) {
        Tensor out = ctx.empty(DType.F32);
        int n = a.numel();
        int blocks = reduceBlocks(n);
        CudaContext.Memory partial = ctx.allocate(8L * blocks);
        CudaContext.Module m = mod("reduce");
        m.launch("reduce_partial", blocks, 1, 1, BLOCK, 0, a, b == null ? 0L : b, n, mode, partial);
        m.launch("reduce_final", 1, 1, 1, BLOCK, 0, partial, blocks, scale, out);
        partial.recycle(); // the stream runs reduce_final before any later user of the block
        return out;
    }

    private Tensor sum(Tensor x) {
        f32("sum", "x", x);
        return reduce(x, null, RED_SUM, 1.0);
    }

    @Override
    public Tensor dot(Tensor a, Tensor b) {
        f32("dot", "a", a);
        f32("dot", "b", b);
        same("dot", a, b);
        return reduce(a, b, RED_DOT, 1.0);
    }


    @Override
    public Tensor rowNorms(Tensor x) {
        f32("rowNorms", "x", x);
        OpChecks.rowNorms(x);
        Tensor out = ctx.zeros(DType.F32, dropLast(x));
        if (x.numel() > 0) mod("reduce").launch("row_norms", x.rows(), 1, 1, BLOCK, 0, x, out, x.cols());
        return out;
    }

    @Override
    public Tensor argmax(Tensor x) {
        f32("argmax", "x", x);
        OpChecks.argmax(x);
        Tensor out = ctx.empty(DType.I32, dropLast(x));
        if (x.rows() > 0) mod("reduce").launch("argmax_rows", x.rows(), 1, 1, BLOCK, 0, x, out, x.cols());
        return out;
    }

    // ------------------------------------------------------------------ layout




    private void copyRuns(Tensor src, int srcSize, int srcStart, Tensor dst, int dstSize, int dstStart, int len, int outer, int inner) {
        copyRuns(src, srcSize, srcStart, dst, dstSize, dstStart, null, len, outer, inner);
    }

    /** copy_runs_f32 with the destination's runs starting at dstStart + (dstStartAt's value when it runs, when given). */
    private void copyRuns(Tensor src, int srcSize, int srcStart, Tensor dst, int dstSize, int dstStart, Tensor dstStartAt, int len,
                          int outer, int inner) {
        long total = (long) outer * len * inner;
        if (total == 0) return;
        mod("elementwise").launch("copy_runs_f32", grid(total), 1, 1, BLOCK, 0, src, srcSize, srcStart, dst, dstSize, dstStart,
                len, outer, inner, optional(dstStartAt));
    }

    @Override
    public Tensor narrow(Tensor x, int dim, int start, int length) {
        f32("narrow", "x", x);
        int d = OpChecks.narrow(x, dim, start, length), size = x.shape(d);
        int[] s = x.shape();
        s[d] = length;
        Tensor y = ctx.empty(DType.F32, s);
        copyRuns(x, size, start, y, length, 0, length, outer(s, d), inner(s, d));
        return y;
    }

    @Override
    public Tensor narrowBackward(Tensor dy, int dim, int start, int fullSize) {
        f32("narrowBackward", "dy", dy);
        int d = OpChecks.narrowBackward(dy, dim, start, fullSize), len = dy.shape(d);
        int[] s = dy.shape();
        s[d] = fullSize;
        Tensor dx = ctx.zeros(DType.F32, s);
        copyRuns(dy, len, 0, dx, fullSize, start, len, outer(s, d), inner(s, d));
        return dx;
    }

    @Override
    public Tensor concat(int dim, Tensor... parts) {
        for (Tensor pt : parts) f32("concat", "part", pt);
        int[] s = OpChecks.concat(dim, parts);
        int d = dim("concat", parts[0], dim), total = s[d];
        Tensor out = ctx.empty(DType.F32, s);
        int at = 0;
        for (Tensor pt : parts) {
            int len = pt.shape(d);
            copyRuns(pt, len, 0, out, total, at, len, outer(s, d), inner(s, d));
            at += len;
        }
        return out;
    }

    @Override
    public void narrowAssign(Tensor dst, int dim, int start, Tensor src) {
        narrowAssign("narrowAssign", dst, dim, start, null, src);
    }

    @Override
    public void narrowAssignAt(Tensor dst, int dim, Tensor start, Tensor src) {
        scalarInt("narrowAssignAt", start);
        narrowAssign("narrowAssignAt", dst, dim, 0, start, src);
    }

    /** dst's runs along dim from start + (startAt's value when the copy runs, when given: its range is the caller's to check). */
    private void narrowAssign(String op, Tensor dst, int dim, int start, Tensor startAt, Tensor src) {
        f32(op, "dst", dst);
        f32(op, "src", src);
        writes(dst);
        int d = OpChecks.narrowAssign(op, dst, dim, start, src);
        int len = src.shape(d), size = dst.shape(d);
        int[] s = dst.shape();
        copyRuns(src, len, 0, dst, size, start, startAt, len, outer(s, d), inner(s, d));
    }

    // ------------------------------------------------------------------ embedding

    private static void idType(String op, String name, Tensor ids) {
        if (ids == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (ids.dtype() != DType.I32) throw new IllegalArgumentException(op + ": " + name + " " + ids + " must be I32");
        onDevice(op, name, ids);
    }

    /** A device int initialized to NOT_SET (the kernels atomicMin a bad position into it). */
    private Tensor flag(int n) {
        Tensor f = ctx.empty(DType.I32, n);
        ctx.memset(f, 0x7f);
        return f;
    }

    @Override
    public Tensor embedding(Tensor table, Tensor ids) {
        return embedding(table, ids, true);
    }

    /**
     * {@link #embedding(Tensor, Tensor)}; with {@code checkIds} false the caller has range-checked the ids itself
     * (e.g. on the host before uploading them), which saves the device → host wait the check costs — a decode
     * step would otherwise stall once per embedding table. Out-of-range ids are still never read (their rows are
     * left unwritten), so a wrong promise cannot fault the device.
     */
    public Tensor embedding(Tensor table, Tensor ids, boolean checkIds) {
        f32("embedding", "table", table);
        idType("embedding", "ids", ids);
        int[] s = OpChecks.embedding(table, ids);
        int v = table.shape(0), e = table.shape(1);
        Tensor out = ctx.empty(DType.F32, s);
        if (ids.numel() == 0) return out;
        Tensor bad = flag(1);
        mod("embedding").launch("embedding_fwd", ids.numel(), 1, 1, BLOCK, 0, table, ids, v, e, out, bad);
        // ids uploaded by this backend were range-checked on the host as they went up: no device → host wait
        if (checkIds && !uploadedIds.within(ids.deviceStorage(), v)) checkIdFlag("embedding", bad, ids, v, "table " + table);
        return out;
    }

    private void checkIdFlag(String op, Tensor bad, Tensor ids, int v, String what) {
        int at = bad.toCpu().toIntArray()[0];
        if (at != NOT_SET) {
            long id = (long) ids.getFlat(at);
            throw new IllegalArgumentException(op + ": id " + id + " at position " + at + " is outside [0, " + v + ") (" + what + ", ids " + ids + ")");
        }
    }

    @Override
    public void embeddingBackward(Tensor dy, Tensor ids, Tensor dTable) {
        String op = "embeddingBackward";
        f32(op, "dy", dy);
        f32(op, "dTable", dTable);
        idType(op, "ids", ids);
        OpChecks.embeddingBackward(dy, ids, dTable);
        if (ids.numel() == 0) return;
        writes(dTable);
        int v = dTable.shape(0);
        // check first: a scatter must not half-happen before a bad id is reported (ids uploaded by this backend were
        // range-checked on the host as they went up)
        if (!uploadedIds.within(ids.deviceStorage(), v)) {
            Tensor bad = flag(1);
            mod("embedding").launch("check_ids", grid(ids.numel()), 1, 1, BLOCK, 0, ids, ids.numel(), v, bad);
            checkIdFlag(op, bad, ids, v, "dTable " + dTable);
        }
        // Deterministic: the ids sorted into segments of one id (on the host, once per uploaded batch, for every table
        // of the step), then one block per distinct id sums its rows in position order (atomics would make every
        // run's sums differ)
        UploadedIds.Segments seg = uploadedIds.segments(ids, packed -> ctx.upload(Tensor.ofInts(packed)));
        mod("embedding").launch("embedding_bwd_sorted", seg.count(), 1, 1, BLOCK, 0, dy, seg.perm(), seg.starts(), seg.ids(), dTable.shape(1),
                dTable);
    }

    // ------------------------------------------------------------------ attention

    private static void checkQkv(String op, Tensor q, Tensor k, Tensor v) {
        f32(op, "q", q);
        f32(op, "k", k);
        f32(op, "v", v);
        OpChecks.qkv(op, q, k, v);
    }

    /** Query (or key) rows per attention block, at every head dim: ptxas reports no spill for it (KernelCompileTest). */
    static final int ROWS = 8;
    private static final int KT = 32;

    /** The -D constants the attention module is compiled with at head dim {@code d}; KernelCompileTest compiles the same. */
    static Map<String, String> attentionDefines(int d) {
        return Map.of("BLOCK", String.valueOf(BLOCK), "HEAD_DIM", String.valueOf(d), "ROWS", String.valueOf(ROWS));
    }

    /** The -D constants of every other (elementwise, reduce, norm, …) module. */
    static Map<String, String> blockDefines() {
        return Map.of("BLOCK", String.valueOf(BLOCK));
    }

    private CudaContext.Module attn(int d) {
        return ctx.module("attention", attentionDefines(d));
    }

    /** Query (or key) rows per block of the tensor-core attention kernels: 4 warps × 16, one m16 tile each. */
    static final int TC_ROWS = 64;

    /** The tensor-core attention module of {@code pass} ("fwd" or "bwd") at head dim {@code d}. */
    private CudaContext.Module attnTc(String pass, int d) {
        return ctx.module("attention_tc_" + pass, attentionDefines(d));
    }

    /** Which attention kernels the training step runs (see {@link TensorCoreAttention}). */
    public TensorCoreAttention tensorCoreAttention() {
        return tcAttention;
    }

    private AttentionOut attentionTc(String pass, Tensor q, Tensor k, Tensor v, int window, float scale) {
        Tensor lse = ctx.empty(DType.F32, q.shape(0), q.shape(2), q.shape(1));
        return new AttentionOut(tcForward(pass, q, k, v, lse, 0, window, scale), lse);
    }

    /**
     * attn_tc_fwd, or on Hopper attention_wgmma.cu's attn_wg_fwd (see {@link TensorCoreAttention#wgmma}): q (B,Tq,H,D)
     * at positions pos.. against k, v (B,Tkv,KV,D) — the training step's (Tq = Tkv, pos 0) or a prefill chunk's against
     * the KV cache; lse (B,H,Tq) written unless null. {@code pass}: the check it falls under.
     */
    private Tensor tcForward(String pass, Tensor q, Tensor k, Tensor v, Tensor lse, int pos, int window, float scale) {
        int b = q.shape(0), tq = q.shape(1), h = q.shape(2), d = q.shape(3), tkv = k.shape(1), kv = k.shape(2);
        Tensor y = ctx.empty(DType.F32, q.shape());
        Object lseArg = lse == null ? (Object) 0L : lse;
        boolean wgmma = tcAttention.wgmma(pass, d, ctx.hopper());
        if (wgmma && pass.startsWith("fwd")) {
            // the training step's: from bf16 copies of q, k, v, which its backward keeps (see attentionInputsBf16)
            Tensor[] in = attentionInputsBf16(q, k, v);
            wgmma(d).launch("attn_wg_fwd_bf16", (tq + WG_ROWS - 1) / WG_ROWS, h, b, 2 * 128, WG_FWD_SHARED, in[0], in[1], in[2], y, lseArg,
                    tq, tkv, h, kv, pos, window, scale);
        } else if (wgmma) {
            // a prefill chunk against the fp32 KV cache: converted as the kernel stages it
            wgmma(d).launch("attn_wg_fwd", (tq + WG_ROWS - 1) / WG_ROWS, h, b, 2 * 128, WG_FWD_SHARED, q, k, v, y, lseArg,
                    tq, tkv, h, kv, pos, window, scale);
        } else {
            attnTc("fwd", d).launch("attn_tc_fwd", (tq + TC_ROWS - 1) / TC_ROWS, h, b, 4 * 32, 0, q, k, v, y, lseArg,
                    tq, tkv, h, kv, pos, window, scale);
        }
        return y;
    }

    /**
     * The check a tensor-core call falls under: its pass, apart for calls whose sliding window drops keys of these
     * {@code keys} positions — nanochat's S layers come first, so without this the plain causal mask of its L layers
     * would never be checked.
     */
    static String tcPass(String pass, int window, int keys) {
        return window >= 0 && window < keys - 1 ? pass + "-window" : pass;
    }

    /** Whether every tensor starts on a 16-byte boundary: the tensor-core kernels read rows as float4 (a view may not). */
    private static boolean aligned16(Tensor... ts) {
        for (Tensor t : ts) if (t.deviceAddress() % 16 != 0) return false;
        return true;
    }

    /**
     * The first use of a pass at a head dim: both kernels on the same inputs; the call returns what runs from now on
     * (the tensor cores' outputs when they pass, so the checking step computes as every later one), the other outputs
     * go back. Returns whether the tensor cores' are kept. {@code wgmma}: the candidate is attention_wgmma.cu's (see
     * {@link TensorCoreAttention#check}). Compared as row norms on the device (‖tc − fp32‖ against ‖fp32‖ per row of the last dim): at d12's batch an
     * output is 200 MB, which need not come down.
     */
    private boolean checkTc(String pass, int d, boolean wgmma, Tensor[] reference, Tensor[] candidate) {
        float[][] norms = new float[reference.length][], errors = new float[candidate.length][];
        for (int i = 0; i < norms.length; i++) {
            Tensor r = reference[i].reshape(-1, reference[i].cols()), diff = axpby(1f, candidate[i].reshape(-1, r.cols()), -1f, r);
            norms[i] = rowNorms(r).toFloatArray();
            errors[i] = rowNorms(diff).toFloatArray();
            recycle(diff);
        }
        boolean tc = tcAttention.check(pass, d, wgmma, norms, errors) == TensorCoreAttention.Use.TC;
        recycle(tc ? reference : candidate);
        return tc;
    }

    private static int fwdShared(int d) {
        return 4 * (2 * KT * (d + 1) + ROWS * d);
    }

    @Override
    public AttentionOut attention(Tensor q, Tensor k, Tensor v, int window, float scale) {
        checkQkv("attention", q, k, v);
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        OpChecks.attention("forward", b, t, h, kv, d, scale); // before: an empty launch would hand back an unwritten lse
        String pass = tcPass("fwd", window, t);
        TensorCoreAttention.Use use = aligned16(q, k, v) ? tcAttention.use(pass, d, precision) : TensorCoreAttention.Use.FP32;
        if (use == TensorCoreAttention.Use.TC) return attentionTc(pass, q, k, v, window, scale);
        Tensor y = ctx.empty(DType.F32, q.shape()), lse = ctx.empty(DType.F32, b, h, t);
        attn(d).launch("attn_fwd", (t + ROWS - 1) / ROWS, h, b, ROWS * 32, fwdShared(d), q, k, v, y, lse,
                t, t, h, kv, 0, window, scale);
        if (use == TensorCoreAttention.Use.CHECK) {
            boolean wgmma = tcAttention.wgmma(pass, d, ctx.hopper());
            AttentionOut tc = attentionTc(pass, q, k, v, window, scale);
            if (checkTc(pass, d, wgmma, new Tensor[] {y, lse}, new Tensor[] {tc.y(), tc.lse()})) return tc;
        }
        return new AttentionOut(y, lse);
    }

    @Override
    public AttentionGrads attentionBackward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        String op = "attentionBackward";
        if (isSaved(q) || isSaved(k) || isSaved(v) || isSaved(y)) return savedBackward(op, q, k, v, y, lse, dy, window, scale);
        checkQkv(op, q, k, v);
        f32(op, "y", y);
        f32(op, "lse", lse);
        f32(op, "dy", dy);
        OpChecks.attentionBackward(op, q, y, lse, dy);
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        OpChecks.attention("backward", b, t, h, kv, d, scale);
        String pass = tcPass("bwd", window, t);
        TensorCoreAttention.Use use = aligned16(q, k, v, dy) ? tcAttention.use(pass, d, precision) : TensorCoreAttention.Use.FP32;
        AttentionGrads fp32 = use == TensorCoreAttention.Use.TC ? null : fp32Backward(q, k, v, y, lse, dy, window, scale);
        if (use == TensorCoreAttention.Use.FP32) return fp32;
        boolean wgmma = tcAttention.wgmma(pass, d, ctx.hopper());   // which tensor-core kernels tcBackward runs
        AttentionGrads tc = tcBackward(q, k, v, y, lse, dy, window, scale);
        if (use == TensorCoreAttention.Use.TC) return tc;
        boolean kept = checkTc(pass, d, wgmma, new Tensor[] {fp32.dq(), fp32.dk(), fp32.dv()}, new Tensor[] {tc.dq(), tc.dk(), tc.dv()});
        return kept ? tc : fp32;
    }

    /**
     * {@link #attentionBackward} from what {@link #saveForBackward} kept (bf16 copies, Autograd.shelve's): the tensor-core
     * kernels read them as they are (the same tiles as from their fp32 widening, so the same bits); the fp32 kernels, a
     * pass's first-use check and a mix of bf16 and fp32 inputs get the widening.
     */
    private AttentionGrads savedBackward(String op, Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        boolean all = isSaved(q) && isSaved(k) && isSaved(v) && isSaved(y);
        if (all) {
            for (Tensor t : new Tensor[] {q, k, v, y}) onDevice(op, "a saved input", t);
            OpChecks.qkv(op, q, k, v);
            f32(op, "lse", lse);
            f32(op, "dy", dy);
            OpChecks.attentionBackward(op, q, y, lse, dy);
            int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
            OpChecks.attention("backward", b, t, h, kv, d, scale);
            if (aligned16(q, k, v, dy) && tcAttention.use(tcPass("bwd", window, t), d, precision) == TensorCoreAttention.Use.TC) {
                return tcBackward(q, k, v, y, lse, dy, window, scale);
            }
        }
        Tensor qf = savedValue(q), kf = savedValue(k), vf = savedValue(v), yf = savedValue(y);
        AttentionGrads g = attentionBackward(qf, kf, vf, yf, lse, dy, window, scale);
        for (Tensor[] w : new Tensor[][] {{qf, q}, {kf, k}, {vf, v}, {yf, y}}) if (w[0] != w[1]) recycle(w[0]);
        return g;
    }

    /** A bf16 copy {@link #saveForBackward} made (an fp32 tensor is not one). */
    private static boolean isSaved(Tensor t) {
        return t != null && t.dtype() == DType.BF16;
    }

    /**
     * dsum = Σ dy∘y per (b, h, row) (attention.cu's attn_bwd_dsum, one warp a row), with dy rounded to bf16 if asked;
     * dyOut, unless null, gets dy as bf16 in the same pass.
     */
    private Tensor dsum(Tensor dy, Tensor y, boolean bf16Dy, Tensor dyOut) {
        int b = dy.shape(0), t = dy.shape(1), h = dy.shape(2), rows = b * t * h, warps = BLOCK / 32;
        Tensor dsum = ctx.empty(DType.F32, b, h, t);
        String kernel = isSaved(y) ? "attn_bwd_dsum_bf16y" : "attn_bwd_dsum";   // y as its bf16 copy (savedBackward)
        attn(dy.shape(3)).launch(kernel, (rows + warps - 1) / warps, 1, 1, BLOCK, 0, dy, y, dsum, t, h, rows, bf16Dy ? 1 : 0,
                dyOut == null ? (Object) 0L : dyOut);
        return dsum;
    }

    /**
     * The tensor cores' backward: FA2's split as the fp32 kernels (dq by query blocks, dk/dv by key blocks over the
     * group's heads; no atomics), with dsum over bf16(dy) as their dP is made (see attention_tc_bwd.cu).
     */
    private AttentionGrads tcBackward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        if (isSaved(q) != isSaved(k) || isSaved(q) != isSaved(v)) throw bad("attentionBackward", "q, k, v all bf16 copies or all fp32", q, k, v);
        if (tcAttention.wgmma(tcPass("bwd", window, t), d, ctx.hopper())) return wgmmaBackward(q, k, v, y, lse, dy, window, scale);
        CudaContext.Module tc = attnTc("bwd", d);
        Tensor dsum = dsum(dy, y, true, null);
        Tensor dq = ctx.empty(DType.F32, q.shape()), dk = ctx.empty(DType.F32, k.shape()), dv = ctx.empty(DType.F32, v.shape());
        int blocks = (t + TC_ROWS - 1) / TC_ROWS;
        String in = isSaved(q) ? "_bf16" : "";   // q, k, v as bf16 copies (savedBackward), else fp32
        tc.launch("attn_tc_bwd_dq" + in, blocks, h, b, 4 * 32, 0, q, k, v, dy, lse, dsum, dq, t, h, kv, window, scale);
        tc.launch("attn_tc_bwd_dkv" + in, blocks, kv, b, 4 * 32, 0, q, k, v, dy, lse, dsum, dk, dv, t, h, kv, window, scale);
        recycle(dsum);
        return new AttentionGrads(dq, dk, dv);
    }

    /**
     * Rows a block of attention_wgmma.cu owns (two warpgroups of 64), and its kernels' dynamic shared memory: resident
     * 128-row bf16 tiles (32 KiB each: Q; K and V; Q and dY) and WG_STAGES stages (the kernels' WB_STAGES) of two streamed 64-row ones
     * (16 KiB each), dk/dv's stages with 64 lse and 64 dsum floats.
     */
    static final int WG_ROWS = 128, WG_RES = WG_ROWS * 128 * 2, WG_STAGE = 2 * 64 * 128 * 2, WG_STAGES = 3;
    static final int WG_FWD_SHARED = WG_RES + WG_STAGES * WG_STAGE, WG_DQ_SHARED = 2 * WG_RES + WG_STAGES * WG_STAGE,
            WG_DKV_SHARED = 2 * WG_RES + WG_STAGES * (WG_STAGE + 2 * 64 * 4);

    /** attention_wgmma.cu at head dim {@code d} (Hopper only). */
    private CudaContext.Module wgmma(int d) {
        return ctx.module("attention_wgmma", wgmmaAttentionDefines(d));
    }

    /** The -D constants of attention_wgmma.cu: the attention ones and its stage count, which WG_*_SHARED are sized by. */
    static Map<String, String> wgmmaAttentionDefines(int d) {
        Map<String, String> m = new TreeMap<>(attentionDefines(d));
        m.put("WB_STAGES", String.valueOf(WG_STAGES));
        return m;
    }

    /**
     * The backward on Hopper's warpgroup MMA (attention_wgmma.cu, head dim 128): the same split and results as the
     * mma.sync kernels, with every operand bf16 in memory so it streams by cp.async — q, k, v as the saved copies (made
     * here from fp32 inputs: a check, a test), dy as the copy dsum's pass writes.
     */
    private AttentionGrads wgmmaBackward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        Tensor dyb = ctx.empty(DType.BF16, dy.shape());
        Tensor dsum = dsum(dy, y, true, dyb);
        Tensor qb = asBf16(q), kb = asBf16(k), vb = asBf16(v);
        Tensor dq = ctx.empty(DType.F32, q.shape()), dk = ctx.empty(DType.F32, k.shape()), dv = ctx.empty(DType.F32, v.shape());
        CudaContext.Module m = wgmma(d);
        int blocks = (t + WG_ROWS - 1) / WG_ROWS;
        m.launch("attn_wg_bwd_dq", blocks, h, b, 2 * 128, WG_DQ_SHARED, qb, kb, vb, dyb, lse, dsum, dq, t, h, kv, window, scale);
        m.launch("attn_wg_bwd_dkv", blocks, kv, b, 2 * 128, WG_DKV_SHARED, qb, kb, vb, dyb, lse, dsum, dk, dv, t, h, kv, window, scale);
        recycle(dsum, dyb);
        for (Tensor[] w : new Tensor[][] {{qb, q}, {kb, k}, {vb, v}}) if (w[0] != w[1]) recycle(w[0]);
        return new AttentionGrads(dq, dk, dv);
    }

    /** t itself if a bf16 copy already, else a new bf16 tensor of its values (same shape). */
    private Tensor asBf16(Tensor t) {
        return isSaved(t) ? t : castBf16(t, t.numel()).reshape(t.shape());
    }

    /** attention.cu's fp32 backward: dsum, then dq by query blocks and dk/dv by key blocks (so no atomics). */
    private AttentionGrads fp32Backward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        CudaContext.Module m = attn(d);
        Tensor dsum = dsum(dy, y, false, null);
        Tensor dq = ctx.empty(DType.F32, q.shape()), dk = ctx.empty(DType.F32, k.shape()), dv = ctx.empty(DType.F32, v.shape());
        int dqShared = 4 * (2 * KT * (d + 1) + 2 * ROWS * d);
        m.launch("attn_bwd_dq", (t + ROWS - 1) / ROWS, h, b, ROWS * 32, dqShared, q, k, v, dy, lse, dsum, dq,
                t, h, kv, window, scale);
        int dkvShared = 4 * (2 * KT * (d + 1) + 2 * ROWS * d + 2 * KT);
        m.launch("attn_bwd_dkv", (t + ROWS - 1) / ROWS, kv, b, ROWS * 32, dkvShared, q, k, v, dy, lse, dsum,
                dk, dv, t, h, kv, window, scale);
        recycle(dsum);
        return new AttentionGrads(dq, dk, dv);
    }

    /** fp32 q (B,Tq,H,D) and caches (B,Tmax,KV,D) of q's B and D on this device. */
    private static void cachedOperands(String op, Tensor q, Tensor kCache, Tensor vCache) {
        f32(op, "q", q);
        f32(op, "kCache", kCache);
        f32(op, "vCache", vCache);
        OpChecks.caches(op, q, kCache, vCache);
    }

    @Override
    public Tensor attentionCached(Tensor q, Tensor kCache, Tensor vCache, int pos, int window, float scale) {
        cachedOperands("attentionCached", q, kCache, vCache);
        int b = q.shape(0), tq = q.shape(1), h = q.shape(2), d = q.shape(3), tmax = kCache.shape(1), kv = kCache.shape(2);
        OpChecks.attentionCached(b, tq, tmax, pos, h, kv, d, scale); // sizes, GQA split, positions within the cache, scale
        // a prefill chunk of at least one m16 tile runs on the tensor cores under bf16; decode steps stay fp32 (a row of
        // queries against the cache: bound by reading it, not by arithmetic)
        String pass = tcPass("prefill", window, pos + tq);
        TensorCoreAttention.Use use = tq >= 16 && aligned16(q, kCache, vCache) ? tcAttention.use(pass, d, precision)
                : TensorCoreAttention.Use.FP32;
        if (use == TensorCoreAttention.Use.TC) return tcForward(pass, q, kCache, vCache, null, pos, window, scale);
        if (tq == 1) return decodeAttention(q, kCache, vCache, pos, null, window, scale, (pos + DCH) / DCH);
        Tensor y = ctx.empty(DType.F32, q.shape());
        attn(d).launch("attn_fwd", (tq + ROWS - 1) / ROWS, h, b, ROWS * 32, fwdShared(d), q, kCache, vCache, y, 0L,
                tq, tmax, h, kv, pos, window, scale);
        if (use == TensorCoreAttention.Use.CHECK) {
            boolean wgmma = tcAttention.wgmma(pass, d, ctx.hopper());
            Tensor tc = tcForward(pass, q, kCache, vCache, null, pos, window, scale);
            if (checkTc(pass, d, wgmma, new Tensor[] {y}, new Tensor[] {tc})) return tc;
        }
        return y;
    }

    /**
     * {@link #attentionCached} of a decode step at the position {@code pos} holds when the kernels run (a recorded step):
     * the split-cache decode kernels, their grid sized by the cache's capacity. The caller keeps pos within the cache.
     */
    @Override
    public Tensor attentionCachedAt(Tensor q, Tensor kCache, Tensor vCache, Tensor pos, int window, float scale) {
        cachedOperands("attentionCachedAt", q, kCache, vCache);
        scalarInt("attentionCachedAt", pos);
        int b = q.shape(0), tq = q.shape(1), h = q.shape(2), d = q.shape(3), tmax = kCache.shape(1), kv = kCache.shape(2);
        OpChecks.attentionCached(b, tq, tmax, 0, h, kv, d, scale);
        if (tq != 1) throw bad("attentionCachedAt", "a decode step's q is (B, 1, H, D)", q);
        return decodeAttention(q, kCache, vCache, 0, pos, window, scale, (tmax + DCH - 1) / DCH);
    }

    /** Keys per block and warps per block of the decode kernels (attention.cu's DCH, DWARPS). */
    static final int DCH = 32, DWARPS = 4;

    /**
     * A decode step's attention, one query row per (b, head), split over the cache in DCH-key chunks (attention.cu's
     * attn_decode_part, then attn_decode_combine): {@code chunks} blocks per row, enough to cover the query's position
     * (pos + posAt's value when the kernel runs; the grid by the cache's capacity when posAt is given).
     */
    private Tensor decodeAttention(Tensor q, Tensor kCache, Tensor vCache, int pos, Tensor posAt, int window, float scale, int chunks) {
        int b = q.shape(0), h = q.shape(2), d = q.shape(3), tmax = kCache.shape(1), kv = kCache.shape(2);
        Tensor part = ctx.empty(DType.F32, b, h, chunks, d + 2);
        Tensor y = ctx.empty(DType.F32, q.shape());
        attn(d).launch("attn_decode_part", chunks, h, b, DWARPS * 32, 2 * DCH * d * Float.BYTES, q, kCache, vCache, part, tmax, h, kv,
                pos, window, scale, optional(posAt), chunks);
        attn(d).launch("attn_decode_combine", h, b, 1, Math.min(128, (d + 31) / 32 * 32), 0, part, y, h, chunks);
        recycle(part);
        return y;
    }

    @Override
    public void addToInt(Tensor counter, int by) {
        scalarInt("addToInt", counter);
        writes(counter);
        mod("elementwise").launch("add_to_int", 1, 1, 1, 32, 0, counter, by);
    }

    /**
     * Records {@code work} into a CUDA graph ({@link CudaContext#record}). Its replay declines (false) once a bf16
     * weight copy it read was dropped (the weight was written) or the matmul precision changed.
     */
    @Override
    public Recording record(Runnable work) {
        MatmulPrecision p = precision;
        forgetCasts(null);   // a cast made inside the recording holds its values only once the graph runs
        CudaContext.Graph g;
        try {
            g = ctx.record(work);
        } finally {
            forgetCasts(null);
        }
        long generation = weightCopies.generation();
        return new Recording() {
            @Override
            public boolean replay() {
                if (precision != p || weightCopies.generation() != generation) return false;
                g.launch();
                return true;
            }

            @Override
            public void close() {
                g.close();
            }
        };
    }

    // ------------------------------------------------------------------ loss

    private void checkTargets(String op, Tensor targets, int n, Tensor other) {
        idType(op, "targets", targets);
        OpChecks.targets(op, targets, n, other);
    }

    private int countValid(Tensor targets) {
        if (targets.numel() == 0) return 0;
        int ignored = uploadedIds.count(targets, -1);   // targets uploaded by this backend: counted on the host
        if (ignored >= 0) return targets.numel() - ignored;
        Tensor c = ctx.zeros(DType.I32, 1);
        mod("crossentropy").launch("count_valid", grid(targets.numel()), 1, 1, BLOCK, 0, targets, targets.numel(), c);
        return c.toCpu().toIntArray()[0];
    }

    /** The CE kernel over rows [r0, r0+rows) of a logits buffer with row stride ld; dl may alias the logits. */
    private void ceRows(String op, Tensor logits, int ld, int v, Tensor targets, int r0, int rows, float cap, float uniformW, Tensor rowWeight,
                        Tensor loss, Tensor dl, Tensor bad) {
        mod("crossentropy").launch("softcap_ce", rows, 1, 1, BLOCK, 0, logits, ld, v, new DevicePtr(targets, 4L * r0),
                cap, uniformW, rowWeight == null ? (Object) 0L : new DevicePtr(rowWeight, 4L * r0),
                new DevicePtr(loss, 4L * r0), dl == null ? (Object) 0L : dl, bad, r0);
    }

    /** The flags every ceRows call of one loss set (rows counted from its first): one wait for the device per loss. */
    private void checkCeFlags(String op, Tensor bad, Tensor targets, int v) {
        int[] f = bad.toCpu().toIntArray();
        int nonFinite = f[0], badTarget = f[1];
        if (nonFinite != NOT_SET) throw new IllegalArgumentException(op + ": non-finite logit in row " + nonFinite + " (vocab " + v + ")");
        if (badTarget != NOT_SET) {
            throw new IllegalArgumentException(op + ": target " + (long) targets.getFlat(badTarget) + " at row " + badTarget
                    + " is outside [0, " + v + ") and not the ignore index -1");
        }
    }

    private Tensor reduceLoss(Tensor rowLoss, Reduction r, int count) {
        if (r == Reduction.NONE) return rowLoss;
        if (r == Reduction.SUM) return sum(rowLoss);
        if (count == 0) return ctx.zeros(DType.F32);
        return reduce(rowLoss, null, RED_SUM, 1.0 / count);
    }

    @Override
    public Loss crossEntropy(Tensor logits, Tensor targets, float cap, Reduction reduction, boolean withGrad) {
        String op = "crossEntropy";
        f32(op, "logits", logits);
        OpChecks.logits(op, logits, targets);
        int n = logits.shape(0), v = logits.shape(1);
        checkTargets(op, targets, n, logits);
        int count = reduction == Reduction.MEAN ? countValid(targets) : 0;
        float w = reduction != Reduction.MEAN ? 1f : count == 0 ? 0f : 1f / count;
        Tensor loss = ctx.zeros(DType.F32, n), g = withGrad ? ctx.empty(DType.F32, n, v) : null;
        if (n > 0) {
            Tensor bad = flag(2);
            ceRows(op, logits, v, v, targets, 0, n, cap, w, null, loss, g, bad);
            checkCeFlags(op, bad, targets, v);
        }
        return new Loss(reduceLoss(loss, reduction, count), g);
    }

    private static void checkLinearCe(String op, Tensor x, Tensor w, int vocab) {
        f32(op, "x", x);
        f32(op, "w", w);
        OpChecks.linearCe(op, x, w, vocab);
    }

    /** Rows per chunk so one chunk's logits stay near 256 MiB. */
    private static int chunkRows(int n, int vpad) {
        return (int) Math.max(1, Math.min(n, (256L << 20) / (4L * vpad)));
    }

    private LinearLoss linearCe(String op, Tensor x, Tensor w, Tensor targets, int vocab, float cap, float uniformW, Tensor rowWeight,
                                boolean withGrad) {
        int n = x.shape(0), c = x.shape(1), vpad = w.shape(0);
        Tensor loss = ctx.zeros(DType.F32, n);
        Tensor dx = withGrad ? ctx.zeros(DType.F32, n, c) : null, dW = withGrad ? ctx.zeros(DType.F32, vpad, c) : null;
        int chunk = chunkRows(n, vpad);
        Tensor buf = n > 0 ? ctx.empty(DType.F32, chunk, vpad) : null;
        boolean half = bf16() && c > 0; // the lm_head GEMMs in bf16; the logits, softcap and CE stay fp32 (nanochat's logits.float())
        Tensor xh = half && n > 0 ? activationBf16(x) : null, wh = half && n > 0 ? weightBf16(w) : null;
        Tensor bad = flag(2);   // checked once, after the last chunk (a check per chunk waited for the device each time)
        for (int r0 = 0; r0 < n; r0 += chunk) {
            int rr = Math.min(chunk, n - r0);
            long xc = p(x) + 4L * r0 * c;
            if (half) gemmBf16(false, true, rr, vpad, c, 1f, p(xh) + 2L * r0 * c, p(wh), 0f, p(buf));
            else gemm(false, true, rr, vpad, c, 1f, xc, 0, p(w), 0, 0f, p(buf), 0, 1);
            ceRows(op, buf, vpad, vocab, targets, r0, rr, cap, uniformW, rowWeight, loss, withGrad ? buf : null, bad);
            if (withGrad && half) {
                Tensor gh = castBf16(buf, (long) rr * vpad); // the gradient enters the lm_head backward in bf16
                gemmBf16(false, false, rr, c, vpad, 1f, p(gh), p(wh), 0f, p(dx) + 4L * r0 * c);
                gemmBf16(true, false, vpad, c, rr, 1f, p(gh), p(xh) + 2L * r0 * c, 1f, p(dW));
                recycle(gh);
            } else if (withGrad) {
                gemm(false, false, rr, c, vpad, 1f, p(buf), 0, p(w), 0, 0f, p(dx) + 4L * r0 * c, 0, 1);
                gemm(true, false, vpad, c, rr, 1f, p(buf), 0, xc, 0, 1f, p(dW), 0, 1);
            }
        }
        recycle(buf);
        fence(x, w, wh, rowWeight, xh);
        if (n > 0) checkCeFlags(op, bad, targets, vocab);
        return new LinearLoss(loss, dx, dW);
    }

    @Override
    public LinearLoss linearSoftcapCrossEntropy(Tensor x, Tensor w, Tensor targets, int vocab, float cap, Reduction reduction, boolean withGrad) {
        String op = "linearSoftcapCrossEntropy";
        checkLinearCe(op, x, w, vocab);
        checkTargets(op, targets, x.shape(0), x);
        int count = reduction == Reduction.MEAN ? countValid(targets) : 0;
        float uw = reduction != Reduction.MEAN ? 1f : count == 0 ? 0f : 1f / count;
        LinearLoss l = linearCe(op, x, w, targets, vocab, cap, uw, null, withGrad);
        return new LinearLoss(reduceLoss(l.loss(), reduction, count), l.dx(), l.dW());
    }

    @Override
    public LinearLoss linearSoftcapCrossEntropyBackward(Tensor x, Tensor w, Tensor targets, int vocab, float cap, Tensor rowGrad) {
        String op = "linearSoftcapCrossEntropyBackward";
        checkLinearCe(op, x, w, vocab);
        checkTargets(op, targets, x.shape(0), x);
        f32(op, "rowGrad", rowGrad);
        OpChecks.rowGrad(op, x, rowGrad);
        return linearCe(op, x, w, targets, vocab, cap, 0f, rowGrad, true);
    }

    // ------------------------------------------------------------------ dtype, checks

    @Override
    public Tensor toBf16(Tensor x) {
        onDevice("toBf16", "x", x);
        if (x.dtype() == DType.BF16) return x.copy();
        f32("toBf16", "x", x);
        Tensor y = ctx.empty(DType.BF16, x.shape());
        if (x.numel() > 0) mod("elementwise").launch("f32_to_bf16", grid(x.numel()), 1, 1, BLOCK, 0, x, y, x.numel());
        return y;
    }

    /** Under bf16 matmuls a bf16 copy of x (nanochat's autocast keeps activations in bf16), else x. */
    @Override
    public Tensor saveForBackward(Tensor x) {
        onDevice("saveForBackward", "x", x);
        if (!bf16() || x.dtype() != DType.F32) return x;
        Cast held = heldCopy(x);   // the attention forward's copy of q, k or v: the same bits as a cast now
        if (held == null) return toBf16(x);
        attentionCopies.get().remove(held);
        attentionHandovers.incrementAndGet();
        return held.bf16().reshape(x.shape());
    }

    @Override
    public Tensor savedValue(Tensor saved) {
        onDevice("savedValue", "saved", saved);
        if (saved.dtype() != DType.BF16) return saved;
        Tensor y = ctx.empty(DType.F32, saved.shape());
        if (saved.numel() > 0) mod("elementwise").launch("bf16_to_f32", grid(saved.numel()), 1, 1, BLOCK, 0, saved, y, saved.numel());
        return y;
    }

    // ------------------------------------------------------------------ checks

    private static void onDevice(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.device() != Device.CUDA) {
            throw new IllegalArgumentException(op + ": " + name + " " + t + " is in " + t.device() + " memory; the CUDA backend computes on"
                    + " device tensors (copy it up once with CudaBackend.upload)");
        }
    }

    private static void f32(String op, String name, Tensor t) {
        onDevice(op, name, t);
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(op + ": " + name + " " + t + " must be F32");
    }


}
