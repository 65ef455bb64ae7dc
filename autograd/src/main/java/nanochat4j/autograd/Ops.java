package nanochat4j.autograd;

import java.util.Arrays;
import java.util.function.Consumer;
import java.util.function.UnaryOperator;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;

/**
 * The differentiable ops of nanochat's GPT, each ONE tape node whose backward calls the tensor backend's backward
 * kernels (no graphs of scalar ops). Forward and backward sit side by side; shapes in the comments.
 * <ul>
 *   <li>parameters' weight gradients (linear, embedding, fused lm_head loss) are accumulated straight into the
 *       parameter's persistent gradient, without a temporary;</li>
 *   <li>the lm_head loss is the backend's chunked linear+softcap+cross-entropy, so (B·T)×vocab logits never exist
 *       whole in training;</li>
 *   <li>the smear gate, value-embedding gate, lambda mix and backout are single nodes too (a few backend calls each);</li>
 *   <li>a node keeps for its backward what that backward reads and no more: the residual branches, the q and k
 *       projections with RoPE and QK-norm (whose backward starts from their output) and the value embedding's gather
 *       are single nodes that give their intermediates back at once (on a GPU, straight to the allocator) and
 *       recompute the cheap ones in backward (relu², the MLP's norm, the gather), and every
 *       closure gives back what it kept once it has run. A training step's activation memory is then what the
 *       backward needs (ActivationMemoryTest holds it to a bound) instead of every intermediate.</li>
 * </ul>
 */
public final class Ops {
    private Ops() {}

    /**
     * The backend of the device {@code v} lives on: every op computes where its first input is (the CPU backend for
     * heap tensors, the CUDA backend for device tensors), so the model code never names a device.
     */
    static Backend be(Var v) {
        return Backend.of(v.value);
    }

    private static Var rec(String op, Tensor out, Node.Backward bw, Var... inputs) {
        return Tape.current().record(op, out, inputs, bw);
    }

    /**
     * A node whose backward also reads its own output, as {@code out} (through {@link #read}, like an input's value:
     * {@link Autograd#shelve} may have replaced it).
     */
    private static Var recReadingOutput(String op, Tensor out, BackwardOfOutput bw, Var... inputs) {
        return recReadingOutput(inputs, op, out, bw, inputs);
    }

    /** {@link #recReadingOutput} whose backward reads the values of {@code reads} only of its inputs (see {@link #recReading}). */
    private static Var recReadingOutput(Var[] reads, String op, Tensor out, BackwardOfOutput bw, Var... inputs) {
        Var[] self = new Var[1];
        self[0] = rec(op, out, dy -> bw.apply(dy, self[0]), inputs);
        if (self[0].node != null) {
            self[0].node.readsOutput = true;
            self[0].node.reads = reads;
        }
        return self[0];
    }

    /**
     * A node whose backward reads the values of {@code reads} only, of all its inputs: {@link Autograd#shelve} gives a
     * value no backward reads back without keeping a copy (a value read here but left out is poison on the stand-in and
     * garbage on a GPU, so say fewer only where the closure plainly reads none of the others).
     */
    private static Var recReading(Var[] reads, String op, Tensor out, Node.Backward bw, Var... inputs) {
        Var r = rec(op, out, bw, inputs);
        if (r.node != null) r.node.reads = reads;
        return r;
    }

    @FunctionalInterface
    private interface BackwardOfOutput {
        void apply(Tensor dy, Var out);
    }

    private static void acc(Var v, Tensor g) {
        Tape.accumulate(v, g);
    }

    /**
     * v's value in fp32 for a backward: the value itself, or a new fp32 copy where {@link Autograd#shelve} kept it in
     * bf16 (on a GPU), which {@link #done} gives back.
     */
    private static Tensor read(Backend be, Var v) {
        return be.savedValue(v.value);
    }

    /** Gives back what {@link #read} made for v (nothing when it read the value itself). */
    private static void done(Tensor read, Var v) {
        if (read != v.value) Recycler.give(read);
    }

    /** The backward of a one-input op whose gradient is a kernel of x's value: x read in fp32, the gradient sent to x. */
    private static void accFromInput(Backend be, Var x, UnaryOperator<Tensor> gradOfValue) {
        Tensor xv = read(be, x);
        acc(x, gradOfValue.apply(xv));
        done(xv, x);
    }

