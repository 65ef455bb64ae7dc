package nanochat4j.train.optim;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import nanochat4j.tensor.cpu.Gemm;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;

/**
 * Muon's orthogonalisation of a batch of same-shape fp32 matrices (rows×cols), as nanochat's muon step does it:
 * <ol>
 *   <li>MuonEq: every row scaled to ‖X‖_F/√rows (row norms clamped at 1e-6);</li>
 *   <li>X ← X / (1.01·‖X‖_F + 1e-6), so the spectral norm is below 1;</li>
 *   <li>polar express (Amsel et al. 2025), up to 5 iterations with nanochat's coefficients (a, b, c):
 *       wide or square: A = XXᵀ, X ← aX + (bA + cA²)X; tall (rows &gt; cols): A = XᵀX, X ← aX + X(bA + cA²);</li>
 *   <li>Muon+: X rescaled to Frobenius norm √min(rows, cols).</li>
 * </ol>
 * Notable: the GEMMs go through {@link Gemm#sgemmBatched} over the whole batch; the two symmetric products (A and
 * A²) of large matrices compute only their upper triangle and mirror it (bitwise the same result, ~25% fewer
 * flops per iteration);
 * the elementwise steps round in the order PyTorch rounds them (b·A + c·A², a·X + product). Norms are summed per row and the rows combined in order,
 * so the result does not depend on the thread count. The instance owns its workspace (sized once for
 * {@code capacity} matrices): {@link #x()} is where the caller writes the input and reads the result.
 */
final class PolarExpress {
    /** (a, b, c) per iteration, nanochat's polar_express_coeffs. */
    static final double[][] COEFFS = {
        {8.156554524902461, -22.48329292557795, 15.878769915207462},
        {4.042929935166739, -2.808917465908714, 0.5000178451051316},
        {3.8916678022926607, -2.772484153217685, 0.5060648178503393},
        {3.285753657755655, -2.3681294933425376, 0.46449024233003106},
        {2.3465413258596377, -1.7097828382687081, 0.42323551169305323},
    };

    private static final VectorSpecies<Float> F = Vec.F;
    /** Elements per parallel task for the elementwise passes. */
    private static final int GRAIN = 1 << 14;

    final int rows, cols, capacity;
    /** Tall matrices (rows &gt; cols) iterate on the cols×cols Gram matrix XᵀX, others on the rows×rows XXᵀ. */
    final boolean tall;
    /** Side of the Gram matrix: min(rows, cols). */
    final int side;
    private float[] x, xn;
    private final float[] gram, gram2;
    /** Per-row sums of squares of the current batch (rows of all matrices, in order). */
    final double[] rowSq;
    /** Block rows of the symmetric products ({@link #gram}); ≥ side means one plain GEMM. */
    private final int blockRows;

    PolarExpress(int rows, int cols, int capacity) {
        this(rows, cols, capacity, blockRows(Math.min(rows, cols)));
    }

    /** With an explicit block size for the symmetric products (tests exercise blocking on small shapes). */
    PolarExpress(int rows, int cols, int capacity, int blockRows) {
        if (blockRows < 1) throw new IllegalArgumentException("PolarExpress: block rows " + blockRows + " < 1");
        this.blockRows = blockRows;
        if (rows < 1 || cols < 1 || capacity < 1) {
            throw new IllegalArgumentException("PolarExpress: bad shape " + capacity + "x" + rows + "x" + cols);
        }
        long elems = (long) capacity * rows * cols;
        if (elems > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("PolarExpress: workspace of " + elems + " floats is too large for "
                    + capacity + " matrices of " + rows + "x" + cols);
        }
        this.rows = rows;
        this.cols = cols;
        this.capacity = capacity;
        this.tall = rows > cols;
        this.side = Math.min(rows, cols);
        this.x = new float[(int) elems];
        this.xn = new float[(int) elems];
        this.gram = new float[capacity * side * side];
        this.gram2 = new float[capacity * side * side];
        this.rowSq = new double[capacity * rows];
    }

    /** The current matrices (count·rows·cols, row-major): input before {@link #orthogonalize}, result after. */
    float[] x() {
        return x;
    }

    /** Full Muon orthogonalisation of the first {@code count} matrices of {@link #x()}: steps 1–4 above. */
    void orthogonalize(int count, int steps) {
        equilibrateRows(count);
        normalize(count);
        iterate(count, steps);
        rescale(count);
    }

