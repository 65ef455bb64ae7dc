package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * Gemm against a float64 reference: every transpose combination, alpha/beta, offsets and padded strides, batches,
 * odd sizes (1, primes, non-multiples of the lanes and tiles) and sizes spanning several cache blocks. Error bound:
 * |C − ref| ≤ 1e-4 · (|alpha|·Σ|a||b| + |beta|·|c0|) per element. Seeds are fresh each run and printed on failure.
 */
class GemmTest {
    private static final double TOL = 1e-4;
    private final long seed = System.nanoTime();
    private final SplittableRandom rnd = new SplittableRandom(seed);

    /** Uniform in ±[0.1, 1): random signs and magnitudes, never zero. */
    private float[] random(int size) {
        float[] x = new float[size];
        for (int i = 0; i < size; i++) {
            float v = (float) (0.1 + 0.9 * rnd.nextDouble());
            x[i] = rnd.nextBoolean() ? v : -v;
        }
        return x;
    }

    /** One problem: stored arrays with offsets and padded row strides, and its float64 reference. */
    private void checkCase(boolean ta, boolean tb, int m, int n, int k, float alpha, float beta, int pad, int off) {
        int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
        int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
        float[] a = random(off + aRows * lda), b = random(off + bRows * ldb), c = random(off + m * ldc);
        float[] c0 = c.clone();
        if (beta == 0f) for (int i = 0; i < m; i++) for (int j = 0; j < n; j++) c[off + i * ldc + j] = Float.NaN;
        Gemm.sgemm(ta, tb, m, n, k, alpha, a, off, lda, b, off, ldb, beta, c, off, ldc);
        String what = "sgemm(" + ta + "," + tb + ", m=" + m + ", n=" + n + ", k=" + k + ", alpha=" + alpha + ", beta=" + beta
                + ", pad=" + pad + ", off=" + off + ") seed=" + seed;
        assertMatches(what, ta, tb, m, n, k, alpha, a, off, lda, b, off, ldb, beta, c0, c, off, ldc);
        for (int x = 0; x < off; x++) assertEquals(c0[x], c[x], what + ": wrote before C's offset");
        for (int i = 0; i < m; i++) {
            for (int j = n; j < ldc && off + i * ldc + j < c.length; j++) {
                assertEquals(c0[off + i * ldc + j], c[off + i * ldc + j], what + ": wrote into C's row padding");
            }
        }
    }