    // ---------------------------------------------------------------- linear algebra

    /** y = x·Wᵀ. x (..., in), w (out, in) → (..., out). dx = dy·W, dW += dyᵀ·x. */
    public static Var linear(Var x, Var w) {
        Backend be = be(x);
        return rec("linear", be.linear(x.value, w.value), dy -> linearBackward(be, dy, x, w), x, w);
    }

    /** The gradients of x·Wᵀ for dy: dx = dy·W (when x needs one), dW += dyᵀ·x. */
    private static void linearBackward(Backend be, Tensor dy, Var x, Var w) {
        if (x.requiresGrad) acc(x, be.linearBackwardInput(dy, w.value));
        weightGrad(be, dy, x.value, w);   // shelved or not: the weight-gradient GEMM takes x as the backend kept it
    }

    /**
     * dW += dyᵀ·in: straight into w's persistent gradient when it is a parameter, else through a new tensor. in may be a
     * shelved value (see {@link Backend#linearBackwardWeight}).
     */
    private static void weightGrad(Backend be, Tensor dy, Tensor in, Var w) {
        if (!w.requiresGrad) return;
        Tensor sink = Tape.sink(w);
        if (sink != null) {
            be.linearBackwardWeight(dy, in, sink, true);
        } else {
            Tensor dW = be.zeros(w.value.shape());
            be.linearBackwardWeight(dy, in, dW, false);
            acc(w, dW);
        }
    }

    /**
     * x + y·Wᵀ: a residual branch's output projection added to the stream, one node that keeps y (its backward's
     * only activation) and gives the product back at once. {@code product}, when not null, receives the product
     * instead (tracing; it then stays). dx = dy, dy_y = dy·W, dW += dyᵀ·y.
     */
    public static Var linearResidual(Var x, Var y, Var w, Consumer<Tensor> product) {
        Backend be = be(x);
        Tensor p = be.linear(y.value, w.value);
        Tensor out = residual(be, x.value, p);
        release(p, product);
        return recReading(new Var[] {y, w}, "linear_residual", out, dy -> {
            acc(x, dy);
            linearBackward(be, dy, y, w);
        }, x, y, w);
    }

    /**
     * x + relu²(h·W_fcᵀ)·W_projᵀ with h = rms_norm(x): nanochat's MLP block on the stream x, one node that keeps only
     * a = h·W_fcᵀ besides x (as {@link Backend#saveForBackward} keeps it: in bf16 on a GPU under bf16 matmuls, as
     * nanochat's autocast does). h is recomputed in backward and so is relu²(a) (as large as a); the product goes back
     * at once (or to {@code product}, when not null, for tracing). With u = relu²(a): dx = dy + rms_norm's backward of
     * dh, dh = da·W_fc, da = 2·relu(a)·(dy·W_proj), dW_proj += dyᵀ·u, dW_fc += daᵀ·h.
     */
    public static Var mlpResidual(Var x, Var wFc, Var wProj, Consumer<Tensor> product) {
        Backend be = be(x);
        Tensor h = be.rmsNorm(x.value, 1f);
        Tensor a = be.linear(h, wFc.value);
        Recycler.give(h);
        Tensor u = be.relu2Operand(a);   // in bf16 where the GEMM reads bf16: one pass, not relu² then a cast
        Tensor p = be.linear(u, wProj.value);
        Recycler.give(u);
        Tensor out = residual(be, x.value, p);
        release(p, product);
        // for the backward (none where rec records no node: records is its test): in bf16 where activations are (a GPU
        // under bf16 matmuls), half of 4C
        Tensor kept = Tape.current().records(x, wFc, wProj) ? be.saveForBackward(a) : null;
        if (kept != a) Recycler.give(a);
        return rec("mlp_residual", out, dy -> {
            // in an order that keeps few 4C-wide tensors at once: at most three, where a block's backward peaks
            acc(x, dy);
            Tensor u2 = be.relu2Operand(kept);   // from the bf16 copy where there is one, never widened whole
            weightGrad(be, dy, u2, wProj);
            Recycler.give(u2);
            Tensor du = be.linearBackwardInput(dy, wProj.value);
            Tensor da = be.relu2Backward(kept, du);
            give(du, kept);
            Tensor h2 = be.rmsNorm(x.value, 1f);   // x as kept (shelved: bf16, widened in the kernel), not a widened copy
            weightGrad(be, da, h2, wFc);
            Recycler.give(h2);
            if (x.requiresGrad) {
                Tensor dh = be.linearBackwardInput(da, wFc.value);
                acc(x, be.rmsNormBackward(x.value, dh, 1f));
                Recycler.give(dh);
            }
            Recycler.give(da);
        }, x, wFc, wProj);
    }

