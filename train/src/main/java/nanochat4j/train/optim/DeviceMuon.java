package nanochat4j.train.optim;

import java.util.HashMap;
import java.util.Map;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Tensor;

/**
 * {@link Muon}'s update written against {@link Backend} only, so that it runs where the parameters live: on a GPU
 * the matrices, momentum and second moment never leave device memory, and the polar-express iterations are
 * GEMMs over the whole stack (cuBLAS strided-batched, in fp32, or under bf16 matmuls with bf16 operands as nanochat
 * runs them in bf16 on CUDA: {@link Backend#matmulAtPrecision}). The same math as
 * {@link Muon} / {@link PolarExpress}, step for step:
 * <pre>
 *   M ← lerp(M, G, 1−μ);  X ← lerp(G, M, μ)                              Nesterov
 *   MuonEq rows, X ← X/(1.01‖X‖+1e-6), polar express (a·X + (b·A + c·A²)·X), Muon+ to ‖X‖ = √min(R, C)
 *   NorMuon: v = mean(X², red), S ← lerp(S, v, 1−β2), X ← X·rsqrt(max(S,1e-10))·‖X‖/max(‖X′‖, 1e-10)
 *   P ← P − (lr·X + [X·P ≥ 0]·lr·wd·P)                                    cautious weight decay (one fused kernel)
 * </pre>
 * Results agree with {@link Muon} to float rounding, not bitwise: the GEMMs and reductions sum in another order; with
 * bf16 operands the polar express lands on another near-orthogonal matrix, a few percent from fp32's (DeviceMuonTest).
 * State: momentum (count, rows, cols) and second moment (count, rows) per row when rows ≥ cols, else (count, cols),
 * in the backend's memory.
 */
final class DeviceMuon {
    final int count, rows, cols;
    final boolean perRow;
    private final Backend be;
    /** Momentum M (count, rows, cols) and factored second moment S (count, secondLen), on the backend's device. */
    Tensor momentum, second;
    private final int secondLen;
    /** The polar express's GEMMs in fp32 whatever the backend's matmul precision ({@link MuonAdamW#setPolarExpressFp32}). */
    boolean fp32Gemms;

    DeviceMuon(Backend be, int count, int rows, int cols) {
        if (count < 1 || rows < 1 || cols < 1) throw new IllegalArgumentException("DeviceMuon: bad shape " + count + "x" + rows + "x" + cols);
        this.be = be;
        this.count = count;
        this.rows = rows;
        this.cols = cols;
        this.perRow = rows >= cols;
        this.secondLen = perRow ? rows : cols;
        this.momentum = be.zeros(count, rows, cols);
        this.second = be.zeros(count, secondLen);
    }

    /**
     * One update of the count matrices {@code p[j]} from their gradients {@code g[j]} (rows×cols each, on the
     * backend's device). {@code lrEff} is {@link Muon#effectiveLr}.
     */
    void step(Tensor[] p, Tensor[] g, double lrEff, double mu, double beta2, double wd, int nsSteps) {
        if (p.length != count || g.length != count) {
            throw new IllegalArgumentException("DeviceMuon.step: expected " + count + " matrices, got " + p.length + " params and " + g.length + " grads");
        }
        if (nsSteps < 0 || nsSteps > PolarExpress.COEFFS.length) {
            throw new IllegalArgumentException("polar express: ns_steps=" + nsSteps + ", must be in 0.." + PolarExpress.COEFFS.length);
        }
        try (var temps = Recycler.open()) {
            Tensor[] parts = new Tensor[count];
            for (int j = 0; j < count; j++) parts[j] = g[j].reshape(1, rows, cols);
            Tensor grads = count == 1 ? parts[0] : be.concat(0, parts);
            float muF = (float) mu;
            Tensor old = momentum;
            momentum = be.lerp(momentum, grads, 1f - muF);
            Tensor x = be.lerp(grads, momentum, muF);
            done(old, grads);   // grads: the stack; with one matrix a view of its gradient, which stays
            Tensor o = orthogonalize(x, nsSteps);
            done(x);
            Tensor u = normuon(o, 1f - (float) beta2);
            done(o);
            float lr = (float) lrEff, lrWd = lr * (float) wd;
            for (int j = 0; j < count; j++) be.muonCautious(p[j], u.select(j), lr, lrWd);
            done(u);
        }
    }

    /**
     * Full-size temporaries of this update that nothing reads again: on a GPU their memory goes back to the pool at
     * once instead of when a GC finds them (an update makes about 20 of them per stack of matrices). Only what an op
     * made goes back ({@link Recycler#give(Tensor)}): views, the parameters and their gradients never do.
     */
    private static void done(Tensor... temps) {
        for (Tensor t : temps) Recycler.give(t);
    }