    private static void assertMatches(String what, boolean ta, boolean tb, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c0, float[] c, int cOff, int ldc) {
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                double s = 0, mag = 0;
                for (int p = 0; p < k; p++) {
                    double x = ta ? a[aOff + p * lda + i] : a[aOff + i * lda + p];
                    double y = tb ? b[bOff + j * ldb + p] : b[bOff + p * ldb + j];
                    s += x * y;
                    mag += Math.abs(x * y);
                }
                double cOld = beta == 0f ? 0 : c0[cOff + i * ldc + j];
                double ref = alpha * s + beta * cOld;
                double bound = TOL * (Math.abs(alpha) * mag + Math.abs(beta) * Math.abs(cOld)) + 1e-30;
                double got = c[cOff + i * ldc + j];
                if (!(Math.abs(got - ref) <= bound)) {
                    fail(what + ": C[" + i + "][" + j + "] = " + got + ", reference " + ref + " (bound " + bound + ")");
                }
            }
        }
    }

    @Test
    void oddAndTinySizesMatchReferenceForEveryTranspose() {
        int[][] sizes = {{1, 1, 1}, {1, 7, 3}, {5, 1, 2}, {3, 4, 1}, {2, 3, 5}, {13, 17, 19}, {31, 37, 41}, {15, 33, 8},
                {29, 65, 97}, {47, 131, 23}};
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                for (int[] s : sizes) checkCase(ta, tb, s[0], s[1], s[2], 1f, 0f, 0, 0);
            }
        }
    }

    @Test
    void alphaBetaOffsetsAndPaddedStridesMatchReference() {
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                checkCase(ta, tb, 37, 53, 29, 0.75f, 0f, 3, 5);
                checkCase(ta, tb, 37, 53, 29, -1.5f, 1f, 7, 11);
                checkCase(ta, tb, 23, 71, 43, 2f, -0.5f, 1, 2);
            }
        }
    }

    @Test
    void sizesSpanningSeveralCacheBlocksMatchReference() {
        // k crosses the KC blocks, m the MC blocks, n many NR panels; none a multiple of a tile or of the lanes.
        int m = Gemm.MC + Gemm.MR + 3, n = 2 * Gemm.NR + 13, k = Gemm.KC + 37;
        checkCase(false, true, m, n, k, 1f, 0f, 0, 0);
        checkCase(true, false, m, n, k, 0.5f, 2f, 2, 3);
        checkCase(false, false, 7, 401, k, 1f, 1f, 0, 1);
        checkCase(true, true, m, 61, 211, 1f, 0f, 5, 0);
    }

    @Test
    void transposedAIsReadInPlaceOrPackedByItsRowStrideAndBothMatchReference() {
        // lda = m + pad: 1,021 + 3 = 1,024 floats (4 KiB rows) is packed, 1,021 + 2 read in place; m leaves a short panel
        assertFalse(Gemm.readsTransposedADirectly(1024));
        assertTrue(Gemm.readsTransposedADirectly(1023));
        for (int pad : new int[] {3, 2}) {
            checkCase(true, false, 1021, 2 * Gemm.NR + 5, Gemm.KC + 11, 1f, 0f, pad, 1);
            checkCase(true, true, 1021, 37, 45, 0.5f, 1f, pad, 0);
        }
    }

    @Test
    void columnsBeyondThePackLimitRunInSeveralColumnBlocksAndMatchReference() {
        // k·n over the packed-B limit: two NC column blocks, the last one partial and not a whole panel
        int k = 2 * Gemm.KC + 5, n = Gemm.B_PACK_LIMIT / k + 2 * Gemm.NR + 7;
        checkCase(false, false, 13, n, k, 1f, 0f, 0, 0);
        checkCase(true, true, 5, n, k, 0.5f, 1f, 1, 2);
    }

    @Test
    void wideProductsSplitIntoColumnChunksMatchReference() {
        // ≥ WIDE_PANELS panels and enough rows to share: the column-chunk path (last chunk and panel partial)
        int m = 4 * Parallel.threads() * Gemm.MR + 5, n = Gemm.WIDE_PANELS * Gemm.NR + Gemm.WIDE_CHUNK_COLUMNS / 2 + 3;
        checkCase(false, true, m, n, 45, 1f, 0f, 0, 0);
        checkCase(true, false, m, n, Gemm.KC + 9, 0.5f, 1f, 1, 2);
    }

    @Test
    void deepProductsSplitIntoRowAndColumnBlocksMatchReference() {
        // k ≥ DEEP_MIN_K and k·n ≥ DEEP_MIN_B: the deep path, over three column blocks (the last one partial and not a
        // whole panel), and with one narrow column block over a row chunk per thread
        int n = 2 * Gemm.DEEP_MAX_COLUMNS + Gemm.NR + 5, k = deepK(n);
        checkCase(false, false, 4 * Gemm.MR + 1, n, k, 0.75f, 1f, 2, 3);
        checkCase(true, true, 13, n, k, 1f, 0f, 0, 0);
        int narrow = 3 * Gemm.NR + 1;
        checkCase(true, false, 4 * Gemm.MR + 5, narrow, deepK(narrow) + 7, 1f, 0f, 1, 0);
    }

    @Test
    void kernelInL1RunsTheMicroKernelOnEveryThreadAndCountsItsFlops() {
        assertEquals(2.0 * Gemm.MR * Gemm.NR * Gemm.KC * 3 * Parallel.threads(), Gemm.kernelInL1(3));
        // the calling thread ran its share: its last tile holds the panels' product, against float64
        float[][] p = Gemm.kernelInL1Panels();
        java.util.Arrays.fill(p[2], Float.NaN);
        Gemm.kernelInL1(1);
        for (int r = 0; r < Gemm.MR; r++) {
            for (int q = 0; q < Gemm.NR; q++) {
                double want = 0;
                for (int k = 0; k < Gemm.KC; k++) want += (double) p[0][k * Gemm.MR + r] * p[1][k * Gemm.NR + q];
                assertEquals(want, p[2][r * Gemm.NR + q], 1e-5 * Math.abs(want), "tile (" + r + ", " + q + ")");
            }
        }
    }

    @Test
    void deepSplitPacksEachOperandAsFewTimesAsItCan() {
        // d6's weight gradients on two threads: c_proj (384×1536) packs its wide B once over four column blocks; c_fc
        // (1536×384) and the square ones keep row blocks; the vocab-wide ones need many row blocks to fit C in L2
        assertArrayEquals(new int[] {1, 4}, Gemm.deepSplit(384, 1536, 2));
        assertArrayEquals(new int[] {4, 1}, Gemm.deepSplit(1536, 384, 2));
        assertArrayEquals(new int[] {2, 1}, Gemm.deepSplit(384, 384, 2));
        assertArrayEquals(new int[] {1, 2}, Gemm.deepSplit(256, 1024, 2));
        // 64 blocks of 512 rows with 8-row tiles; AVX2's 6,554 five-row tiles fit 102 to a block: 65, even for two threads
        assertArrayEquals(new int[] {Gemm.MR == 5 ? 66 : 64, 1}, Gemm.deepSplit(32768, 384, 2));
        assertNull(Gemm.deepSplit(Gemm.MR, Gemm.NR, 2), "one tile cannot be shared by two threads");
        for (int threads : new int[] {1, 2, 3, 4, 8}) {
            for (int m : new int[] {7, 64, 384, 1000, 1536, 32768}) {
                for (int n : new int[] {5, 256, 384, 700, 1536, 4000}) {
                    int[] s = Gemm.deepSplit(m, n, threads);
                    if (s == null) continue;
                    int mTiles = (m + Gemm.MR - 1) / Gemm.MR, panels = (n + Gemm.NR - 1) / Gemm.NR;
                    int rowTiles = (mTiles + s[0] - 1) / s[0], colPanels = (panels + s[1] - 1) / s[1];
                    String what = m + "x" + n + " on " + threads + " threads: " + s[0] + "x" + s[1];
                    assertEquals(0, s[0] * s[1] % threads, what + ": items not a multiple of the threads");
                    assertTrue(rowTiles * (s[0] - 1) < mTiles && colPanels * (s[1] - 1) < panels, what + ": an empty block");
                    assertTrue(Math.min(n, colPanels * Gemm.NR) <= Gemm.DEEP_MAX_COLUMNS, what + ": columns");
                    assertTrue((long) Math.min(m, rowTiles * Gemm.MR) * Math.min(n, colPanels * Gemm.NR) <= Gemm.DEEP_C_BLOCK,
                            what + ": C block");
                }
            }
        }
    }

    @Test
    void deepProductsSplitIntoMoreColumnBlocksThanTheirWidthNeedsMatchReference() {
        // few rows, a wide B: three column blocks would do for DEEP_MAX_COLUMNS, but three items do not share evenly on
        // two threads; four column blocks over one row block (B packed once) rather than 2×3 blocks (B packed twice)
        int m = 3 * Gemm.MR + 1, n = 2 * Gemm.DEEP_MAX_COLUMNS + 5, k = deepK(n) + 3;
        int[] split = Gemm.deepSplit(m, n, Parallel.threads());
        assertEquals(1, split[0], "one row block");
        if (Parallel.threads() == 2) assertEquals(4, split[1], "four column blocks");
        checkCase(true, false, m, n, k, 1f, 0f, 1, 0);
        checkCase(false, true, m, n, k, 0.5f, 1f, 0, 2);
        multiThreadedEqualsSingleThreaded(m, n, k);
    }

    /** The least depth that sends a product with n columns down the deep path. */
    private static int deepK(int n) {
        return Math.max(Gemm.DEEP_MIN_K, Gemm.DEEP_MIN_B / n + 1);
    }

    @Test
    void zeroAlphaOrEmptyKScalesC() {
        float[] c = random(12);
        float[] want = new float[12];
        for (int i = 0; i < 12; i++) want[i] = c[i] * 3f;
        Gemm.sgemm(false, false, 3, 4, 0, 1f, new float[0], 0, 1, new float[0], 0, 4, 3f, c, 0, 4);
        assertArrayEquals(want, c);
        float[] nan = new float[12];
        java.util.Arrays.fill(nan, Float.NaN);
        Gemm.sgemm(false, false, 3, 4, 2, 0f, random(6), 0, 2, random(8), 0, 4, 0f, nan, 0, 4);
        assertArrayEquals(new float[12], nan);
    }

    @Test
    void batchedMatchesReferencePerMatrixIncludingBroadcastOperand() {
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                int batch = 5, m = 19, n = 35, k = 26, pad = 2, off = 3;
                int aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
                int lda = aCols + pad, ldb = bCols + pad, ldc = n + pad;
                int strideA = aRows * lda + 4, strideB = 0, strideC = m * ldc + 1; // B shared by every batch entry
                float[] a = random(off + batch * strideA), b = random(off + bRows * ldb), c = random(off + batch * strideC);
                float[] c0 = c.clone();
                Gemm.sgemmBatched(batch, ta, tb, m, n, k, 1.25f, a, off, lda, strideA, b, off, ldb, strideB,
                        0.5f, c, off, ldc, strideC);
                for (int e = 0; e < batch; e++) {
                    assertMatches("sgemmBatched(" + ta + "," + tb + ") entry " + e + " seed=" + seed, ta, tb, m, n, k, 1.25f,
                            a, off + e * strideA, lda, b, off, ldb, 0.5f, c0, c, off + e * strideC, ldc);
                }
            }
        }
    }

    @Test
    void multiThreadedResultEqualsSingleThreadedBitForBit() {
        // Big enough to run on every thread, with two depth blocks; shapes that split over rows and over columns.
        int t = Parallel.threads();
        multiThreadedEqualsSingleThreaded((2 * t + 1) * Gemm.MR - 3, 4 * Gemm.NR + 7); // >= 2 row tiles per thread: rows split
        multiThreadedEqualsSingleThreaded(Gemm.MR + 2, 5 * Gemm.NR + 7); // 2 row tiles: columns split
        multiThreadedEqualsSingleThreaded((2 * t + 1) * Gemm.MR, Gemm.WIDE_PANELS * Gemm.NR + 5); // wide: column chunks
        int n = Gemm.DEEP_MAX_COLUMNS + Gemm.NR + 5, narrow = 3 * Gemm.NR + 1; // deep: two column blocks; row chunks
        multiThreadedEqualsSingleThreaded(2 * t * Gemm.MR + 3, n, deepK(n) + Gemm.KC / 2);
        multiThreadedEqualsSingleThreaded(2 * t * Gemm.MR + 3, narrow, deepK(narrow) + Gemm.KC / 2);
    }

    @Test
    void everyPathSumsInTheSameOrderBitForBit() {
        // A vocab-wide product (op(A) packed once, the wide path) against the same product column slice by column
        // slice (each too narrow for it: op(A) packed per block, or its rows read in place where READS_ROWS_IN_PLACE),
        // two depth blocks each: equal bit for bit, whichever path read A.
        int m = (2 * Parallel.threads() + 1) * Gemm.MR + 2, slice = 3 * Gemm.NR + 5, k = Gemm.KC + 41;
        int n = Gemm.WIDE_PANELS * Gemm.NR + slice;
        for (boolean tb : new boolean[] {false, true}) {
            float[] a = random(m * k), b = random(k * n);
            float[] whole = new float[m * n], sliced = new float[m * n];
            Gemm.sgemm(false, tb, m, n, k, 1f, a, 0, k, b, 0, tb ? k : n, 0f, whole, 0, n);
            for (int j = 0; j < n; j += slice) {
                int w = Math.min(slice, n - j);
                Gemm.sgemm(false, tb, m, w, k, 1f, a, 0, k, b, tb ? j * k : j, tb ? k : n, 0f, sliced, j, n);
            }
            assertArrayEquals(whole, sliced, "transB=" + tb + " seed=" + seed);
        }
    }

    private void multiThreadedEqualsSingleThreaded(int m, int n) {
        multiThreadedEqualsSingleThreaded(m, n, (int) Math.max(2 * Gemm.KC + 29, Gemm.PARALLEL_MIN_FLOPS / (2.0 * m * n) + 1));
    }

    private void multiThreadedEqualsSingleThreaded(int m, int n, int k) {
        for (boolean ta : new boolean[] {false, true}) {
            for (boolean tb : new boolean[] {false, true}) {
                float[] a = random(m * k), b = random(k * n);
                float[] cMt = new float[m * n], cSt = new float[m * n];
                Gemm.sgemm(ta, tb, m, n, k, 1f, a, 0, ta ? m : k, b, 0, tb ? k : n, 0f, cMt, 0, n);
                // Inside a pool worker every Parallel.forRange runs serially, so this is the one-thread result.
                Parallel.forRange(Parallel.threads(), (s, e) -> {
                    if (s == 0) Gemm.sgemm(ta, tb, m, n, k, 1f, a, 0, ta ? m : k, b, 0, tb ? k : n, 0f, cSt, 0, n);
                });
                assertArrayEquals(cSt, cMt, "transA=" + ta + " transB=" + tb + " seed=" + seed);
            }
        }
    }

    @Test
    void badArgumentsAreRejectedWithCallAndShapes() {
        float[] x = new float[16];
        var e = assertThrows(IllegalArgumentException.class,
                () -> Gemm.sgemm(false, false, 4, 4, 4, 1f, x, 0, 4, x, 0, 4, 0f, new float[15], 0, 4));
        assertTrue(e.getMessage().contains("sgemm(") && e.getMessage().contains("m=4") && e.getMessage().contains("C"),
                e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, -1, 4, 4, 1f, x, 0, 4, x, 0, 4, 0f, x, 0, 4));
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, true, 2, 2, 4, 1f, x, 0, 3, x, 0, 4, 0f, x, 0, 2));
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(true, false, 4, 4, 4, 1f, x, 1, 4, x, 0, 4, 0f, x, 0, 4));
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemm(false, false, 2, 2, 2, 1f, x, -1, 2, x, 0, 2, 0f, x, 0, 2));
        var be = assertThrows(IllegalArgumentException.class, () -> Gemm.sgemmBatched(3, false, false, 2, 2, 2, 1f,
                x, 0, 2, 8, x, 0, 2, 4, 0f, new float[64], 0, 2, 4)); // A's third entry ends at 20 > 16
        assertTrue(be.getMessage().contains("sgemmBatched("), be.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Gemm.sgemmBatched(2, false, false, 2, 2, 2, 1f,
                x, 0, 2, 4, x, 0, 2, 4, 0f, x, 0, 2, 2)); // C entries would overlap
    }
}