    /** The stream a plus a branch's output b (same shapes). */
    private static Tensor residual(Backend be, Tensor a, Tensor b) {
        if (!Arrays.equals(a.shape(), b.shape())) {
            throw new IllegalArgumentException("residual add: shapes " + Arrays.toString(a.shape()) + " and " + Arrays.toString(b.shape()) + " differ");
        }
        return be.add(a, b);
    }

    /** An intermediate nothing reads again: to the tracer when there is one, else back to the pool now. */
    private static void release(Tensor t, Consumer<Tensor> tracer) {
        if (tracer != null) tracer.accept(t);
        else Recycler.give(t);
    }

    /** table (V, E) gathered by ids (any shape) → (ids..., E). dTable[ids] += dy (scatter-add). */
    public static Var embedding(Var table, Tensor ids) {
        Backend be = be(table);
        return rec("embedding", be.embedding(table.value, ids), dy -> embeddingGrad(be, dy, ids, table), table);
    }

    /** dTable[ids] += dy: straight into the table's persistent gradient when it is a parameter. */
    private static void embeddingGrad(Backend be, Tensor dy, Tensor ids, Var table) {
        Tensor sink = Tape.sink(table);
        if (sink != null) {
            be.embeddingBackward(dy, ids, sink);
        } else {
            Tensor dT = be.zeros(table.value.shape());
            be.embeddingBackward(dy, ids, dT);
            acc(table, dT);
        }
    }

    // ---------------------------------------------------------------- norms, rotary, activations

    /** scale·x/sqrt(mean(x²)+eps) over the last dim (nanochat's norm; QK-norm with scale 1.2). */
    public static Var rmsNorm(Var x, float scale) {
        Backend be = be(x);
        return rec("rms_norm", be.rmsNorm(x.value, scale), dy -> accFromInput(be, x, xv -> be.rmsNormBackward(xv, dy, scale)), x);
    }

    /**
     * {@link #rmsNorm} whose backward starts from its output y and each row's 1/rms instead of from x: it keeps y (which
     * the ops after it keep anyway: the projections of a block's input, the head) and not x, so x — the residual stream
     * — is read by no backward and goes back once the forward is past it ({@link Autograd#shelve}). dx = inv·(scale·dy −
     * y·Σ(dy·y)/(D·scale)), with 1/rms recomputed from x in the forward (as a (..., 1) tensor).
     */
    public static Var rmsNormOut(Var x, float scale) {
        Backend be = be(x);
        Backend.NormOut n = Tape.current().records(x) ? be.rmsNormKeepingInv(x.value, scale) : null;
        Tensor y = n != null ? n.y() : be.rmsNorm(x.value, scale), inv = n != null ? n.inv() : null;
        return recReadingOutput(new Var[0], "rms_norm_out", y, (dy, self) -> {
            Tensor dx = be.rmsNormBackwardFromOutput(dy, self.value, inv, scale);   // y as kept (shelved: bf16)
            Recycler.giveStorage(inv);
            acc(x, dx);
        }, x);
    }

    /** Rotary (halves, rotation by −θ) of x (B,T,H,D) at positions offset.. ; backward rotates dy by +θ. */
    public static Var rotary(Var x, Tensor cos, Tensor sin, int offset) {
        Backend be = be(x);
        return recReading(new Var[0], "rotary", be.rotary(x.value, cos, sin, offset), dy -> acc(x, be.rotaryBackward(dy, cos, sin, offset)), x);
    }