    /** MuonEq: row r of each matrix scaled by (‖X‖_F/√rows) / max(‖X_r‖, 1e-6). */
    void equilibrateRows(int count) {
        checkCount(count);
        rowSumSq(x, count * rows, cols, rowSq);
        float sqrtRows = (float) Math.sqrt(rows);
        float[] scale = new float[count * rows];
        for (int k = 0; k < count; k++) {
            float target = frobenius(rowSq, k * rows, rows) / sqrtRows;
            for (int r = 0; r < rows; r++) {
                int i = k * rows + r;
                scale[i] = target / Math.max((float) Math.sqrt(rowSq[i]), 1e-6f);
            }
        }
        scaleRows(x, count * rows, cols, scale);
    }

    /** X ← X / (1.01·‖X‖_F + 1e-6) per matrix. */
    void normalize(int count) {
        checkCount(count);
        rowSumSq(x, count * rows, cols, rowSq);
        float[] denom = new float[count];
        for (int k = 0; k < count; k++) denom[k] = frobenius(rowSq, k * rows, rows) * 1.01f + 1e-6f;
        int n = rows * cols;
        Parallel.forRange(count * n, GRAIN, (start, end) -> {
            for (int i = start; i < end; ) {
                int k = i / n, stop = Math.min(end, (k + 1) * n);
                divide(x, i, stop - i, denom[k]);
                i = stop;
            }
        });
    }

    /** {@code steps} polar-express iterations on the first {@code count} matrices. */
    void iterate(int count, int steps) {
        checkCount(count);
        if (steps < 0 || steps > COEFFS.length) {
            throw new IllegalArgumentException("polar express: ns_steps=" + steps + ", must be in 0.." + COEFFS.length);
        }
        int s = side, mn = rows * cols, ss = s * s;
        for (int it = 0; it < steps; it++) {
            float a = (float) COEFFS[it][0], b = (float) COEFFS[it][1], c = (float) COEFFS[it][2];
            gram(count);        // A = X Xᵀ (rows×rows) or Xᵀ X (cols×cols)
            gramSquared(count); // A A
            axpby(b, gram, c, gram2, count * ss); // B = b·A + c·(A A)
            // Xn = B X (wide) or X B (tall); then Xn = a·X + Xn
            if (tall) {
                Gemm.sgemmBatched(count, false, false, rows, cols, cols, 1f, x, 0, cols, mn, gram2, 0, s, ss, 0f, xn, 0, cols, mn);
            } else {
                Gemm.sgemmBatched(count, false, false, rows, cols, rows, 1f, gram2, 0, s, ss, x, 0, cols, mn, 0f, xn, 0, cols, mn);
            }
            axpby(a, x, 1f, xn, count * mn);
            float[] t = x;
            x = xn;
            xn = t;
        }
    }

    /**
     * Rows per block of a symmetric product: about a sixth of the side (multiple of 8, at least 96), from 384 on;
     * below, the blocks would be too thin to repay packing B once per block, so one plain GEMM does the whole product.
     */
    static int blockRows(int side) {
        return side < 384 ? side : Math.max(96, ((side + 5) / 6 + 7) / 8 * 8);
    }

    /**
     * gram ← X Xᵀ (wide/square) or Xᵀ X (tall) for each matrix. The result is symmetric, so only the upper
     * triangle is computed, by block rows (about 59% of the flops with six blocks), and mirrored. Bitwise the same as the full
     * product: Gemm fixes each element's k-order whatever the split, and x·y = y·x.
     */
    void gram(int count) {
        checkCount(count);
        int s = side, mn = rows * cols, ss = s * s, bs = blockRows;
        for (int i0 = 0; i0 < s; i0 += bs) {
            int h = Math.min(bs, s - i0), w = s - i0, c0 = i0 * s + i0;
            if (tall) { // A[i0:i0+h, i0:s] = X[:, i0:i0+h]ᵀ X[:, i0:s]
                Gemm.sgemmBatched(count, true, false, h, w, rows, 1f, x, i0, cols, mn, x, i0, cols, mn, 0f, gram, c0, s, ss);
            } else {    // A[i0:i0+h, i0:s] = X[i0:i0+h, :] X[i0:s, :]ᵀ
                Gemm.sgemmBatched(count, false, true, h, w, cols, 1f, x, i0 * cols, cols, mn, x, i0 * cols, cols, mn, 0f, gram, c0, s, ss);
            }
        }
        if (bs < s) mirrorUpper(gram, count, s);
    }

    /** gram2 ← A A for the symmetric A in gram (upper triangle by block rows, then mirrored; see {@link #gram}). */
    void gramSquared(int count) {
        checkCount(count);
        int s = side, ss = s * s, bs = blockRows;
        for (int i0 = 0; i0 < s; i0 += bs) { // (A A)[i0:i0+h, i0:s] = A[i0:i0+h, :] A[:, i0:s]
            int h = Math.min(bs, s - i0), w = s - i0;
            Gemm.sgemmBatched(count, false, false, h, w, s, 1f, gram, i0 * s, s, ss, gram, i0, s, ss, 0f, gram2, i0 * s + i0, s, ss);
        }
        if (bs < s) mirrorUpper(gram2, count, s);
    }

