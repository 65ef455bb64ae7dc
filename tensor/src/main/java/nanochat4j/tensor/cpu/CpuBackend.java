package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.OpChecks.*;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.OpChecks;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;

/**
 * The CPU implementation of {@link Backend}: checks shapes and dtypes (every message names the op and the
 * shapes), allocates outputs, and hands flat arrays to the kernels of this package (Gemm, Attention, RmsNorm,
 * Rotary, Elementwise, Broadcast, Reduce, CrossEntropy, Embedding, Layout). An output the kernel writes whole is
 * {@link Tensor#uninitialized} (recycled inside a training step, see {@link nanochat4j.tensor.Recycler}); one it
 * accumulates into or writes in part stays {@link Tensor#zeros}.
 */
public final class CpuBackend implements Backend {
    public static final CpuBackend INSTANCE = new CpuBackend();

    private CpuBackend() {}

    @Override
    public Device device() {
        return Device.CPU;
    }

    @Override
    public Tensor zeros(int... shape) {
        return Tensor.zeros(shape);
    }

    // ------------------------------------------------------------------ matmul

    @Override
    public Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB) {
        f32("matmul", "a", a);
        f32("matmul", "b", b);
        OpChecks.Matmul p = OpChecks.matmul("matmul", a, transA, b, transB);
        Tensor c = Tensor.uninitialized(p.outShape());
        int m = p.m(), n = p.n(), k = p.k(), lda = transA ? m : k, ldb = transB ? k : n;
        if (p.batch() == 0 || m == 0 || n == 0) return c;
        if (!p.batchedB() && p.batchedA() && !transA) {
            // shared 2-d B and row-major A: the whole batch is one tall GEMM (better blocking than batch small ones)
            Gemm.sgemm(false, transB, p.batch() * m, n, k, 1f, a.floats(), a.offset(), lda,
                    b.floats(), b.offset(), ldb, 0f, c.floats(), 0, n);
        } else if (p.batch() == 1) {
            Gemm.sgemm(transA, transB, m, n, k, 1f, a.floats(), a.offset(), lda,
                    b.floats(), b.offset(), ldb, 0f, c.floats(), 0, n);
        } else {
            Gemm.sgemmBatched(p.batch(), transA, transB, m, n, k, 1f, a.floats(), a.offset(), lda, (int) p.strideA(),
                    b.floats(), b.offset(), ldb, (int) p.strideB(), 0f, c.floats(), 0, n, m * n);
        }
        return c;
    }

    @Override
    public Tensor linear(Tensor x, Tensor w) {
        f32("linear", "x", x);
        f32("linear", "w", w);
        return timesWeight(x, w, true, OpChecks.linear(x, w));
    }

    @Override
    public Tensor linearBackwardInput(Tensor dy, Tensor w) {
        f32("linearBackwardInput", "dy", dy);
        f32("linearBackwardInput", "w", w);
        return timesWeight(dy, w, false, OpChecks.linearBackwardInput(dy, w));
    }

    /**
     * x (..., k)·op(W) into a new tensor of shape {@code ys} (..., n): op(W) = Wᵀ for linear (W is (n, k)), W itself
     * for its input gradient (W is (k, n)).
     */
    private static Tensor timesWeight(Tensor x, Tensor w, boolean transW, int[] ys) {
        int kDim = transW ? 1 : 0;
        int n = w.shape(1 - kDim), k = w.shape(kDim), rows = x.rows();
        // k = 0: every output is a sum over nothing; x.rows() is 0 then (it divides by k), so sgemm would not run
        if (k == 0) return Tensor.zeros(ys);
        Tensor y = Tensor.uninitialized(ys);
        if (rows > 0 && n > 0) {
            Gemm.sgemm(false, transW, rows, n, k, 1f, x.floats(), x.offset(), k, w.floats(), w.offset(), w.shape(1), 0f, y.floats(), 0, n);
        }
        return y;
    }

    @Override
    public void linearBackwardWeight(Tensor dy, Tensor x, Tensor dW, boolean accumulate) {
        String op = "linearBackwardWeight";
        f32(op, "dy", dy);
        f32(op, "x", x);
        f32(op, "dW", dW);
        OpChecks.linearBackwardWeight(dy, x, dW);
        int out = dW.shape(0), in = dW.shape(1), rows = dy.rows();
        if (rows == 0) {
            if (!accumulate) dW.fill(0f);
            return;
        }
        Gemm.sgemm(true, false, out, in, rows, 1f, dy.floats(), dy.offset(), out, x.floats(), x.offset(), in,
                accumulate ? 1f : 0f, dW.floats(), dW.offset(), in);
    }

    // ------------------------------------------------------------------ normalization, rotary

    @Override
    public Tensor rmsNorm(Tensor x, float scale) {
        f32("rmsNorm", "x", x);
        Tensor y = Tensor.uninitialized(x.shape());
        RmsNorm.forward(x.floats(), x.offset(), y.floats(), 0, x.rows(), x.cols(), scale, RMS_EPS);
        return y;
    }

    @Override
    public Tensor rmsNormBackward(Tensor x, Tensor dy, float scale) {
        f32("rmsNormBackward", "x", x);
        f32("rmsNormBackward", "dy", dy);
        same("rmsNormBackward", x, dy);
        Tensor dx = Tensor.uninitialized(x.shape());
        RmsNorm.backward(x.floats(), x.offset(), dy.floats(), dy.offset(), dx.floats(), 0, x.rows(), x.cols(), scale, RMS_EPS);
        return dx;
    }

    @Override
    public RotaryTables rotaryTables(int maxT, int headDim, double base) {
        if (maxT < 0 || headDim <= 0 || headDim % 2 != 0) {
            throw new IllegalArgumentException("rotaryTables: need maxT >= 0 and an even headDim > 0, got maxT=" + maxT + " headDim=" + headDim);
        }
        Tensor cos = Tensor.zeros(maxT, headDim / 2), sin = Tensor.zeros(maxT, headDim / 2);
        Rotary.tables(maxT, headDim, base, cos.floats(), sin.floats());
        return new RotaryTables(cos, sin);
    }

    private static Tensor rotary(String op, Tensor x, Tensor cos, Tensor sin, int offset, float sign) {
        f32(op, "x", x);
        f32(op, "cos", cos);
        f32(op, "sin", sin);
        OpChecks.rotary(op, x, cos, sin, offset);
        int b = x.shape(0), t = x.shape(1), h = x.shape(2), d = x.shape(3);
        Tensor y = Tensor.uninitialized(x.shape());
        Rotary.apply(x.floats(), x.offset(), y.floats(), 0, cos.floats(), cos.offset(), sin.floats(), sin.offset(),
                b, t, h, d, offset, sign);
        return y;
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

    /** An elementwise kernel y[yo, yo+n) = f(x[xo, xo+n)). */
    private interface Map1 {
        void apply(float[] x, int xo, float[] y, int yo, int n);
    }

    /** An elementwise gradient kernel dx[dxo, dxo+n) = g(a, dy), a being the forward's input or output. */
    private interface Map2 {
        void apply(float[] a, int ao, float[] dy, int dyo, float[] dx, int dxo, int n);
    }

    private static Tensor map(String op, Tensor x, Map1 kernel) {
        f32(op, "x", x);
        Tensor y = Tensor.uninitialized(x.shape());
        kernel.apply(x.floats(), x.offset(), y.floats(), 0, x.numel());
        return y;
    }

    private static Tensor mapGrad(String op, String aName, Tensor a, Tensor dy, Map2 kernel) {
        f32(op, aName, a);
        f32(op, "dy", dy);
        same(op, a, dy);
        Tensor dx = Tensor.uninitialized(a.shape());
        kernel.apply(a.floats(), a.offset(), dy.floats(), dy.offset(), dx.floats(), 0, a.numel());
        return dx;
    }

    @Override
    public Tensor relu2(Tensor x) {
        return map("relu2", x, Elementwise::relu2);
    }

    @Override
    public Tensor relu2Backward(Tensor x, Tensor dy) {
        return mapGrad("relu2Backward", "x", x, dy, Elementwise::relu2Backward);
    }

    @Override
    public Tensor sigmoid(Tensor x) {
        return map("sigmoid", x, Elementwise::sigmoid);
    }

    @Override
    public Tensor sigmoidBackward(Tensor y, Tensor dy) {
        return mapGrad("sigmoidBackward", "y", y, dy, Elementwise::sigmoidBackward);
    }

    @Override
    public Tensor softcap(Tensor x, float cap) {
        positiveCap("softcap", cap);
        return map("softcap", x, (a, ao, y, yo, n) -> Elementwise.softcap(a, ao, y, yo, n, cap));
    }

    @Override
    public Tensor softcapBackward(Tensor x, Tensor dy, float cap) {
        positiveCap("softcapBackward", cap);
        return mapGrad("softcapBackward", "x", x, dy,
                (a, ao, g, go, dx, dxo, n) -> Elementwise.softcapBackward(a, ao, g, go, dx, dxo, n, cap));
    }

    // ------------------------------------------------------------------ elementwise with broadcasting

    private static Tensor binary(String op, int code, Tensor a, Tensor b) {
        f32(op, "a", a);
        f32(op, "b", b);
        int[] out = OpChecks.broadcast(op, a, b);
        Tensor c = Tensor.uninitialized(out);
        Broadcast.binary(code, a.floats(), a.offset(), a.shape(), b.floats(), b.offset(), b.shape(), c.floats(), 0, out);
        return c;
    }

    @Override
    public Tensor add(Tensor a, Tensor b) {
        return binary("add", Broadcast.ADD, a, b);
    }

    @Override
    public Tensor mul(Tensor a, Tensor b) {
        return binary("mul", Broadcast.MUL, a, b);
    }

    @Override
    public Tensor div(Tensor a, Tensor b) {
        return binary("div", Broadcast.DIV, a, b);
    }

    @Override
    public Tensor sqrt(Tensor x) {
        return map("sqrt", x, (a, ao, y, yo, n) -> Elementwise.sqrt(a, ao, y, yo, n, false));
    }

    @Override
    public Tensor rsqrt(Tensor x) {
        return map("rsqrt", x, (a, ao, y, yo, n) -> Elementwise.sqrt(a, ao, y, yo, n, true));
    }

    @Override
    public Tensor sumToShape(Tensor x, int... shape) {
        f32("sumToShape", "x", x);
        OpChecks.sumToShape(x, shape);
        Tensor out = Tensor.zeros(shape);
        Broadcast.sumTo(x.floats(), x.offset(), x.shape(), out.floats(), 0, shape);
        return out;
    }

    @Override
    public Tensor scale(Tensor x, float s) {
        f32("scale", "x", x);
        Tensor y = Tensor.uninitialized(x.shape());
        Elementwise.axpby(s, x.floats(), x.offset(), 0f, null, 0, y.floats(), 0, x.numel());
        return y;
    }

    @Override
    public void axpy(float alpha, Tensor x, Tensor y) {
        f32("axpy", "x", x);
        f32("axpy", "y", y);
        same("axpy", x, y);
        Elementwise.axpby(alpha, x.floats(), x.offset(), 1f, y.floats(), y.offset(), y.floats(), y.offset(), x.numel());
    }

    @Override
    public Tensor axpby(float a, Tensor x, float b, Tensor y) {
        f32("axpby", "x", x);
        f32("axpby", "y", y);
        same("axpby", x, y);
        Tensor out = Tensor.uninitialized(x.shape());
        if (b == 0f) {
            Elementwise.axpby(a, x.floats(), x.offset(), 0f, null, 0, out.floats(), 0, x.numel());
        } else {
            Elementwise.axpby(a, x.floats(), x.offset(), b, y.floats(), y.offset(), out.floats(), 0, x.numel());
        }
        return out;
    }

    private static float oneElement(String op, String name, Tensor s) {
        f32(op, name, s);
        OpChecks.oneElement(op, name, s);
        return s.item();
    }

    @Override
    public Tensor lambdaMix(Tensor a, Tensor x, Tensor b, Tensor x0) {
        float av = oneElement("lambdaMix", "a", a), bv = oneElement("lambdaMix", "b", b);
        f32("lambdaMix", "x", x);
        f32("lambdaMix", "x0", x0);
        same("lambdaMix", x, x0);
        Tensor y = Tensor.uninitialized(x.shape());
        Elementwise.axpby(av, x.floats(), x.offset(), bv, x0.floats(), x0.offset(), y.floats(), 0, x.numel());
        return y;
    }

    @Override
    public MixGrads lambdaMixBackward(Tensor dy, Tensor a, Tensor x, Tensor b, Tensor x0) {
        String op = "lambdaMixBackward";
        float av = oneElement(op, "a", a), bv = oneElement(op, "b", b);
        f32(op, "dy", dy);
        f32(op, "x", x);
        f32(op, "x0", x0);
        same(op, dy, x);
        same(op, dy, x0);
        Tensor da = Tensor.zeros(a.shape()), db = Tensor.zeros(b.shape());
        da.floats()[0] = (float) Reduce.dotParallel(dy.floats(), dy.offset(), x.floats(), x.offset(), x.numel());
        db.floats()[0] = (float) Reduce.dotParallel(dy.floats(), dy.offset(), x0.floats(), x0.offset(), x.numel());
        return new MixGrads(da, scale(dy, av), db, scale(dy, bv));
    }

    @Override
    public Tensor lerp(Tensor a, Tensor b, float w) {
        f32("lerp", "a", a);
        f32("lerp", "b", b);
        same("lerp", a, b);
        Tensor out = Tensor.uninitialized(a.shape());
        Elementwise.lerp(a.floats(), a.offset(), b.floats(), b.offset(), out.floats(), 0, a.numel(), w);
        return out;
    }

    @Override
    public Tensor clamp(Tensor x, float lo, float hi) {
        f32("clamp", "x", x);
        OpChecks.clamp(x, lo, hi);
        Tensor y = Tensor.uninitialized(x.shape());
        Elementwise.clamp(x.floats(), x.offset(), y.floats(), 0, x.numel(), lo, hi);
        return y;
    }

    // ------------------------------------------------------------------ reductions

    @Override
    public Tensor dot(Tensor a, Tensor b) {
        f32("dot", "a", a);
        f32("dot", "b", b);
        same("dot", a, b);
        return Tensor.scalar((float) Reduce.dotParallel(a.floats(), a.offset(), b.floats(), b.offset(), a.numel()));
    }

    @Override
    public Tensor rowNorms(Tensor x) {
        f32("rowNorms", "x", x);
        OpChecks.rowNorms(x);
        Tensor out = Tensor.zeros(dropLast(x));
        Reduce.rowNorms(x.floats(), x.offset(), out.floats(), 0, x.rows(), x.cols());
        return out;
    }

    @Override
    public Tensor argmax(Tensor x) {
        f32("argmax", "x", x);
        OpChecks.argmax(x);
        Tensor out = Tensor.zeros(DType.I32, dropLast(x));
        Reduce.argmax(x.floats(), x.offset(), out.ints(), 0, x.rows(), x.cols());
        return out;
    }

    // ------------------------------------------------------------------ layout

    @Override
    public Tensor narrow(Tensor x, int dim, int start, int length) {
        f32("narrow", "x", x);
        int d = OpChecks.narrow(x, dim, start, length), size = x.shape(d);
        int[] s = x.shape();
        s[d] = length;
        Tensor y = Tensor.uninitialized(s);
        Layout.copyRuns(x.floats(), x.offset(), size, start, y.floats(), 0, length, 0, length, outer(s, d), inner(s, d));
        return y;
    }

    @Override
    public Tensor narrowBackward(Tensor dy, int dim, int start, int fullSize) {
        f32("narrowBackward", "dy", dy);
        int d = OpChecks.narrowBackward(dy, dim, start, fullSize), len = dy.shape(d);
        int[] s = dy.shape();
        s[d] = fullSize;
        Tensor dx = Tensor.zeros(s);
        Layout.copyRuns(dy.floats(), dy.offset(), len, 0, dx.floats(), 0, fullSize, start, len, outer(s, d), inner(s, d));
        return dx;
    }

    @Override
    public Tensor concat(int dim, Tensor... parts) {
        for (Tensor p : parts) f32("concat", "part", p);
        int[] s = OpChecks.concat(dim, parts);
        int d = dim("concat", parts[0], dim), total = s[d];
        Tensor out = Tensor.uninitialized(s);
        int at = 0;
        for (Tensor p : parts) {
            int len = p.shape(d);
            Layout.copyRuns(p.floats(), p.offset(), len, 0, out.floats(), 0, total, at, len, outer(s, d), inner(s, d));
            at += len;
        }
        return out;
    }

    @Override
    public void narrowAssign(Tensor dst, int dim, int start, Tensor src) {
        f32("narrowAssign", "dst", dst);
        f32("narrowAssign", "src", src);
        int d = OpChecks.narrowAssign("narrowAssign", dst, dim, start, src);
        int len = src.shape(d), size = dst.shape(d);
        int[] s = dst.shape();
        Layout.copyRuns(src.floats(), src.offset(), len, 0, dst.floats(), dst.offset(), size, start, len, outer(s, d), inner(s, d));
    }

    // ------------------------------------------------------------------ embedding

    /** ids as an int array starting at index 0. */
    private static int[] ids(String op, Tensor ids) {
        if (ids.dtype() != DType.I32) throw new IllegalArgumentException(op + ": ids " + ids + " must be I32");
        return ids.offset() == 0 && ids.ints().length == ids.numel() ? ids.ints() : ids.toIntArray();
    }

    @Override
    public Tensor embedding(Tensor table, Tensor ids) {
        f32("embedding", "table", table);
        int[] s = OpChecks.embedding(table, ids);
        int[] id = ids("embedding", ids);
        int v = table.shape(0), e = table.shape(1);
        try {
            Embedding.checkIds(id, 0, id.length, v, "embedding");
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(ex.getMessage() + " (table " + table + ", ids " + ids + ")", ex);
        }
        Tensor out = Tensor.uninitialized(s);
        Embedding.forward(table.floats(), table.offset(), id, 0, id.length, e, out.floats(), 0);
        return out;
    }

    @Override
    public void embeddingBackward(Tensor dy, Tensor ids, Tensor dTable) {
        String op = "embeddingBackward";
        f32(op, "dy", dy);
        f32(op, "dTable", dTable);
        OpChecks.embeddingBackward(dy, ids, dTable);
        int[] id = ids(op, ids);
        try {
            Embedding.checkIds(id, 0, id.length, dTable.shape(0), op);
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(ex.getMessage() + " (dTable " + dTable + ", ids " + ids + ")", ex);
        }
        Embedding.backward(dy.floats(), dy.offset(), id, 0, id.length, dTable.shape(1), dTable.floats(), dTable.offset());
    }

    // ------------------------------------------------------------------ attention

    /** The Attention kernels take whole arrays: pass the storage when it is exactly this tensor, else a copy. */
    private static float[] dense(Tensor t) {
        float[] a = t.floats();
        return t.offset() == 0 && a.length == t.numel() ? a : t.toFloatArray();
    }

    private static void checkQkv(String op, Tensor q, Tensor k, Tensor v) {
        f32(op, "q", q);
        f32(op, "k", k);
        f32(op, "v", v);
        OpChecks.qkv(op, q, k, v);
    }

    @Override
    public AttentionOut attention(Tensor q, Tensor k, Tensor v, int window, float scale) {
        checkQkv("attention", q, k, v);
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        Tensor y = Tensor.uninitialized(q.shape()), lse = Tensor.uninitialized(b, h, t);
        Attention.forward(dense(q), dense(k), dense(v), y.floats(), lse.floats(), b, t, h, kv, d, window, scale);
        return new AttentionOut(y, lse);
    }

    @Override
    public AttentionGrads attentionBackward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale) {
        String op = "attentionBackward";
        checkQkv(op, q, k, v);
        f32(op, "y", y);
        f32(op, "lse", lse);
        f32(op, "dy", dy);
        OpChecks.attentionBackward(op, q, y, lse, dy);
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        Tensor dq = Tensor.uninitialized(q.shape()), dk = Tensor.uninitialized(k.shape()), dv = Tensor.uninitialized(v.shape());
        Attention.backward(dense(q), dense(k), dense(v), dense(y), dense(lse), dense(dy), dq.floats(), dk.floats(), dv.floats(),
                b, t, h, kv, d, window, scale);
        return new AttentionGrads(dq, dk, dv);
    }

    @Override
    public Tensor attentionCached(Tensor q, Tensor kCache, Tensor vCache, int pos, int window, float scale) {
        String op = "attentionCached";
        f32(op, "q", q);
        f32(op, "kCache", kCache);
        f32(op, "vCache", vCache);
        OpChecks.caches(op, q, kCache, vCache);
        int b = q.shape(0), tq = q.shape(1), h = q.shape(2), d = q.shape(3), tmax = kCache.shape(1), kv = kCache.shape(2);
        OpChecks.attentionCached(b, tq, tmax, pos, h, kv, d, scale); // sizes, GQA split, positions within the cache, scale
        Tensor y = Tensor.uninitialized(q.shape());
        Attention.forwardCached(dense(q), dense(kCache), dense(vCache), y.floats(), b, tq, tmax, pos, h, kv, d, window, scale);
        return y;
    }

    // ------------------------------------------------------------------ loss

    private static int[] targets(String op, Tensor targets, int n, Tensor other) {
        OpChecks.targets(op, targets, n, other);
        return ids(op, targets);
    }

    /** Row weight for the reductions and the count used by MEAN. */
    private static float uniformWeight(int[] t, Reduction r) {
        if (r != Reduction.MEAN) return 1f;
        int count = 0;
        for (int x : t) if (x != -1) count++;
        return count == 0 ? 0f : 1f / count;
    }

    private static Tensor reduceLoss(float[] rowLoss, Reduction r, int[] t) {
        if (r == Reduction.NONE) return Tensor.of(rowLoss);
        double s = 0;
        for (float l : rowLoss) s += l;
        if (r == Reduction.SUM) return Tensor.scalar((float) s);
        int count = 0;
        for (int x : t) if (x != -1) count++;
        return Tensor.scalar(count == 0 ? 0f : (float) (s / count));
    }

    @Override
    public Loss crossEntropy(Tensor logits, Tensor targets, float cap, Reduction reduction, boolean withGrad) {
        String op = "crossEntropy";
        f32(op, "logits", logits);
        OpChecks.logits(op, logits, targets);
        int n = logits.shape(0), v = logits.shape(1);
        int[] t = targets(op, targets, n, logits);
        float[] rowLoss = new float[n];
        Tensor g = withGrad ? Tensor.uninitialized(n, v) : null;
        CrossEntropy.rows(logits.floats(), logits.offset(), n, v, t, 0, cap, uniformWeight(t, reduction), null, 0,
                rowLoss, 0, g == null ? null : g.floats(), 0, 0, op + " " + logits);
        return new Loss(reduceLoss(rowLoss, reduction, t), g);
    }

    private static void checkLinearCe(String op, Tensor x, Tensor w, int vocab) {
        f32(op, "x", x);
        f32(op, "w", w);
        OpChecks.linearCe(op, x, w, vocab);
    }

    @Override
    public LinearLoss linearSoftcapCrossEntropy(Tensor x, Tensor w, Tensor targets, int vocab, float cap,
                                                Reduction reduction, boolean withGrad) {
        String op = "linearSoftcapCrossEntropy";
        checkLinearCe(op, x, w, vocab);
        int n = x.shape(0), c = x.shape(1), vpad = w.shape(0);
        int[] t = targets(op, targets, n, x);
        float[] rowLoss = new float[n];
        Tensor dx = withGrad ? Tensor.uninitialized(n, c) : null, dW = withGrad ? Tensor.uninitialized(vpad, c) : null;
        if (n > 0) {
            CrossEntropy.linear(x.floats(), x.offset(), w.floats(), w.offset(), n, c, vpad, vocab, t, 0, cap,
                    uniformWeight(t, reduction), null, rowLoss, dx == null ? null : dx.floats(), dW == null ? null : dW.floats(),
                    0, op + " x " + x + " W " + w);
        } else if (dW != null) {
            dW.fill(0f); // no rows: a sum over nothing, and CrossEntropy.linear (which zeroes dW first) never ran
        }
        return new LinearLoss(reduceLoss(rowLoss, reduction, t), dx, dW);
    }

    @Override
    public LinearLoss linearSoftcapCrossEntropyBackward(Tensor x, Tensor w, Tensor targets, int vocab, float cap, Tensor rowGrad) {
        String op = "linearSoftcapCrossEntropyBackward";
        checkLinearCe(op, x, w, vocab);
        int n = x.shape(0), c = x.shape(1), vpad = w.shape(0);
        int[] t = targets(op, targets, n, x);
        f32(op, "rowGrad", rowGrad);
        OpChecks.rowGrad(op, x, rowGrad);
        float[] weights = rowGrad.toFloatArray();
        float[] rowLoss = new float[n];
        Tensor dx = Tensor.uninitialized(n, c), dW = Tensor.uninitialized(vpad, c);
        if (n > 0) {
            CrossEntropy.linear(x.floats(), x.offset(), w.floats(), w.offset(), n, c, vpad, vocab, t, 0, cap, 0f, weights,
                    rowLoss, dx.floats(), dW.floats(), 0, op + " x " + x + " W " + w);
        } else {
            dW.fill(0f); // no rows: a sum over nothing, and CrossEntropy.linear (which zeroes dW first) never ran
        }
        return new LinearLoss(Tensor.of(rowLoss), dx, dW);
    }

    @Override
    public void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float decay, float w1, float w2, float bias2, float eps, float stepSize) {
        for (Tensor t : new Tensor[] {p, g, m, v}) f32("adamw", "p, g, m and v", t);
        OpChecks.sameCount("adamw", p, g, m, v);
        if (m.offset() != v.offset()) throw OpChecks.bad("adamw", "m and v must start at the same offset (the kernel walks them together)", m, v);
        AdamWKernel.update(p.floats(), p.offset(), g.floats(), g.offset(), m.floats(), v.floats(), m.offset(), p.numel(), decay, w1, w2, bias2,
                eps, stepSize);
    }

    // ------------------------------------------------------------------ dtype, checks

    @Override
    public Tensor toBf16(Tensor x) {
        if (x.dtype() == DType.BF16) return x.copy();
        f32("toBf16", "x", x);
        Tensor y = Tensor.zeros(DType.BF16, x.shape());
        Layout.toBf16(x.floats(), x.offset(), y.shorts(), 0, x.numel());
        return y;
    }

    // ------------------------------------------------------------------ checks

    private static void f32(String op, String name, Tensor t) {
        if (t == null) throw new IllegalArgumentException(op + ": " + name + " is null");
        if (t.dtype() != DType.F32) throw new IllegalArgumentException(op + ": " + name + " " + t + " must be F32");
    }
}