    /**
     * rms_norm(rotary(x·Wᵀ as (B,T,heads,D)))·scale: a q or k projection with RoPE and QK-norm, one node that keeps only
     * x (its input, which the other projections keep too), its output (which attention keeps) and each head's
     * 1/rms; neither the projection nor its rotation is kept. Backward from the output y: dr = inv·(scale·dy −
     * y·Σ_D(dy·y)/(D·scale)), dp = rotary's backward of dr (both {@link Backend#rotaryRmsNormBackward}), dx = dp·W,
     * dW += dpᵀ·x (see {@link #rmsNormOut}).
     */
    public static Var linearRotaryNorm(Var x, Var w, int heads, Tensor cos, Tensor sin, int offset, float scale) {
        Backend be = be(x);
        int[] xs = x.value.shape();
        if (xs.length != 3) throw new IllegalArgumentException("linear_rotary_norm: x must be (B,T,C), got " + Arrays.toString(xs));
        int b = xs[0], t = xs[1], out = w.value.shape(0);
        if (heads < 1 || out % heads != 0) throw new IllegalArgumentException("linear_rotary_norm: " + out + " outputs do not split into " + heads + " heads");
        int d = out / heads;
        Tensor p = be.linear(x.value, w.value);                                    // (B,T,heads·D)
        Backend.NormOut n = be.rotaryRmsNorm(p.reshape(b, t, heads, d), cos, sin, offset, scale, Tape.current().records(x, w));
        Recycler.give(p);
        Tensor y = n.y(), invRows = n.inv();
        return recReadingOutput("linear_rotary_norm", y, (dy, self) -> {
            Tensor dp = be.rotaryRmsNormBackward(dy, self.value, invRows, cos, sin, offset, scale);   // y as kept (shelved: bf16)
            linearBackward(be, dp.reshape(b, t, out), x, w);
            give(dp);
            Recycler.giveStorage(invRows);
        }, x, w);
    }

    /** relu(x)²; dx = 2·relu(x)·dy. */
    public static Var relu2(Var x) {
        Backend be = be(x);
        return rec("relu2", be.relu2(x.value), dy -> accFromInput(be, x, xv -> be.relu2Backward(xv, dy)), x);
    }

    /** cap·tanh(x/cap). */
    public static Var softcap(Var x, float cap) {
        Backend be = be(x);
        return rec("softcap", be.softcap(x.value, cap), dy -> accFromInput(be, x, xv -> be.softcapBackward(xv, dy, cap)), x);
    }

    // ---------------------------------------------------------------- elementwise, layout

    /** a + b (same shape; residual connections). */
    public static Var add(Var a, Var b) {
        Backend be = be(a);
        if (!Arrays.equals(a.value.shape(), b.value.shape())) {
            throw new IllegalArgumentException("add: shapes " + Arrays.toString(a.value.shape()) + " and " + Arrays.toString(b.value.shape()) + " differ");
        }
        return recReading(new Var[0], "add", be.add(a.value, b.value), dy -> {
            acc(a, dy);
            acc(b, dy);
        }, a, b);
    }

    /** A view with a new shape (one dim may be −1). */
    public static Var reshape(Var x, int... shape) {
        int[] in = x.value.shape();
        return recReading(new Var[0], "reshape", x.value.reshape(shape), dy -> acc(x, dy.reshape(in)), x);
    }

    /** x[..., start:start+length, ...] along dim (a copy). */
    public static Var narrow(Var x, int dim, int start, int length) {
        Backend be = be(x);
        int full = x.value.shape(dim);
        return recReading(new Var[0], "narrow", be.narrow(x.value, dim, start, length), dy -> acc(x, be.narrowBackward(dy, dim, start, full)), x);
    }

    /** Σ y·r over all elements as a 0-d var (a fixed random cotangent turns any output into a scalar for gradcheck). */
    public static Var dot(Var y, Tensor r) {
        Backend be = be(y);
        return rec("dot", be.dot(y.value, r), dy -> acc(y, be.scale(r, dy.item())), y);
    }