    float[] gramBuffer() {
        return gram;
    }

    float[] gramSquaredBuffer() {
        return gram2;
    }

    /** a[i][j] = a[j][i] below the diagonal of each s×s matrix. */
    private static void mirrorUpper(float[] a, int count, int s) {
        int ss = s * s;
        Parallel.forRange(count * s, Math.max(1, GRAIN / s), (start, end) -> {
            for (int u = start; u < end; u++) {
                int base = (u / s) * ss, i = u % s;
                for (int j = 0; j < i; j++) a[base + i * s + j] = a[base + j * s + i];
            }
        });
    }

    /** Muon+: X ← X · √min(rows, cols) / max(‖X‖_F, 1e-6) per matrix. */
    void rescale(int count) {
        checkCount(count);
        rowSumSq(x, count * rows, cols, rowSq);
        float want = (float) Math.sqrt(side);
        float[] f = new float[count];
        for (int k = 0; k < count; k++) f[k] = want / Math.max(frobenius(rowSq, k * rows, rows), 1e-6f);
        int n = rows * cols;
        Parallel.forRange(count * n, GRAIN, (start, end) -> {
            for (int i = start; i < end; ) {
                int k = i / n, stop = Math.min(end, (k + 1) * n);
                scale(x, i, stop - i, f[k]);
                i = stop;
            }
        });
    }

    private void checkCount(int count) {
        if (count < 0 || count > capacity) {
            throw new IllegalArgumentException("PolarExpress: count " + count + " outside 0.." + capacity);
        }
    }

    // ---------------------------------------------------------------- elementwise helpers (shared with Muon)

    /** ‖X‖_F of one matrix from its rows' sums of squares (summed in order, in double), as fp32. */
    static float frobenius(double[] rowSq, int first, int count) {
        double s = 0;
        for (int r = 0; r < count; r++) s += rowSq[first + r];
        return (float) Math.sqrt(s);
    }

    /** out[r] = Σ_c x[r·cols + c]² for r &lt; rows (fp32 lanes, lanes summed in order; parallel over rows). */
    static void rowSumSq(float[] x, int rows, int cols, double[] out) {
        Parallel.forRange(rows, Math.max(1, GRAIN / cols), (start, end) -> {
            float[] lanes = new float[F.length()];
            for (int r = start; r < end; r++) out[r] = sumSq(x, r * cols, cols, lanes);
        });
    }

    static float sumSq(float[] x, int off, int n, float[] lanes) {
        FloatVector acc = FloatVector.zero(F);
        int i = 0, upper = F.loopBound(n);
        for (; i < upper; i += F.length()) {
            FloatVector v = FloatVector.fromArray(F, x, off + i);
            acc = v.fma(v, acc);
        }
        acc.intoArray(lanes, 0);
        float s = 0f;
        for (float l : lanes) s += l; // fixed order: reduceLanes may differ between interpreter and JIT
        for (; i < n; i++) s = Math.fma(x[off + i], x[off + i], s);
        return s;
    }

    /** x[r·cols + c] *= scale[r] (parallel over rows). */
    static void scaleRows(float[] x, int rows, int cols, float[] scale) {
        Parallel.forRange(rows, Math.max(1, GRAIN / cols), (start, end) -> {
            for (int r = start; r < end; r++) scale(x, r * cols, cols, scale[r]);
        });
    }

    static void scale(float[] x, int off, int n, float f) {
        int i = 0, upper = F.loopBound(n);
        for (; i < upper; i += F.length()) FloatVector.fromArray(F, x, off + i).mul(f).intoArray(x, off + i);
        for (; i < n; i++) x[off + i] *= f;
    }

    static void divide(float[] x, int off, int n, float d) {
        int i = 0, upper = F.loopBound(n);
        for (; i < upper; i += F.length()) FloatVector.fromArray(F, x, off + i).div(d).intoArray(x, off + i);
        for (; i < n; i++) x[off + i] /= d;
    }

    /** y ← (α·x) + (β·y), each product rounded before the sum (as PyTorch evaluates α*x + β*y). */
    static void axpby(float alpha, float[] x, float beta, float[] y, int n) {
        Parallel.forRange(n, GRAIN, (start, end) -> {
            int i = start, upper = start + F.loopBound(end - start);
            for (; i < upper; i += F.length()) {
                FloatVector ax = FloatVector.fromArray(F, x, i).mul(alpha);
                FloatVector by = FloatVector.fromArray(F, y, i).mul(beta);
                ax.add(by).intoArray(y, i);
            }
            for (; i < end; i++) y[i] = alpha * x[i] + beta * y[i];
        });
    }
}
