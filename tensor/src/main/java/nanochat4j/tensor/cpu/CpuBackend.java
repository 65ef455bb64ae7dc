package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.OpChecks.*;

import java.util.Arrays;
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

    /** Resolved dims of a (batched) matmul. */
    private record MM(int batch, int m, int n, int k, int strideA, int strideB, int[] outShape) {}

    private static MM plan(String op, Tensor a, boolean transA, Tensor b, boolean transB) {
        f32(op, "a", a);
        f32(op, "b", b);
        if (a.rank() < 2 || b.rank() < 2) throw bad(op, "operands must be at least 2-d", a, b);
        int ar = a.rank(), br = b.rank();
        int m = transA ? a.shape(-1) : a.shape(-2), ka = transA ? a.shape(-2) : a.shape(-1);
        int kb = transB ? b.shape(-1) : b.shape(-2), n = transB ? b.shape(-2) : b.shape(-1);
        if (ka != kb) throw bad(op, "inner dims differ (" + ka + " vs " + kb + ", transA=" + transA + ", transB=" + transB + ")", a, b);
        int[] aLead = Arrays.copyOf(a.shape(), ar - 2), bLead = Arrays.copyOf(b.shape(), br - 2);
        int[] lead;
        int batch;
        if (br == 2) {
            lead = aLead;
        } else if (ar == 2) {
            lead = bLead;
        } else if (Arrays.equals(aLead, bLead)) {
            lead = aLead;
        } else {
            throw bad(op, "batch dims differ", a, b);
        }
        batch = Tensor.numel(lead);
        int[] out = Arrays.copyOf(lead, lead.length + 2);
        out[lead.length] = m;
        out[lead.length + 1] = n;
        return new MM(batch, m, n, ka, ar == 2 ? 0 : m * ka, br == 2 ? 0 : ka * n, out);
    }

    @Override
    public Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB) {
        MM p = plan("matmul", a, transA, b, transB);
        Tensor c = Tensor.uninitialized(p.outShape);
        int lda = transA ? p.m : p.k, ldb = transB ? p.k : p.n;
        if (p.batch == 0 || p.m == 0 || p.n == 0) return c;
        if (p.strideB == 0 && p.strideA != 0 && !transA) {
            // shared 2-d B and row-major A: the whole batch is one tall GEMM (better blocking than batch small ones)
            Gemm.sgemm(false, transB, p.batch * p.m, p.n, p.k, 1f, a.floats(), a.offset(), lda,
                    b.floats(), b.offset(), ldb, 0f, c.floats(), 0, p.n);
        } else if (p.batch == 1) {
            Gemm.sgemm(transA, transB, p.m, p.n, p.k, 1f, a.floats(), a.offset(), lda,
                    b.floats(), b.offset(), ldb, 0f, c.floats(), 0, p.n);
        } else {
            Gemm.sgemmBatched(p.batch, transA, transB, p.m, p.n, p.k, 1f, a.floats(), a.offset(), lda, p.strideA,
                    b.floats(), b.offset(), ldb, p.strideB, 0f, c.floats(), 0, p.n, p.m * p.n);
        }
        return c;
    }

    @Override
    public Tensor linear(Tensor x, Tensor w) {
        return timesWeight("linear", "x", x, w, true, "need x (..., in) and W (out, in)");
    }

    @Override
    public Tensor linearBackwardInput(Tensor dy, Tensor w) {
        return timesWeight("linearBackwardInput", "dy", dy, w, false, "need dy (..., out) and W (out, in)");
    }

    /** x (..., k)·op(W) → (..., n): op(W) = Wᵀ for linear (W is (n, k)), W itself for its input gradient (W is (k, n)). */
    private static Tensor timesWeight(String op, String xName, Tensor x, Tensor w, boolean transW, String need) {
        f32(op, xName, x);
        f32(op, "w", w);
        int kDim = transW ? 1 : 0;
        if (w.rank() != 2 || x.rank() < 1 || x.shape(-1) != w.shape(kDim)) throw bad(op, need, x, w);
        int n = w.shape(1 - kDim), k = w.shape(kDim), rows = x.rows();
        int[] ys = x.shape();
        ys[ys.length - 1] = n;
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
        if (dW.rank() != 2 || dy.rank() < 1 || x.rank() < 1 || dy.shape(-1) != dW.shape(0) || x.shape(-1) != dW.shape(1)
                || dy.rows() != x.rows()) {
            throw bad(op, "need dy (..., out), x (..., in) with the same rows, dW (out, in)", dy, x, dW);
        }
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
        if (x.rank() != 4 || x.shape(3) % 2 != 0) throw bad(op, "x must be (B, T, H, D) with even D", x);
        int b = x.shape(0), t = x.shape(1), h = x.shape(2), d = x.shape(3);
        if (cos.rank() != 2 || !cos.sameShape(sin) || cos.shape(1) != d / 2) {
            throw bad(op, "cos/sin must both be (Tmax, D/2)", x, cos, sin);
        }
        if (offset < 0 || offset + t > cos.shape(0)) {
            throw bad(op, "positions " + offset + ".." + (offset + t - 1) + " exceed the tables' " + cos.shape(0) + " rows", x, cos);
        }
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
        int[] out = Broadcast.shape(a.shape(), b.shape());
        if (out == null) throw bad(op, "shapes do not broadcast", a, b);
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
        int[] bs = Broadcast.shape(x.shape(), shape);
        if (bs == null || !Arrays.equals(bs, x.shape())) {
            throw new IllegalArgumentException("sumToShape: " + Arrays.toString(shape) + " does not broadcast to x " + x);
        }
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
        if (s.numel() != 1) throw bad(op, name + " must have exactly one element", s);
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
        if (!(lo <= hi)) throw new IllegalArgumentException("clamp: lo " + lo + " > hi " + hi + " for " + x);
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
        if (x.rank() < 1) throw bad("rowNorms", "needs at least 1 dim", x);
        Tensor out = Tensor.zeros(dropLast(x));
        Reduce.rowNorms(x.floats(), x.offset(), out.floats(), 0, x.rows(), x.cols());
        return out;
    }

    @Override
    public Tensor argmax(Tensor x) {
        f32("argmax", "x", x);
        if (x.rank() < 1 || x.cols() == 0) throw bad("argmax", "needs a non-empty last dim", x);
        Tensor out = Tensor.zeros(DType.I32, dropLast(x));
        Reduce.argmax(x.floats(), x.offset(), out.ints(), 0, x.rows(), x.cols());
        return out;
    }

    // ------------------------------------------------------------------ layout

    @Override
    public Tensor narrow(Tensor x, int dim, int start, int length) {
        f32("narrow", "x", x);
        int d = dim("narrow", x, dim);
        int size = x.shape(d);
        if (start < 0 || length < 0 || start + length > size) {
            throw bad("narrow", "range [" + start + ", " + (start + length) + ") outside dim " + d + " of size " + size, x);
        }
        int[] s = x.shape();
        s[d] = length;
        Tensor y = Tensor.uninitialized(s);
        Layout.copyRuns(x.floats(), x.offset(), size, start, y.floats(), 0, length, 0, length, outer(s, d), inner(s, d));
        return y;
    }

    @Override
    public Tensor narrowBackward(Tensor dy, int dim, int start, int fullSize) {
        f32("narrowBackward", "dy", dy);
        int d = dim("narrowBackward", dy, dim);
        int len = dy.shape(d);
        if (start < 0 || start + len > fullSize) {
            throw bad("narrowBackward", "range [" + start + ", " + (start + len) + ") outside full size " + fullSize, dy);
        }
        int[] s = dy.shape();
        s[d] = fullSize;
        Tensor dx = Tensor.zeros(s);
        Layout.copyRuns(dy.floats(), dy.offset(), len, 0, dx.floats(), 0, fullSize, start, len, outer(s, d), inner(s, d));
        return dx;
    }

    @Override
    public Tensor concat(int dim, Tensor... parts) {
        if (parts.length == 0) throw new IllegalArgumentException("concat: no tensors");
        Tensor first = parts[0];
        int d = dim("concat", first, dim);
        int total = 0;
        for (Tensor p : parts) {
            f32("concat", "part", p);
            if (p.rank() != first.rank()) throw bad("concat", "ranks differ", parts);
            for (int i = 0; i < p.rank(); i++) {
                if (i != d && p.shape(i) != first.shape(i)) throw bad("concat", "shapes differ outside dim " + d, parts);
            }
            total += p.shape(d);
        }
        int[] s = first.shape();
        s[d] = total;
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
        int d = dim("narrowAssign", dst, dim);
        if (src.rank() != dst.rank()) throw bad("narrowAssign", "ranks differ", dst, src);
        for (int i = 0; i < dst.rank(); i++) {
            if (i != d && src.shape(i) != dst.shape(i)) throw bad("narrowAssign", "shapes differ outside dim " + d, dst, src);
        }
        int len = src.shape(d), size = dst.shape(d);
        if (start < 0 || start + len > size) {
            throw bad("narrowAssign", "range [" + start + ", " + (start + len) + ") outside dim " + d + " of size " + size, dst, src);
        }
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
        if (table.rank() != 2) throw bad("embedding", "table must be (V, E)", table, ids);
        int[] id = ids("embedding", ids);
        int v = table.shape(0), e = table.shape(1);
        try {
            Embedding.checkIds(id, 0, id.length, v, "embedding");
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException(ex.getMessage() + " (table " + table + ", ids " + ids + ")", ex);
        }
        int[] s = Arrays.copyOf(ids.shape(), ids.rank() + 1);
        s[ids.rank()] = e;
        Tensor out = Tensor.uninitialized(s);
        Embedding.forward(table.floats(), table.offset(), id, 0, id.length, e, out.floats(), 0);
        return out;
    }

    @Override
    public void embeddingBackward(Tensor dy, Tensor ids, Tensor dTable) {
        String op = "embeddingBackward";
        f32(op, "dy", dy);
        f32(op, "dTable", dTable);
        if (dTable.rank() != 2 || dy.rank() != ids.rank() + 1 || dy.cols() != dTable.shape(1)
                || !Arrays.equals(Arrays.copyOf(dy.shape(), ids.rank()), ids.shape())) {
            throw bad(op, "need dy (ids..., E), dTable (V, E)", dy, ids, dTable);
        }
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
        if (q.rank() != 4 || k.rank() != 4 || !k.sameShape(v)) throw bad(op, "need q (B,T,H,D), k and v (B,T,KV,D)", q, k, v);
        if (q.shape(0) != k.shape(0) || q.shape(1) != k.shape(1) || q.shape(3) != k.shape(3)
                || k.shape(2) == 0 || q.shape(2) % k.shape(2) != 0) {
            throw bad(op, "B, T, D must match and H must be a multiple of KV", q, k, v);
        }
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
        int b = q.shape(0), t = q.shape(1), h = q.shape(2), kv = k.shape(2), d = q.shape(3);
        if (!y.sameShape(q) || !dy.sameShape(q) || !lse.hasShape(b, h, t)) throw bad(op, "need y, dy like q and lse (B,H,T)", q, y, dy, lse);
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
        if (q.rank() != 4 || kCache.rank() != 4 || !kCache.sameShape(vCache)) {
            throw bad(op, "need q (B,Tq,H,D), caches (B,Tmax,KV,D)", q, kCache, vCache);
        }
        int b = q.shape(0), tq = q.shape(1), h = q.shape(2), d = q.shape(3), tmax = kCache.shape(1), kv = kCache.shape(2);
        if (kCache.shape(0) != b || kCache.shape(3) != d || kv == 0 || h % kv != 0) {
            throw bad(op, "B and D must match and H must be a multiple of KV", q, kCache, vCache);
        }
        if (pos < 0 || pos + tq > tmax) throw bad(op, "positions " + pos + ".." + (pos + tq - 1) + " exceed the cache length " + tmax, q, kCache);
        Tensor y = Tensor.uninitialized(q.shape());
        Attention.forwardCached(dense(q), dense(kCache), dense(vCache), y.floats(), b, tq, tmax, pos, h, kv, d, window, scale);
        return y;
    }

    // ------------------------------------------------------------------ loss

    private static int[] targets(String op, Tensor targets, int n, Tensor other) {
        if (targets.rank() != 1 || targets.shape(0) != n) throw bad(op, "targets must be (" + n + ")", other, targets);
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
        if (logits.rank() != 2 || logits.shape(1) == 0) throw bad(op, "logits must be (N, V) with V > 0", logits, targets);
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
        if (rowGrad.numel() != n) throw bad(op, "rowGrad must have N elements", x, rowGrad);
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