    /**
     * nanochat's per-layer mix y = a[ia]·x + b[ib]·x0 with a, b the resid/x0 lambda vectors (n_layer). x and x0 may be
     * the same var (layer 0). da[ia] = Σ dy·x, dx = a·dy, db[ib] = Σ dy·x0, dx0 = b·dy.
     */
    public static Var lambdaMix(Var a, int ia, Var x, Var b, int ib, Var x0) {
        Backend be = be(x);
        return rec("lambda_mix", be.lambdaMix(a.value.slice(ia, ia + 1), x.value, b.value.slice(ib, ib + 1), x0.value), dy -> {
            // x and x0 as the backend kept them (shelved: bf16), read as they are
            Backend.MixGrads g = be.lambdaMixBackward(dy, a.value.slice(ia, ia + 1), x.value, b.value.slice(ib, ib + 1), x0.value);
            acc(x, g.dx());
            acc(x0, g.dx0());
            accAt(be, a, ia, g.da());
            accAt(be, b, ib, g.db());
        }, a, x, b, x0);
    }

    /** v[i] += g (one element) on v's device: straight into a parameter's gradient, else via a one-hot tensor. */
    private static void accAt(Backend be, Var v, int i, Tensor g) {
        if (!v.requiresGrad) return;
        Tensor one = g.reshape(1);
        Tensor sink = Tape.sink(v);
        if (sink != null) {
            be.axpy(1f, one, sink.reshape(-1).slice(i, i + 1));
            return;
        }
        Tensor d = be.zeros(v.value.shape());
        be.narrowAssign(d.reshape(-1), 0, i, one);
        acc(v, d);
    }

    // ---------------------------------------------------------------- nanochat's gates

    /**
     * Smear (mix the previous position's embedding into the current one), x (B,T,C), T ≥ 2, w (1,24), lambda (1):
     * gate_t = λ·σ(x_t[0:24]·w) for t ≥ 1; y_t = x_t + gate_t·x_{t−1}; y_0 = x_0 (pre-smear x on both sides).
     * Backward with s = σ(z), cur = x[:,1:], prev = x[:,:−1], d = dy[:,1:]:
     * dprev = gate·d; dgate = Σ_c d·prev; dλ = Σ dgate·s; dz = λ·dgate·s(1−s); dw = Σ dz·cur[0:24]; dcur[0:24] += dz·w.
     */
    public static Var smear(Var x, Var w, Var lambda, int channels) {
        Backend be = be(x);
        int[] s = x.value.shape();
        int bsz = s[0], t = s[1], c = s[2];
        if (t < 2) throw new IllegalArgumentException("smear: needs T >= 2 in a full-sequence forward, got x " + Arrays.toString(s));
        Tensor cur = be.narrow(x.value, 1, 1, t - 1), prev = be.narrow(x.value, 1, 0, t - 1);   // (B,T-1,C)
        Tensor cur24 = be.narrow(cur, 2, 0, channels);                                           // (B,T-1,24)
        Tensor sig = be.sigmoid(be.linear(cur24, w.value));                                      // (B,T-1,1)
        Tensor gate = be.mul(lambda.value, sig);                                                 // (B,T-1,1)
        Tensor gatedPrev = be.mul(gate, prev);
        Tensor mixed = be.add(cur, gatedPrev);
        Tensor first = be.narrow(x.value, 1, 0, 1);
        Tensor y = be.concat(1, first, mixed);
        give(cur, gatedPrev, mixed, first);                                                      // read by no closure
        Var r = recReading(new Var[] {w, lambda}, "smear", y, dy -> {
            Tensor d = be.narrow(dy, 1, 1, t - 1);                                               // (B,T-1,C)
            Tensor dProd = be.mul(d, prev);
            Tensor dgate = be.sumToShape(dProd, bsz, t - 1, 1);
            Recycler.give(dProd);
            if (lambda.requiresGrad) acc(lambda, be.sumToShape(be.mul(dgate, sig), 1));
            Tensor dz = be.sigmoidBackward(sig, be.mul(lambda.value, dgate));                     // (B,T-1,1)
            weightGrad(be, dz, cur24, w);
            if (x.requiresGrad) {
                Tensor dz24 = be.linearBackwardInput(dz, w.value), dzc = be.narrowBackward(dz24, 2, 0, c);
                Tensor dcur = be.add(d, dzc), gd = be.mul(gate, d);
                Tensor shiftedCur = be.narrowBackward(dcur, 1, 1, t), shiftedPrev = be.narrowBackward(gd, 1, 0, t);
                Tensor dx = be.add(shiftedCur, shiftedPrev);
                Tensor dFirst = be.narrow(dy, 1, 0, 1), d0 = be.narrowBackward(dFirst, 1, 0, t);
                acc(x, be.add(dx, d0));
                give(dz24, dzc, dcur, gd, shiftedCur, shiftedPrev, dx, dFirst, d0);
            }
            give(d, prev, cur24, sig, gate);
        }, x, w, lambda);
        if (r.node == null) give(prev, cur24, sig, gate);   // no backward will read them
        return r;
    }

