package nanochat4j.tensor.cpu;

/**
 * Single-precision GEMM on row-major float arrays: C = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n.
 * lda/ldb/ldc are the row strides of the matrices as stored (A is stored k×m when transA, B n×k when transB).
 * beta == 0 overwrites C without reading it (NaN/garbage in C is ignored), as BLAS does.
 */
public final class Gemm {
    private Gemm() {}

    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        check("sgemm", 1, transA, transB, m, n, k, a, aOff, lda, 0, b, bOff, ldb, 0, c, cOff, ldc, 0);
        kernel(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    public static void sgemmBatched(int batch, boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, int strideA, float[] b, int bOff, int ldb, int strideB,
            float beta, float[] c, int cOff, int ldc, int strideC) {
        check("sgemmBatched", batch, transA, transB, m, n, k, a, aOff, lda, strideA, b, bOff, ldb, strideB,
                c, cOff, ldc, strideC);
        for (int i = 0; i < batch; i++) {
            kernel(transA, transB, m, n, k, alpha, a, aOff + (long) i * strideA, lda, b, bOff + (long) i * strideB, ldb,
                    beta, c, cOff + (long) i * strideC, ldc);
        }
    }

    private static void kernel(boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, long aOff, int lda, float[] b, long bOff, int ldb, float beta, float[] c, long cOff, int ldc) {
        int ao = (int) aOff, bo = (int) bOff, co = (int) cOff;
        for (int i = 0; i < m; i++) {
            int ci = co + i * ldc;
            if (beta == 0f) {
                for (int j = 0; j < n; j++) c[ci + j] = 0f;
            } else if (beta != 1f) {
                for (int j = 0; j < n; j++) c[ci + j] *= beta;
            }
            if (alpha == 0f) continue;
            for (int p = 0; p < k; p++) {
                float aip = alpha * (transA ? a[ao + p * lda + i] : a[ao + i * lda + p]);
                if (transB) {
                    for (int j = 0; j < n; j++) c[ci + j] += aip * b[bo + j * ldb + p];
                } else {
                    int bp = bo + p * ldb;
                    for (int j = 0; j < n; j++) c[ci + j] += aip * b[bp + j];
                }
            }
        }
    }

    /** Validates dims, strides and that every element the call touches lies inside its array. */
    private static void check(String op, int batch, boolean transA, boolean transB, int m, int n, int k,
            float[] a, int aOff, int lda, int strideA, float[] b, int bOff, int ldb, int strideB,
            float[] c, int cOff, int ldc, int strideC) {
        String shapes = op + "(transA=" + transA + ", transB=" + transB + ", batch=" + batch + ", m=" + m + ", n=" + n
                + ", k=" + k + ", lda=" + lda + ", ldb=" + ldb + ", ldc=" + ldc + ")";
        if (batch < 0 || m < 0 || n < 0 || k < 0) throw new IllegalArgumentException(shapes + ": negative dimension");
        int aRows = transA ? k : m, aCols = transA ? m : k;
        int bRows = transB ? n : k, bCols = transB ? k : n;
        if (lda < Math.max(1, aCols)) throw new IllegalArgumentException(shapes + ": lda < " + aCols + " (columns of stored A)");
        if (ldb < Math.max(1, bCols)) throw new IllegalArgumentException(shapes + ": ldb < " + bCols + " (columns of stored B)");
        if (ldc < Math.max(1, n)) throw new IllegalArgumentException(shapes + ": ldc < n");
        if (strideA < 0 || strideB < 0 || strideC < 0) {
            throw new IllegalArgumentException(shapes + ": negative batch stride (" + strideA + ", " + strideB + ", " + strideC + ")");
        }
        if (batch > 1 && m > 0 && n > 0 && strideC < (long) (m - 1) * ldc + n) {
            throw new IllegalArgumentException(shapes + ": strideC=" + strideC + " makes the C matrices of the batch overlap");
        }
        if (a == null || b == null || c == null) throw new IllegalArgumentException(shapes + ": null array");
        if (batch == 0) return;
        if (m > 0 && n > 0 && k > 0) {
            bounds(shapes, "A", a.length, aOff, aRows, aCols, lda, batch, strideA);
            bounds(shapes, "B", b.length, bOff, bRows, bCols, ldb, batch, strideB);
        }
        if (m > 0 && n > 0) bounds(shapes, "C", c.length, cOff, m, n, ldc, batch, strideC);
    }

    private static void bounds(String shapes, String name, int length, int off, int rows, int cols, int ld, int batch, int stride) {
        long last = off + (long) (batch - 1) * stride + (long) (rows - 1) * ld + cols;
        if (off < 0 || last > length) {
            throw new IllegalArgumentException(shapes + ": " + name + " (" + rows + "x" + cols + ", offset " + off
                    + ", batch stride " + stride + ") needs elements up to " + last + " but the array has " + length);
        }
    }
}