    /** The scalar {@code v} on the device, uploaded once per value (an upload waits for the stream: not every step). */
    private Tensor constant(float v) {
        return constants.computeIfAbsent(v, k -> be.upload(Tensor.scalar(k)));
    }

    private final Map<Float, Tensor> constants = new HashMap<>();

    /** ‖X_k‖_F per matrix as (count, 1, 1), from the row norms (count, rows). */
    private Tensor frobenius(Tensor rowNorms) {
        return be.sqrt(be.sumToShape(be.mul(rowNorms, rowNorms), count, 1)).reshape(count, 1, 1);
    }

    /** The polar-express orthogonalisation of x (which stays the caller's: only this method's temporaries go back). */
    Tensor orthogonalize(Tensor x, int steps) {
        // MuonEq: row r scaled by (‖X‖/√rows)/max(‖X_r‖, 1e-6)
        Tensor rn = be.rowNorms(x);                                                    // (K, R)
        Tensor target = be.scale(frobenius(rn).reshape(count, 1), 1f / (float) Math.sqrt(rows));
        Tensor eq = be.mul(x, be.div(target, be.clamp(rn, 1e-6f, Float.MAX_VALUE)).reshape(count, rows, 1));
        // X ← X/(1.01·‖X‖ + 1e-6)
        Tensor denom = be.add(be.scale(frobenius(be.rowNorms(eq)), 1.01f), constant(1e-6f));
        Tensor cur = be.div(eq, denom);
        done(eq);
        boolean tall = rows > cols;
        for (int it = 0; it < steps; it++) {
            float a = (float) PolarExpress.COEFFS[it][0], b = (float) PolarExpress.COEFFS[it][1], c = (float) PolarExpress.COEFFS[it][2];
            Tensor gram = tall ? mm(cur, true, cur, false) : mm(cur, false, cur, true);       // XᵀX or XXᵀ
            Tensor gram2 = mm(gram, false, gram, false);
            Tensor poly = be.axpby(b, gram, c, gram2);                                         // b·A + c·A²
            Tensor xn = tall ? mm(cur, false, poly, false) : mm(poly, false, cur, false);
            Tensor next = be.axpby(a, cur, 1f, xn);
            done(gram, gram2, poly, xn, cur);
            cur = next;
        }
        // Muon+: ‖X‖ = √min(rows, cols)
        Tensor fro = be.clamp(frobenius(be.rowNorms(cur)), 1e-6f, Float.MAX_VALUE);
        Tensor out = be.mul(cur, be.div(constant((float) Math.sqrt(Math.min(rows, cols))), fro));
        done(cur);
        return out;
    }

    /** A polar-express GEMM: at the linear layers' precision (bf16 operands on a GPU under bf16 matmuls, as nanochat's), or fp32. */
    private Tensor mm(Tensor a, boolean transA, Tensor b, boolean transB) {
        return fp32Gemms ? be.matmul(a, transA, b, transB) : be.matmulAtPrecision(a, transA, b, transB);
    }

    /** NorMuon on the orthogonalised X: updates S and returns X scaled per row (rows ≥ cols) or per column. */
    Tensor normuon(Tensor x, float wSecond) {
        int red = perRow ? cols : rows;
        Tensor sq = be.mul(x, x);
        Tensor v = perRow
                ? be.scale(be.sumToShape(sq, count, rows, 1), 1f / red).reshape(count, rows)
                : be.scale(be.sumToShape(sq, count, 1, cols), 1f / red).reshape(count, cols);
        done(sq);
        Tensor vn = be.scale(v, red);                                                   // v·N
        Tensor vNorm = be.sqrt(be.sumToShape(vn, count, 1));                            // (K, 1)
        Tensor oldSecond = second;
        second = be.lerp(second, v, wSecond);
        done(oldSecond);
        Tensor sigma = be.rsqrt(be.clamp(second, 1e-10f, Float.MAX_VALUE));
        Tensor sumNew = be.sumToShape(be.mul(vn, be.mul(sigma, sigma)), count, 1);
        Tensor ratio = be.div(vNorm, be.clamp(be.sqrt(sumNew), 1e-10f, Float.MAX_VALUE));
        Tensor factor = be.mul(sigma, ratio);
        return be.mul(x, perRow ? factor.reshape(count, rows, 1) : factor.reshape(count, 1, cols));
    }

}