    /** Gives back intermediates nothing reads again (see {@link Recycler#give(Tensor)}). */
    private static void give(Tensor... ts) {
        for (Tensor t : ts) Recycler.give(t);
    }

    /**
     * Value-embedding mix of one attention layer: v (B,T,KV,D), h (B,T,C) the normed block input, wg (KV,12), table
     * (V, KV·D) the layer's value embedding, gathered at ids (B,T) here: ve = table[ids]. g = 3·σ(h[...,0:12]·wgᵀ)
     * (B,T,KV); y = v + g[...,None]·ve. One node that keeps the gate, not ve (the gather is recomputed in backward).
     * Backward: dv = dy; dtable[ids] += g·dy; dg = Σ_D dy·ve; dz = 3·dg·s(1−s); dwg += dzᵀ·h12; dh[...,0:12] = dz·wg.
     */
    public static Var valueEmbedMix(Var v, Var h, Var wg, Var table, Tensor ids, int channels) {
        Backend be = be(v);
        int[] vs = v.value.shape();
        int bsz = vs[0], t = vs[1], kv = vs[2], d = vs[3];
        int c = h.value.shape(-1);
        Tensor h12 = be.narrow(h.value, 2, 0, channels);                   // (B,T,12)
        Tensor z = be.linear(h12, wg.value);
        Tensor sig = be.sigmoid(z);                                         // (B,T,KV)
        Tensor g = be.scale(sig, 3f), g4 = g.reshape(bsz, t, kv, 1);
        Tensor ve = be.embedding(table.value, ids);                         // (B,T,KV·D)
        Tensor gated = be.mul(g4, ve.reshape(bsz, t, kv, d));
        Tensor y = be.add(v.value, gated);
        give(z, gated, ve);   // read by no closure
        Var r = recReading(new Var[] {wg, table}, "value_embed_mix", y, dy -> {
            acc(v, dy);
            if (table.requiresGrad) {
                Tensor dve = be.mul(g4, dy);
                embeddingGrad(be, dve.reshape(bsz, t, kv * d), ids, table);
                Recycler.give(dve);
            }
            if (wg.requiresGrad || h.requiresGrad) {
                Tensor ve2 = be.embedding(table.value, ids);
                Tensor dyVe = be.mul(dy, ve2.reshape(bsz, t, kv, d));
                Recycler.give(ve2);
                Tensor dg = be.sumToShape(dyVe, bsz, t, kv, 1).reshape(bsz, t, kv);
                Recycler.give(dyVe);
                Tensor dz = be.sigmoidBackward(sig, be.scale(dg, 3f));       // (B,T,KV)
                weightGrad(be, dz, h12, wg);
                if (h.requiresGrad) {
                    Tensor dh12 = be.linearBackwardInput(dz, wg.value);
                    acc(h, be.narrowBackward(dh12, 2, 0, c));
                    Recycler.give(dh12);
                }
            }
            give(h12, sig, g);
        }, v, h, wg, table);
        if (r.node == null) give(h12, sig, g);   // no backward will read them
        return r;
    }

    /** Backout: y = x − λ·xMid (λ one element). dx = dy, dxMid = −λ·dy, dλ = −Σ dy·xMid. */
    public static Var backout(Var x, Var lambda, Var xMid) {
        Backend be = be(x);
        if (x.value.isOnDevice()) return backoutOnDevice(be, x, lambda, xMid);
        float lam = lambda.value.item();
        Tensor y = be.axpby(1f, x.value, -lam, xMid.value);
        return rec("backout", y, dy -> {
            acc(x, dy);
            acc(xMid, be.scale(dy, -lam));
            backoutLambdaGrad(be, dy, lambda, xMid);
        }, x, lambda, xMid);
    }

