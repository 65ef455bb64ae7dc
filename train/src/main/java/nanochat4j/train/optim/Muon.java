package nanochat4j.train.optim;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.AdamWKernel;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * Muon update for a set of same-shape (rows×cols) matrices with their state, as nanochat's muon_step_fused:
 * <pre>
 *   M ← lerp(M, G, 1−μ);  U ← lerp(G, M, μ)                        Nesterov momentum
 *   X ← orthogonalize(U)                                            MuonEq, polar express, Muon+ ({@link PolarExpress})
 *   v = mean(X², red);  ‖X‖ = sqrt(Σv·N);  S ← lerp(S, v, 1−β2)      NorMuon, factored second moment S:
 *   σ = rsqrt(max(S, 1e-10));  X ← X·σ·‖X‖/max(sqrt(Σ v·N·σ²), 1e-10)   per row if rows ≥ cols, else per column
 *   P ← P − lr_eff·X − lr_eff·wd·P·[X·P ≥ 0],  lr_eff = lr·sqrt(max(1, rows/cols))   cautious weight decay
 * </pre>
 * Notable: every matrix is independent, so the matrices are processed in batches whose workspace stays bounded
 * (about 4M floats) whatever the model size; hyperparameters are fp32 scalars and products round in PyTorch's
 * order; reductions are per row and combined in order (results do not depend on the thread count). The state
 * (momentum, second moment) covers exactly the matrices this instance updates: all of a group's on one rank,
 * or the owned chunk under ZeRO-2 sharding.
 */
final class Muon {
    private static final VectorSpecies<Float> F = Vec.F;
    private static final int GRAIN = 1 << 14;
    /** Workspace bound: matrices per batch so that one batch holds about this many floats. */
    private static final int BATCH_FLOATS = 1 << 22;

    final int count, rows, cols;
    /** NorMuon reduces over columns (one S entry per row) when rows ≥ cols, else over rows (one per column). */
    final boolean perRow;
    /** Momentum buffer M (count, rows, cols). */
    final float[] momentum;
    /** Factored second moment S: (count, rows, 1) if perRow else (count, 1, cols). */
    final float[] second;
    private final int secondLen;
    private final PolarExpress polar;

    Muon(int count, int rows, int cols) {
        if (count < 0 || rows < 1 || cols < 1) {
            throw new IllegalArgumentException("Muon: bad shape " + count + "x" + rows + "x" + cols);
        }
        this.count = count;
        this.rows = rows;
        this.cols = cols;
        this.perRow = rows >= cols;
        this.secondLen = perRow ? rows : cols;
        this.momentum = new float[Math.multiplyExact(count, Math.multiplyExact(rows, cols))];
        this.second = new float[count * secondLen];
        int batch = (int) Math.max(1, Math.min(count, BATCH_FLOATS / ((long) rows * cols)));
        this.polar = count == 0 ? null : new PolarExpress(rows, cols, batch);
    }

    /** The learning rate actually applied: lr·sqrt(max(1, rows/cols)) (computed in double, like Python). */
    static double effectiveLr(double lr, int rows, int cols) {
        return lr * Math.sqrt(Math.max(1.0, (double) rows / cols));
    }

    /**
     * One update of the {@code count} matrices: matrix j has value p[j][pOff[j]..] and gradient g[j][gOff[j]..]
     * (rows·cols floats each, row-major). {@code lrEff} is the applied rate, {@link #effectiveLr} of the group's lr.
     */
    void step(float[][] p, int[] pOff, float[][] g, int[] gOff, double lrEff, double mu, double beta2, double wd, int nsSteps) {
        if (p.length != count || pOff.length != count || g.length != count || gOff.length != count) {
            throw new IllegalArgumentException("Muon.step: expected " + count + " matrices of " + rows + "x" + cols
                    + ", got " + p.length + " params and " + g.length + " grads");
        }
        int mn = rows * cols;
        for (int j = 0; j < count; j++) {
            if (pOff[j] < 0 || pOff[j] + mn > p[j].length || gOff[j] < 0 || gOff[j] + mn > g[j].length) {
                throw new IllegalArgumentException("Muon.step: matrix " + j + " (" + rows + "x" + cols
                        + ") does not fit its param/grad arrays");
            }
        }
        float muF = (float) mu;
        float wMom = 1f - muF;
        float wSecond = 1f - (float) beta2;
        float lrF = (float) lrEff;
        float lrWd = lrF * (float) wd;
        for (int b0 = 0; b0 < count; b0 += polar.capacity) {
            int nb = Math.min(polar.capacity, count - b0);
            nesterov(g, gOff, b0, nb, wMom, muF);
            polar.orthogonalize(nb, nsSteps);
            float[] factor = normuon(b0, nb, wSecond);
            cautiousUpdate(p, pOff, b0, nb, factor, lrF, lrWd);
        }
    }

    /** M ← lerp(M, G, 1−μ); X ← lerp(G, M, μ) for matrices b0..b0+nb, X into the polar workspace. */
    private void nesterov(float[][] g, int[] gOff, int b0, int nb, float wMom, float mu) {
        int mn = rows * cols;
        float[] x = polar.x();
        Parallel.forRange(nb * mn, GRAIN, (start, end) -> {
            for (int i = start; i < end; ) {
                int k = i / mn, stop = Math.min(end, (k + 1) * mn);
                int e = i - k * mn, len = stop - i;
                float[] gk = g[b0 + k];
                int go = gOff[b0 + k] + e, mo = (b0 + k) * mn + e;
                int t = 0, upper = F.loopBound(len);
                for (; t < upper; t += F.length()) {
                    FloatVector gv = FloatVector.fromArray(F, gk, go + t);
                    FloatVector mv = AdamWKernel.lerp(FloatVector.fromArray(F, momentum, mo + t), gv, wMom);
                    mv.intoArray(momentum, mo + t);
                    AdamWKernel.lerp(gv, mv, mu).intoArray(x, i + t);
                }
                for (; t < len; t++) {
                    float mv = AdamWKernel.lerp(momentum[mo + t], gk[go + t], wMom);
                    momentum[mo + t] = mv;
                    x[i + t] = AdamWKernel.lerp(gk[go + t], mv, mu);
                }
                i = stop;
            }
        });
    }