    /**
     * {@link #backout} with λ left on the device: reading it to the host (item()) would make the host wait for the
     * whole forward so far, once per step and once per decoded token. −λ broadcasts as a (1, …, 1) tensor instead.
     * Package-private so the gradient check runs it on the CPU too.
     */
    static Var backoutOnDevice(Backend be, Var x, Var lambda, Var xMid) {
        int[] ones = new int[xMid.value.rank()];
        java.util.Arrays.fill(ones, 1);
        Tensor negLam = be.scale(lambda.value.reshape(1), -1f).reshape(ones);
        Tensor scaled = be.mul(negLam, xMid.value);
        Tensor y = be.add(x.value, scaled);
        Recycler.give(scaled);
        return rec("backout", y, dy -> {
            acc(x, dy);
            acc(xMid, be.mul(negLam, dy));
            backoutLambdaGrad(be, dy, lambda, xMid);
        }, x, lambda, xMid);
    }

    /** dλ = −Σ dy·xMid, xMid read as the backend kept it. */
    private static void backoutLambdaGrad(Backend be, Tensor dy, Var lambda, Var xMid) {
        if (!lambda.requiresGrad) return;
        Tensor m = read(be, xMid);
        acc(lambda, be.scale(be.dot(dy, m), -1f).reshape(lambda.value.shape()));
        done(m, xMid);
    }

    // ---------------------------------------------------------------- attention, loss

    /** Causal GQA attention with a left window: q (B,T,H,D), k/v (B,T,KV,D) → (B,T,H,D). */
    public static Var attention(Var q, Var k, Var v, int window, float scale) {
        Backend be = be(q);
        Backend.AttentionOut o = be.attention(q.value, k.value, v.value, window, scale);
        Tensor lse = o.lse();
        return recReadingOutput("attention", o.y(), (dy, self) -> {
            // shelved or not: the backend's attention backward takes q, k, v and y as it kept them
            Backend.AttentionGrads g = be.attentionBackward(q.value, k.value, v.value, self.value, lse, dy, window, scale);
            acc(q, g.dq());
            acc(k, g.dk());
            acc(v, g.dv());
        }, q, k, v);
    }

    /**
     * lm_head + softcap + cross-entropy (ignore −1), fused and chunked over rows: x (N,C), w (Vpad,C), targets (N).
     * MEAN/SUM give a 0-d loss whose gradients the backend computes during the forward (scaled by the upstream
     * gradient in backward); NONE gives per-row losses (N) and recomputes the chunks in backward for the per-row
     * upstream gradient.
     */
    public static Var linearSoftcapCrossEntropy(Var x, Var w, Tensor targets, int vocab, float cap, Reduction reduction) {
        Backend be = be(x);
        boolean needGrad = Tape.current().recording() && (x.requiresGrad || w.requiresGrad);
        boolean eager = needGrad && reduction != Reduction.NONE;
        Backend.LinearLoss r = be.linearSoftcapCrossEntropy(x.value, w.value, targets, vocab, cap, reduction, eager);
        return rec("linear_softcap_cross_entropy", r.loss(), dy -> {
            Tensor dx, dW;
            float s = 1f;
            if (reduction == Reduction.NONE) {
                Tensor xv = read(be, x);
                Backend.LinearLoss g = be.linearSoftcapCrossEntropyBackward(xv, w.value, targets, vocab, cap, dy);
                done(xv, x);
                dx = g.dx();
                dW = g.dW();
            } else {
                dx = r.dx();
                dW = r.dW();
                s = dy.item();
            }
            Tensor sink = Tape.sink(w);
            if (x.requiresGrad) acc(x, s == 1f ? dx : be.scale(dx, s));
            if (sink != null) be.axpy(s, dW, sink);
            else if (w.requiresGrad) acc(w, s == 1f ? dW : be.scale(dW, s));
            // unless it became a var's gradient itself, nothing reads it again
            if (!(x.requiresGrad && s == 1f)) Recycler.give(dx);
            if (!(w.requiresGrad && sink == null && s == 1f)) Recycler.give(dW);
        }, x, w);
    }
}