    /**
     * NorMuon variance reduction on the orthogonalised batch: updates S for matrices b0..b0+nb and returns the
     * per-row (perRow) or per-column scale factor σ·‖X‖/‖X′‖ for each, (nb, secondLen).
     */
    private float[] normuon(int b0, int nb, float wSecond) {
        float[] x = polar.x();
        int red = perRow ? cols : rows; // size of the reduced dimension, N
        float nRed = red;
        float[] vMean = new float[nb * secondLen];
        if (perRow) {
            PolarExpress.rowSumSq(x, nb * rows, cols, polar.rowSq);
            for (int i = 0; i < nb * rows; i++) vMean[i] = (float) polar.rowSq[i] / nRed;
        } else {
            columnMeanSq(x, nb, vMean);
        }
        float[] factor = new float[nb * secondLen];
        for (int k = 0; k < nb; k++) {
            int o = k * secondLen, so = (b0 + k) * secondLen;
            double sumV = 0;
            for (int i = 0; i < secondLen; i++) sumV += vMean[o + i];
            float vNorm = (float) Math.sqrt((float) sumV * nRed);
            double sumNew = 0;
            for (int i = 0; i < secondLen; i++) {
                float s = AdamWKernel.lerp(second[so + i], vMean[o + i], wSecond);
                second[so + i] = s;
                float st = 1f / (float) Math.sqrt(Math.max(s, 1e-10f));
                factor[o + i] = st;
                sumNew += (vMean[o + i] * nRed) * (st * st);
            }
            float ratio = vNorm / Math.max((float) Math.sqrt((float) sumNew), 1e-10f);
            for (int i = 0; i < secondLen; i++) factor[o + i] = factor[o + i] * ratio;
        }
        return factor;
    }

    /** vMean[k, c] = mean over rows of X[k, r, c]² (fp32 sums over rows in order; parallel over matrices × column blocks). */
    private void columnMeanSq(float[] x, int nb, float[] vMean) {
        int blocks = (cols + 255) / 256;
        float nRed = rows;
        Parallel.forRange(nb * blocks, (start, end) -> {
            for (int u = start; u < end; u++) {
                int k = u / blocks, c0 = (u % blocks) * 256, c1 = Math.min(cols, c0 + 256);
                int o = k * cols;
                for (int c = c0; c < c1; c++) vMean[o + c] = 0f;
                for (int r = 0; r < rows; r++) {
                    int xo = (k * rows + r) * cols;
                    int c = c0, upper = c0 + F.loopBound(c1 - c0);
                    for (; c < upper; c += F.length()) {
                        FloatVector xv = FloatVector.fromArray(F, x, xo + c);
                        xv.fma(xv, FloatVector.fromArray(F, vMean, o + c)).intoArray(vMean, o + c);
                    }
                    for (; c < c1; c++) vMean[o + c] = Math.fma(x[xo + c], x[xo + c], vMean[o + c]);
                }
                for (int c = c0; c < c1; c++) vMean[o + c] = vMean[o + c] / nRed;
            }
        });
    }

    /** U = X·factor; P ← P − (lr·U + (lr·wd·P)·[U·P ≥ 0]) for matrices b0..b0+nb. */
    private void cautiousUpdate(float[][] p, int[] pOff, int b0, int nb, float[] factor, float lr, float lrWd) {
        float[] x = polar.x();
        Parallel.forRange(nb * rows, Math.max(1, GRAIN / cols), (start, end) -> {
            FloatVector zero = FloatVector.zero(F);
            for (int rr = start; rr < end; rr++) {
                int k = rr / rows, r = rr % rows;
                float[] pk = p[b0 + k];
                int po = pOff[b0 + k] + r * cols, xo = rr * cols, fo = k * secondLen;
                int c = 0, upper = F.loopBound(cols);
                if (perRow) {
                    float f = factor[fo + r];
                    for (; c < upper; c += F.length()) {
                        FloatVector u = FloatVector.fromArray(F, x, xo + c).mul(f);
                        update(u, pk, po + c, lr, lrWd, zero);
                    }
                    for (; c < cols; c++) pk[po + c] = update(x[xo + c] * f, pk[po + c], lr, lrWd);
                } else {
                    for (; c < upper; c += F.length()) {
                        FloatVector u = FloatVector.fromArray(F, x, xo + c).mul(FloatVector.fromArray(F, factor, fo + c));
                        update(u, pk, po + c, lr, lrWd, zero);
                    }
                    for (; c < cols; c++) pk[po + c] = update(x[xo + c] * factor[fo + c], pk[po + c], lr, lrWd);
                }
            }
        });
    }

    private static void update(FloatVector u, float[] p, int off, float lr, float lrWd, FloatVector zero) {
        FloatVector pv = FloatVector.fromArray(F, p, off);
        VectorMask<Float> agree = u.mul(pv).compare(VectorOperators.GE, 0f);
        FloatVector decay = zero.blend(pv.mul(lrWd), agree);
        pv.sub(u.mul(lr).add(decay)).intoArray(p, off);
    }

    private static float update(float u, float p, float lr, float lrWd) {
        float decay = u * p >= 0f ? lrWd * p : 0f;
        return p - (lr * u + decay);
    }
}
