package nanochat4j.tensor.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Single-precision GEMM on row-major float arrays: C = alpha·op(A)·op(B) + beta·C, op(A) m×k, op(B) k×n.
 * lda/ldb/ldc are the row strides of the matrices as stored (A is stored k×m when transA, B n×k when transB).
 * beta == 0 overwrites C without reading it (NaN/garbage in C is ignored), as BLAS does.
 *
 * <p>GotoBLAS/BLIS structure, pure Vector API:
 * <ul>
 *   <li>op(B) is packed once per call (per NC block of columns when k·n is large) into NR-wide column panels,
 *       (KC×NR k-major slices, all panels of one depth block contiguous), by all threads together; every
 *       transpose is absorbed by the packing.</li>
 *   <li>The threads then take chunks of C rows (or of B panels when m is too short to split) from a shared
 *       counter: for each MC×KC block of op(A) a thread packs MR-row panels (KC×MR, k-major) into its own buffer
 *       (L2-resident) and runs the micro-kernel over every (B panel, A panel) pair: the KC×NR B panel stays in L1
 *       across the A panels.</li>
 *   <li>The micro-kernel holds an MR×NR tile of C in registers (MR broadcasts of A times two B vectors per k):
 *       8×2 vectors where the ISA has 32 vector registers (AVX-512, NEON), 5×2 on 16-register AVX2. It writes its
 *       sums to a per-thread tile and {@link #store} scales them into C. On AVX2 a 4×2 tile's 8 accumulators are
 *       exactly the FMA latency times its two pipes, with no slack for a late load: the 5×2 tile's 10 run whole
 *       GEMMs 3–12% faster, timed call by call against each other in one JVM. C2 spills one accumulator of a 6×2
 *       tile (three broadcasts live at once), which halves it; taller tiles on 32 registers are no faster and make
 *       C1 bail out (docs/BENCHMARKS.md).</li>
 *   <li>Vocab-wide products (the lm_head forward) pack op(A) once and hand out column chunks instead, each thread
 *       packing its slice of B into L2 ({@link #wide}): B is read from memory once rather than once per MC rows.</li>
 *   <li>Deep products with a big B (the lm_head's dx, the weight gradients) hand out blocks of C instead, each
 *       walking the whole depth with its own KC-deep slices of B packed into L2 ({@link #deep}).</li>
 *   <li>Row-major A is packed with 8×16 register transposes on AVX-512 (two-vector lane selections), scalar
 *       elsewhere; a transposed A is read in place by the micro-kernel ({@link #readsTransposedADirectly}), packed
 *       depth-major only where its row stride is a multiple of 4 KiB. One float species only, {@link Vec#F}: a
 *       second one (a 256-bit panel-row copy on AVX-512) polluted the Vector API's shared profiles, and the kernels
 *       C2 compiled after it (attention, these weight gradients) ran slower, attention 15–20× (docs/BENCHMARKS.md).</li>
 *   <li>Edge tiles run the same kernel; {@link #store} writes their valid part; packing pads with zeros.</li>
 *   <li>Packing buffers live per thread and are reused across calls; nothing is allocated per call but lambdas.</li>
 *   <li>The k-order of every sum is fixed by KC alone, so any thread split gives bit-identical results.</li>
 * </ul>
 */
public final class Gemm {
    private Gemm() {}

    private static final VectorSpecies<Float> F = Vec.F;
    private static final int L = Vec.LANES;
    private static final boolean FEW_REGISTERS = Vec.REGISTERS == 16;
    static final int MR = FEW_REGISTERS ? 5 : 8;
    static final int NR = 2 * L;
    /**
     * Depth of one packed block: a KC×NR B panel (32 KiB at 512 bits) stays in a 48 KiB L1 beside the 8 KiB A
     * panel streaming by; a deeper one fills L1 by itself (A/B in docs/BENCHMARKS.md).
     */
    static final int KC = 256;
    /** Rows of op(A) packed at once: MC×KC floats (65–112 KiB) stay in L2 while every B panel passes over them. */
    static final int MC = MR * (FEW_REGISTERS ? 13 : 14);
    /**
     * Most floats of packed B held at once (64 MiB); wider problems are done in NC column blocks. 64 rather than 16
     * lets the lm_head's dx (k = vocab) pack its operand once instead of per column block.
     */
    static final int B_PACK_LIMIT = 1 << 24;
    /**
     * Vocab-wide products (the lm_head's x·Wᵀ: ≥ WIDE_PANELS panels, op(A) at most A_PACK_LIMIT floats) go through
     * {@link #wide}: op(A) packed once, B read from memory once. Row blocks over a whole packed B instead stream
     * all of B (50 MB at d6) from memory once per MC rows.
     */
    static final int WIDE_PANELS = 64;
    /** Columns per chunk of the wide path: a KC-deep slice (256×256 floats, 256 KiB) stays in L2. */
    static final int WIDE_CHUNK_COLUMNS = 256;
    static final int A_PACK_LIMIT = 1 << 22;
    /**
     * Deep products whose packed op(B) would not stay in L2 go through {@link #deep}: at least DEEP_MIN_K deep and
     * DEEP_MIN_B floats (4 MiB) of B. These are the lm_head's dx (k = vocab, B = the 32768×C weight) and the weight
     * gradients dW = dYᵀ·X (k = tokens); the A/B is in docs/BENCHMARKS.md.
     */
    static final int DEEP_MIN_K = 12 * KC;
    static final int DEEP_MIN_B = 1 << 20;
    /** Columns of one deep work item: its KC-deep slice of B is at most KC·512 floats (512 KiB). */
    static final int DEEP_MAX_COLUMNS = 512;
    /** Floats of C one deep work item keeps in L2 (768 KiB), beside its B slice and A block. */
    static final int DEEP_C_BLOCK = 3 << 16;
    /** Below this many flops a call stays on the calling thread (a fork-join costs tens of microseconds). */
    static final double PARALLEL_MIN_FLOPS = 4e6;

    /** The code path this JVM runs, for {@code bench kernels}: width and micro-kernel. */
    public static String describe() {
        return "GEMM " + F.vectorBitSize() + "-bit, micro-kernel " + MR + "x" + NR + " floats (" + MR + "x2 vectors, "
                + (FEW_REGISTERS ? "16-register ISA" : "32-register ISA")
                + "), transposed A read in place unless its rows are 4 KiB multiples (then packed "
                + (PANEL_PAIRS ? "two panels a vector" : PANEL_VECTORS ? "a vector a panel" : "float by float") + ")";
    }

    /** One KC-deep pair of panels per thread for {@link #kernelInL1}: small normal floats (no subnormal slow path). */
    private static final ThreadLocal<float[][]> L1_PANELS = ThreadLocal.withInitial(() -> {
        float[] ap = new float[KC * MR], bp = new float[KC * NR];
        for (int i = 0; i < ap.length; i++) ap[i] = 1e-3f * (1 + i % 7);
        for (int i = 0; i < bp.length; i++) bp[i] = 1e-3f * (1 + i % 5);
        return new float[][] {ap, bp, new float[MR * NR]};
    });

    /**
     * The micro-kernel alone: every pool thread runs it {@code calls} times over one KC-deep pair of A and B panels
     * that stays in L1; returns the flops done. Its rate is the ceiling of every GEMM here, what one would reach if
     * packing, C's epilogue and the caches cost nothing, so {@code bench kernels} prints it beside the GEMM rows: a
     * GEMM's distance to the C loop splits into the kernel's own and the rest's.
     */
    public static double kernelInL1(int calls) {
        int threads = Parallel.threads();
        Parallel.forRange(threads, (t0, t1) -> {
            float[][] panels = L1_PANELS.get();
            for (int t = t0; t < t1; t++) {
                for (int i = 0; i < calls; i++) kernel(KC, panels[0], 0, MR, panels[1], 0, panels[2]);
            }
        });
        return 2.0 * MR * NR * KC * calls * threads;
    }

    /** The calling thread's {@link #kernelInL1} panels: A (KC×MR), B (KC×NR) and the last tile of sums (MR×NR). */
    static float[][] kernelInL1Panels() {
        return L1_PANELS.get();
    }

    private static final class Workspace {
        final float[] a = new float[MC * KC];
        /** The micro-kernel's sums for one tile, before {@link #store} scales them into C. */
        final float[] acc = new float[MR * NR];
        float[] b = new float[0];
        /** All of op(A), packed by {@link #wide}. */
        float[] aAll = new float[0];
    }

    private static final ThreadLocal<Workspace> WORKSPACE = ThreadLocal.withInitial(Workspace::new);

    public static void sgemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        check("sgemm", 1, transA, transB, m, n, k, a, aOff, lda, 0, b, bOff, ldb, 0, c, cOff, ldc, 0);
        // Only here, not in the batched entry: batched callers (Muon's symmetric products) rely on every block of a
        // product summing in the packed kernel's order.
        if (m > 0 && m <= GEMV_MAX_ROWS && transB && !transA && k > 0 && alpha != 0f) {
            gemv(m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return;
        }
        gemm(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
    }

    /** {@link #sgemm} for batch entries i at offsets off + i·stride (a stride of 0 shares that operand). */
    public static void sgemmBatched(int batch, boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, int strideA, float[] b, int bOff, int ldb, int strideB,
            float beta, float[] c, int cOff, int ldc, int strideC) {
        check("sgemmBatched", batch, transA, transB, m, n, k, a, aOff, lda, strideA, b, bOff, ldb, strideB,
                c, cOff, ldc, strideC);
        // Many small products: one per thread (each runs serially inside the pool); few big ones: split each.
        if (batch >= 2 * Parallel.threads() || 2.0 * m * n * k < 64 * PARALLEL_MIN_FLOPS) {
            Parallel.forRange(batch, (i0, i1) -> {
                for (int i = i0; i < i1; i++) {
                    gemm(transA, transB, m, n, k, alpha, a, aOff + i * strideA, lda, b, bOff + i * strideB, ldb,
                            beta, c, cOff + i * strideC, ldc);
                }
            });
        } else {
            for (int i = 0; i < batch; i++) {
                gemm(transA, transB, m, n, k, alpha, a, aOff + i * strideA, lda, b, bOff + i * strideB, ldb,
                        beta, c, cOff + i * strideC, ldc);
            }
        }
    }

    private static void gemm(boolean transA, boolean transB, int m, int n, int k, float alpha,
            float[] a, int aOff, int lda, float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        if (m == 0 || n == 0) return;
        if (k == 0 || alpha == 0f) {
            scale(m, n, beta, c, cOff, ldc);
            return;
        }
        boolean parallel = 2.0 * m * n * k >= PARALLEL_MIN_FLOPS && Parallel.threads() > 1;
        Workspace ws = WORKSPACE.get();
        int panelsAll = (n + NR - 1) / NR;
        int mTiles = (m + MR - 1) / MR;
        int threads = Parallel.threads();
        if (parallel && mTiles >= 2 * threads && panelsAll >= WIDE_PANELS && (long) mTiles * MR * k <= A_PACK_LIMIT) {
            wide(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc, ws);
            return;
        }
        if (parallel && k >= DEEP_MIN_K && (long) k * n >= DEEP_MIN_B) {
            deep(transA, transB, m, n, k, alpha, a, aOff, lda, b, bOff, ldb, beta, c, cOff, ldc);
            return;
        }
        int ncPanels = (int) Math.max(1, Math.min(panelsAll, B_PACK_LIMIT / ((long) k * NR)));
        long bSize = (long) ncPanels * k * NR;
        if (bSize > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("sgemm: k=" + k + " is too deep to pack one " + NR + "-column panel");
        }
        if (ws.b.length < bSize) ws.b = new float[(int) bSize];
        float[] bp = ws.b;
        for (int jc = 0; jc < n; jc += ncPanels * NR) {
            int panels = Math.min(ncPanels, (n - jc + NR - 1) / NR);
            int j0 = jc;
            if (parallel && (long) panels * k * NR >= (1 << 16)) {
                Parallel.forRange(panels, (p0, p1) -> packB(transB, b, bOff, ldb, k, n, j0, panels, p0, p1, bp));
            } else {
                packB(transB, b, bOff, ldb, k, n, j0, panels, 0, panels, bp);
            }
            if (!parallel) {
                block(0, m, 0, panels, panels, transA, k, n, j0, alpha, a, aOff, lda, null, bp, beta, c, cOff, ldc);
            } else if (mTiles >= 2 * threads) {
                // Chunks of row tiles handed out on demand: a thread that loses its core to another process
                // leaves its share to the others instead of holding up the whole call.
                int chunk = Math.clamp((mTiles + 4 * threads - 1) / (4 * threads), 1, MC / MR);
                int chunks = (mTiles + chunk - 1) / chunk;
                AtomicInteger next = new AtomicInteger();
                Parallel.forRange(threads, (s0, s1) -> {
                    for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                        block(ch * chunk * MR, Math.min(m, (ch + 1) * chunk * MR), 0, panels, panels, transA, k, n, j0,
                                alpha, a, aOff, lda, null, bp, beta, c, cOff, ldc);
                    }
                });
            } else {
                // Too few rows to share: chunks of B panels instead (each chunk packs the short op(A) again).
                int chunk = Math.max(1, (panels + 4 * threads - 1) / (4 * threads));
                int chunks = (panels + chunk - 1) / chunk;
                AtomicInteger next = new AtomicInteger();
                Parallel.forRange(threads, (s0, s1) -> {
                    for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                        block(0, m, ch * chunk, Math.min(panels, (ch + 1) * chunk), panels, transA, k, n, j0,
                                alpha, a, aOff, lda, null, bp, beta, c, cOff, ldc);
                    }
                });
            }
        }
    }

    /**
     * The wide path: all of op(A) packed once (MC-row blocks, each depth block of one at ic·k + pc·mcPadded, as
     * {@link #packA} lays them out) by all threads; then threads take chunks of WIDE_CHUNK_COLUMNS columns from a
     * shared counter, pack that slice of op(B) into their own buffer and run every row block over it. Same k-order
     * per element as the other paths (bit-identical results).
     */
    private static void wide(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int aOff, int lda,
            float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc, Workspace ws) {
        int mPad = (m + MR - 1) / MR * MR;
        if (ws.aAll.length < mPad * k) ws.aAll = new float[mPad * k];
        float[] aAll = ws.aAll;
        int rowBlocks = (m + MC - 1) / MC;
        Parallel.forRange(rowBlocks, (r0, r1) -> {
            for (int ib = r0; ib < r1; ib++) {
                int ic = ib * MC, mc = Math.min(MC, m - ic), mcPad = (mc + MR - 1) / MR * MR;
                for (int pc = 0; pc < k; pc += KC) {
                    packA(transA, a, aOff, lda, ic, mc, pc, Math.min(KC, k - pc), aAll, ic * k + pc * mcPad);
                }
            }
        });
        int chunkPanels = Math.max(1, WIDE_CHUNK_COLUMNS / NR), chunkColumns = chunkPanels * NR;
        int chunks = (n + chunkColumns - 1) / chunkColumns;
        AtomicInteger next = new AtomicInteger();
        Parallel.forRange(Parallel.threads(), (s0, s1) -> {
            Workspace own = WORKSPACE.get();
            if (own.b.length < chunkPanels * k * NR) own.b = new float[chunkPanels * k * NR];
            for (int ch; (ch = next.getAndIncrement()) < chunks; ) {
                int jc = ch * chunkColumns, panels = Math.min(chunkPanels, (n - jc + NR - 1) / NR);
                packB(transB, b, bOff, ldb, k, n, jc, panels, 0, panels, own.b);
                block(0, m, 0, panels, panels, transA, k, n, jc, alpha, a, aOff, lda, aAll, own.b, beta, c, cOff, ldc);
            }
        });
    }

    /**
     * The deep path: C is cut into blocks of rows × columns (at most DEEP_C_BLOCK floats, DEEP_MAX_COLUMNS columns;
     * a multiple of the thread count) handed out from a shared counter. A block walks the whole depth, packing each
     * KC-deep slice of its columns of op(B) into its own buffer, so its C block and B slice stay in L2 instead of a
     * packed B of k·n floats streaming from memory once per MC rows. Same k-order per element as the other paths.
     */
    private static void deep(boolean transA, boolean transB, int m, int n, int k, float alpha, float[] a, int aOff, int lda,
            float[] b, int bOff, int ldb, float beta, float[] c, int cOff, int ldc) {
        int threads = Parallel.threads();
        int[] split = deepSplit(m, n, threads);
        if (split == null) split = new int[] {threads, 1}; // some row count that no even split fits: one block per thread
        int colBlocks = split[1];
        int blockPanels = ((n + NR - 1) / NR + colBlocks - 1) / colBlocks;
        int mTiles = (m + MR - 1) / MR;
        int chunkTiles = (mTiles + split[0] - 1) / split[0];
        int rowBlocks = (mTiles + chunkTiles - 1) / chunkTiles, items = rowBlocks * colBlocks;
        AtomicInteger next = new AtomicInteger();
        Parallel.forRange(threads, (s0, s1) -> {
            Workspace own = WORKSPACE.get();
            if (own.b.length < blockPanels * KC * NR) own.b = new float[blockPanels * KC * NR];
            for (int item; (item = next.getAndIncrement()) < items; ) {
                int i0 = item / colBlocks * chunkTiles * MR, i1 = Math.min(m, i0 + chunkTiles * MR);
                int jc = item % colBlocks * blockPanels * NR; // < n: DEEP_MAX_COLUMNS is a multiple of NR
                int panels = Math.min(blockPanels, (n - jc + NR - 1) / NR);
                for (int pc = 0; pc < k; pc += KC) {
                    int kc = Math.min(KC, k - pc);
                    packB(transB, b, bOff + (transB ? pc : pc * ldb), ldb, kc, n, jc, panels, 0, panels, own.b);
                    block(i0, i1, 0, panels, panels, transA, kc, n, jc, alpha, a, aOff + (transA ? pc * lda : pc), lda,
                            null, own.b, pc == 0 ? beta : 1f, c, cOff, ldc);
                }
            }
        });
    }

    /**
     * How {@link #deep} cuts C: {row blocks, column blocks}, or null when no even split exists. Every work item packs
     * its columns of op(B) over the whole depth and packs or streams its rows of op(A), so a split moves about
     * k·(rowBlocks·n + colBlocks·m) floats on top of the products. The cheapest split wins whose items are a multiple
     * of the threads and whose C blocks stay within DEEP_C_BLOCK floats and DEEP_MAX_COLUMNS columns; ties go to
     * fewer items, then fewer column blocks. So d6's c_proj weight gradient (384×1536) packs its 25 MB B once over
     * four column blocks instead of twice over 2×3 blocks (5–9% faster at 512 bits, docs/BENCHMARKS.md), and a
     * 1536-row one keeps its row blocks. (Weighing A's in-place reads below B's packing also moved the square dW
     * products to column blocks: mixed at 512 bits, 384×384 7–17% slower in two of three AVX2 runs.)
     */
    static int[] deepSplit(int m, int n, int threads) {
        int mTiles = (m + MR - 1) / MR, panels = (n + NR - 1) / NR;
        int[] best = null;
        long bestCost = Long.MAX_VALUE;
        int bestItems = Integer.MAX_VALUE;
        for (int cb = (n + DEEP_MAX_COLUMNS - 1) / DEEP_MAX_COLUMNS; cb <= panels; cb++) {
            int blockPanels = (panels + cb - 1) / cb, cols = Math.min(n, blockPanels * NR);
            if (blockPanels * (cb - 1) >= panels || cols > DEEP_MAX_COLUMNS) continue; // an empty block, or too wide
            for (int rb = 1; rb <= mTiles; rb++) {
                int chunkTiles = (mTiles + rb - 1) / rb, items = rb * cb;
                if (chunkTiles * (rb - 1) >= mTiles || items % threads != 0) continue; // an empty block, or uneven
                if ((long) Math.min(m, chunkTiles * MR) * cols > DEEP_C_BLOCK) continue;
                long cost = (long) rb * n + (long) cb * m;
                if (cost < bestCost || (cost == bestCost && items < bestItems)) {
                    best = new int[] {rb, cb};
                    bestCost = cost;
                    bestItems = items;
                }
                break; // more row blocks only cost more
            }
        }
        return best;
    }

    /** Up to this many rows of x·Wᵀ go through {@link #gemv} (KV-cache decode is 1 row per sample). */
    static final int GEMV_MAX_ROWS = 8;

    /**
     * Decode-sized x·Wᵀ (a few rows against a weight stored (n, k)): {@link Gemv#rows} over the n outputs, split over
     * the pool (a whole small weight stays on the calling thread).
     */
    private static void gemv(int m, int n, int k, float alpha, float[] a, int aOff, int lda, float[] b, int bOff, int ldb,
                             float beta, float[] c, int cOff, int ldc) {
        int grain = (long) n * k < (1 << 16) ? n : Math.max(8, (1 << 14) / Math.max(1, k));
        Parallel.forRange(n, grain, (j0, j1) -> Gemv.rows(b, null, bOff, ldb, k, a, aOff, lda, m, c, cOff, ldc, j0, j1, alpha, beta));
    }

    /**
     * C rows [i0, i1) × packed B panels [p0, p1) of the NC block (of {@code panels} panels) that starts at column jc.
     * op(A) is packed here block by block, or read from {@code aAll} when {@link #wide} packed it already (i0 = 0).
     */
    private static void block(int i0, int i1, int p0, int p1, int panels, boolean transA, int k, int n, int jc, float alpha,
            float[] a, int aOff, int lda, float[] aAll, float[] bp, float beta, float[] c, int cOff, int ldc) {
        Workspace ws = WORKSPACE.get();
        float[] acc = ws.acc;
        float[] ap = aAll != null ? aAll : ws.a;
        boolean direct = transA && aAll == null && readsTransposedADirectly(lda);
        for (int ic = i0; ic < i1; ic += MC) {
            int mc = Math.min(MC, i1 - ic), mcPad = (mc + MR - 1) / MR * MR, full = mc / MR * MR;
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                int ao = 0;
                if (aAll != null) ao = ic * k + pc * mcPad;
                else if (!direct) packA(transA, a, aOff, lda, ic, mc, pc, kc, ap, 0);
                else if (full < mc) packTransposedA(a, aOff, lda, ic + full, mc - full, pc, kc, ap, 0);
                float bet = pc == 0 ? beta : 1f; // later depth blocks accumulate onto the first
                for (int jp = p0; jp < p1; jp++) {
                    int col = jc + jp * NR;
                    int nr = Math.min(NR, n - col);
                    int bi = pc * panels * NR + jp * kc * NR;
                    for (int ir = 0; ir < mc; ir += MR) {
                        int mr = Math.min(MR, mc - ir);
                        int ci = cOff + (ic + ir) * ldc + col;
                        // A transposed A is read where it lies (MR floats per stored row); a short last panel
                        // was packed at ap[0].
                        boolean inPlace = direct && mr == MR;
                        float[] aa = inPlace ? a : ap;
                        int ai = inPlace ? aOff + pc * lda + ic + ir : direct ? 0 : ao + ir * kc;
                        int as = inPlace ? lda : MR;
                        kernel(kc, aa, ai, as, bp, bi, acc);
                        store(acc, mr, nr, c, ci, ldc, alpha, bet);
                    }
                }
            }
        }
    }

    /**
     * A transposed A (stored k×m: dYᵀ of a weight gradient) already holds each k's MR floats of a panel side by side,
     * so the micro-kernel reads them in place (a stride of lda per k) instead of packing: 10–20% faster weight
     * gradients at every width (docs/BENCHMARKS.md). Except where a row is a multiple of 4 KiB long: then all kc rows
     * a micro-kernel walks fall into one L1 set and evict each other (d4's 1024-row MLP, the lm_head: 30–70% slower).
     */
    static boolean readsTransposedADirectly(int lda) {
        return lda % 1024 != 0;
    }

    /** The MR×NR micro-kernel for this ISA; A's MR floats of depth p are at ap[ai + p·as …]; the sums go to acc. */
    private static void kernel(int kc, float[] ap, int ai, int as, float[] bp, int bi, float[] acc) {
        if (FEW_REGISTERS) {
            kernel5x2(kc, ap, ai, as, bp, bi, acc);
        } else {
            kernel8x2(kc, ap, ai, as, bp, bi, acc);
        }
    }

    /**
     * C[r][q] = alpha·acc[r][q] + beta·C[r][q] over the valid mr×nr part of a tile (beta == 0 never reads C). Kept out
     * of the micro-kernels on purpose: with this epilogue inside, C2 reached its inlining node limit while parsing
     * them and left the alpha products as virtual calls on boxed vectors (a 6×2 AVX2 tile ran 7× slower, a 5×2 one
     * twice; with the epilogue out, 5×2 runs level with 4×2; docs/BENCHMARKS.md).
     */
    private static void store(float[] acc, int mr, int nr, float[] c, int ci, int ldc, float alpha, float beta) {
        if (nr == NR) {
            FloatVector va = FloatVector.broadcast(F, alpha), vb = FloatVector.broadcast(F, beta);
            for (int r = 0; r < mr; r++) {
                int o = ci + r * ldc;
                FloatVector x0 = FloatVector.fromArray(F, acc, r * NR).mul(va);
                FloatVector x1 = FloatVector.fromArray(F, acc, r * NR + L).mul(va);
                if (beta != 0f) {
                    x0 = x0.add(FloatVector.fromArray(F, c, o).mul(vb));
                    x1 = x1.add(FloatVector.fromArray(F, c, o + L).mul(vb));
                }
                x0.intoArray(c, o);
                x1.intoArray(c, o + L);
            }
        } else {
            for (int r = 0; r < mr; r++) {
                for (int q = 0; q < nr; q++) {
                    int x = ci + r * ldc + q;
                    float v = alpha * acc[r * NR + q];
                    c[x] = beta == 0f ? v : v + c[x] * beta;
                }
            }
        }
    }

    /** Packs op(A) rows [i0, i0+mc) × depth [p0, p0+kc) at ap[apOff..] as MR-row panels, each kc×MR (k-major), zero-padded. */
    private static void packA(boolean transA, float[] a, int aOff, int lda, int i0, int mc, int p0, int kc, float[] ap, int apOff) {
        if (transA) {
            packTransposedA(a, aOff, lda, i0, mc, p0, kc, ap, apOff);
            return;
        }
        for (int ir = 0; ir < mc; ir += MR) {
            int mr = Math.min(MR, mc - ir);
            int base = apOff + ir * kc;
            int p = 0;
            if (TRANSPOSE_8X16 && mr == MR) {
                int src = aOff + (i0 + ir) * lda + p0;
                for (; p + 16 <= kc; p += 16) transpose8x16(a, src + p, lda, ap, base + p * MR);
            }
            for (int r = 0; r < mr; r++) {
                int src = aOff + (i0 + ir + r) * lda + p0;
                for (int q = p; q < kc; q++) ap[base + q * MR + r] = a[src + q];
            }
            if (mr < MR) zeroRows(ap, base, kc, mr);
        }
    }

    /**
     * {@link #packA} of a transposed A (stored k×m: dYᵀ of a weight gradient dW = dYᵀ·X), for the row strides the
     * micro-kernel cannot read in place (4 KiB multiples) and a short last panel: depth-major, so each stored row's mc
     * floats are read in one contiguous run and dealt out to the panels.
     */
    private static void packTransposedA(float[] a, int aOff, int lda, int i0, int mc, int p0, int kc, float[] ap, int apOff) {
        int full = mc / MR * MR;
        for (int p = 0; p < kc; p++) {
            int src = aOff + (p0 + p) * lda + i0;
            int dst = apOff + p * MR;
            int ir = 0;
            // One vector holds two panels' MR floats (AVX-512: 16 lanes, MR 8; AVX2: 8 lanes, MR 4): whole-vector
            // stores, each spilling MR floats into its panel's next depth, which the next p overwrites (so not at the
            // last depth: that one goes float by float below). One float at a time, this copy took 22% of d4 c_fc dW's
            // time beside the kernel's 58%; a vector at a time it packs 1.6-2x faster (docs/BENCHMARKS.md). No masked
            // stores: AVX2's vmaskmovps is microcode on some AMD cores.
            if (PANEL_PAIRS && p + 1 < kc) {
                for (; ir + 2 * MR <= full; ir += 2 * MR) {
                    FloatVector v = FloatVector.fromArray(F, a, src + ir);
                    v.intoArray(ap, dst + ir * kc);
                    v.rearrange(HIGH_HALF_DOWN).intoArray(ap, dst + (ir + MR) * kc);
                }
            } else if (PANEL_VECTORS && (L == MR || p + 1 < kc)) {
                // A vector a panel (AVX2's 5-row panels: its L - MR extra floats spill into the next depth as above,
                // read from this row's next columns or the next stored row, p + 1 < kc: inside a).
                for (; ir < full; ir += MR) FloatVector.fromArray(F, a, src + ir).intoArray(ap, dst + ir * kc);
            }
            for (; ir < full; ir += MR) {
                int s = src + ir, d = dst + ir * kc;
                for (int r = 0; r < MR; r++) ap[d + r] = a[s + r]; // constant trip count: unrolled
            }
            for (int r = full; r < mc; r++) ap[dst + full * kc + r - full] = a[src + r];
        }
        if (full < mc) zeroRows(ap, apOff + full * kc, kc, mc - full);
    }

    /** A vector spans two A panels' MR floats; the shuffle brings the second panel's down to the low lanes. */
    private static final boolean PANEL_PAIRS = L == 2 * MR;
    /** A vector holds an A panel's MR floats, and any extra ones spill no further than the panel's next depth. */
    private static final boolean PANEL_VECTORS = MR <= L && L < 2 * MR;
    private static final VectorShuffle<Float> HIGH_HALF_DOWN = VectorShuffle.fromOp(F, i -> (i + MR) % L);

    /** Zero rows [mr, MR) of a packed A panel (the padding of a short last panel). */
    private static void zeroRows(float[] ap, int base, int kc, int mr) {
        for (int p = 0; p < kc; p++) {
            for (int r = mr; r < MR; r++) ap[base + p * MR + r] = 0f;
        }
    }

    /** Packing row-major A is an 8×16 → 16×8 transpose per block where MR = 8 and a vector holds 16 floats (AVX-512). */
    private static final boolean TRANSPOSE_8X16 = MR == 8 && L == 16;
    /** Two-vector lane selections (index i &lt; 16 from the first vector, 16 + i from the second) for the three steps. */
    private static final FloatVector PAIRS_LO = indices(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
            PAIRS_HI = indices(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
            QUADS_LO = indices(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23),
            QUADS_HI = indices(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31),
            OCTS_LO = indices(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23),
            OCTS_HI = indices(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);

    private static FloatVector indices(int... lanes) {
        if (!TRANSPOSE_8X16) return null;
        float[] f = new float[L];
        for (int i = 0; i < L; i++) f[i] = lanes[i];
        return FloatVector.fromArray(F, f, 0);
    }

    /**
     * ap[dst + p·8 + r] = a[src + r·lda + p] for 8 rows × 16 depths: 8 loads, 24 two-vector selections, 8 stores
     * (about twice as fast as the scalar copy). Step 1 interleaves row pairs, step 2 pairs of pairs, step 3 the two
     * quads, so each output vector holds all 8 rows at two consecutive depths.
     */
    private static void transpose8x16(float[] a, int src, int lda, float[] ap, int dst) {
        FloatVector r0 = FloatVector.fromArray(F, a, src), r1 = FloatVector.fromArray(F, a, src + lda);
        FloatVector r2 = FloatVector.fromArray(F, a, src + 2 * lda), r3 = FloatVector.fromArray(F, a, src + 3 * lda);
        FloatVector r4 = FloatVector.fromArray(F, a, src + 4 * lda), r5 = FloatVector.fromArray(F, a, src + 5 * lda);
        FloatVector r6 = FloatVector.fromArray(F, a, src + 6 * lda), r7 = FloatVector.fromArray(F, a, src + 7 * lda);
        FloatVector p01l = PAIRS_LO.selectFrom(r0, r1), p01h = PAIRS_HI.selectFrom(r0, r1);
        FloatVector p23l = PAIRS_LO.selectFrom(r2, r3), p23h = PAIRS_HI.selectFrom(r2, r3);
        FloatVector p45l = PAIRS_LO.selectFrom(r4, r5), p45h = PAIRS_HI.selectFrom(r4, r5);
        FloatVector p67l = PAIRS_LO.selectFrom(r6, r7), p67h = PAIRS_HI.selectFrom(r6, r7);
        FloatVector a0 = QUADS_LO.selectFrom(p01l, p23l), a1 = QUADS_HI.selectFrom(p01l, p23l); // rows 0-3, depths 0-3, 4-7
        FloatVector a2 = QUADS_LO.selectFrom(p01h, p23h), a3 = QUADS_HI.selectFrom(p01h, p23h); // depths 8-11, 12-15
        FloatVector b0 = QUADS_LO.selectFrom(p45l, p67l), b1 = QUADS_HI.selectFrom(p45l, p67l); // rows 4-7
        FloatVector b2 = QUADS_LO.selectFrom(p45h, p67h), b3 = QUADS_HI.selectFrom(p45h, p67h);
        OCTS_LO.selectFrom(a0, b0).intoArray(ap, dst);
        OCTS_HI.selectFrom(a0, b0).intoArray(ap, dst + 16);
        OCTS_LO.selectFrom(a1, b1).intoArray(ap, dst + 32);
        OCTS_HI.selectFrom(a1, b1).intoArray(ap, dst + 48);
        OCTS_LO.selectFrom(a2, b2).intoArray(ap, dst + 64);
        OCTS_HI.selectFrom(a2, b2).intoArray(ap, dst + 80);
        OCTS_LO.selectFrom(a3, b3).intoArray(ap, dst + 96);
        OCTS_HI.selectFrom(a3, b3).intoArray(ap, dst + 112);
    }

    /**
     * Packs op(B) (all k rows) × panels [q0, q1) of the NC block (of {@code panels} panels) starting at column jc.
     * Depth-block-major: the KC-deep slices of all panels lie together (block pc at pc·panels·NR, panel jp of it at
     * + jp·kc·NR, kc×NR k-major), so one depth block of B is one contiguous stream for the prefetchers.
     */
    private static void packB(boolean transB, float[] b, int bOff, int ldb, int k, int n, int jc, int panels,
            int q0, int q1, float[] bp) {
        for (int jp = q0; jp < q1; jp++) {
            int col = jc + jp * NR;
            int nr = Math.min(NR, n - col);
            for (int pc = 0; pc < k; pc += KC) {
                int kc = Math.min(KC, k - pc);
                int base = pc * panels * NR + jp * kc * NR;
                if (!transB && nr == NR) {
                    for (int p = 0; p < kc; p++) {
                        int src = bOff + (pc + p) * ldb + col;
                        int dst = base + p * NR;
                        FloatVector.fromArray(F, b, src).intoArray(bp, dst);
                        FloatVector.fromArray(F, b, src + L).intoArray(bp, dst + L);
                    }
                } else if (!transB) {
                    for (int p = 0; p < kc; p++) {
                        int src = bOff + (pc + p) * ldb + col;
                        int dst = base + p * NR;
                        for (int q = 0; q < nr; q++) bp[dst + q] = b[src + q];
                        for (int q = nr; q < NR; q++) bp[dst + q] = 0f;
                    }
                } else {
                    // Stored B is n×k: read each column's row contiguously, in depth chunks that stay in L1.
                    for (int pb = 0; pb < kc; pb += 64) {
                        int pe = Math.min(kc, pb + 64);
                        for (int q = 0; q < nr; q++) {
                            int src = bOff + (col + q) * ldb + pc;
                            for (int p = pb; p < pe; p++) bp[base + p * NR + q] = b[src + p];
                        }
                        for (int q = nr; q < NR; q++) {
                            for (int p = pb; p < pe; p++) bp[base + p * NR + q] = 0f;
                        }
                    }
                }
            }
        }
    }

    /** C = beta·C over m×n (beta == 0 writes zeros without reading C). */
    private static void scale(int m, int n, float beta, float[] c, int cOff, int ldc) {
        if (beta == 1f) return;
        for (int i = 0; i < m; i++) {
            int ci = cOff + i * ldc;
            for (int j = 0; j < n; j++) c[ci + j] = beta == 0f ? 0f : c[ci + j] * beta;
        }
    }

    /** 8×2-vector tile: acc[r][v] = Σ_p A[p][r]·B[p][v·L…], written to acc (MR×NR, row-major) for {@link #store}. */
    private static void kernel8x2(int kc, float[] ap, int ai, int as, float[] bp, int bi, float[] acc) {
        FloatVector c0_0 = FloatVector.zero(F), c0_1 = FloatVector.zero(F);
        FloatVector c1_0 = FloatVector.zero(F), c1_1 = FloatVector.zero(F);
        FloatVector c2_0 = FloatVector.zero(F), c2_1 = FloatVector.zero(F);
        FloatVector c3_0 = FloatVector.zero(F), c3_1 = FloatVector.zero(F);
        FloatVector c4_0 = FloatVector.zero(F), c4_1 = FloatVector.zero(F);
        FloatVector c5_0 = FloatVector.zero(F), c5_1 = FloatVector.zero(F);
        FloatVector c6_0 = FloatVector.zero(F), c6_1 = FloatVector.zero(F);
        FloatVector c7_0 = FloatVector.zero(F), c7_1 = FloatVector.zero(F);
        for (int p = 0; p < kc; p++, ai += as, bi += 2 * L) {
            FloatVector b0 = FloatVector.fromArray(F, bp, bi);
            FloatVector b1 = FloatVector.fromArray(F, bp, bi + 1 * L);
            FloatVector a0 = FloatVector.broadcast(F, ap[ai + 0]);
            c0_0 = a0.fma(b0, c0_0); c0_1 = a0.fma(b1, c0_1);
            FloatVector a1 = FloatVector.broadcast(F, ap[ai + 1]);
            c1_0 = a1.fma(b0, c1_0); c1_1 = a1.fma(b1, c1_1);
            FloatVector a2 = FloatVector.broadcast(F, ap[ai + 2]);
            c2_0 = a2.fma(b0, c2_0); c2_1 = a2.fma(b1, c2_1);
            FloatVector a3 = FloatVector.broadcast(F, ap[ai + 3]);
            c3_0 = a3.fma(b0, c3_0); c3_1 = a3.fma(b1, c3_1);
            FloatVector a4 = FloatVector.broadcast(F, ap[ai + 4]);
            c4_0 = a4.fma(b0, c4_0); c4_1 = a4.fma(b1, c4_1);
            FloatVector a5 = FloatVector.broadcast(F, ap[ai + 5]);
            c5_0 = a5.fma(b0, c5_0); c5_1 = a5.fma(b1, c5_1);
            FloatVector a6 = FloatVector.broadcast(F, ap[ai + 6]);
            c6_0 = a6.fma(b0, c6_0); c6_1 = a6.fma(b1, c6_1);
            FloatVector a7 = FloatVector.broadcast(F, ap[ai + 7]);
            c7_0 = a7.fma(b0, c7_0); c7_1 = a7.fma(b1, c7_1);
        }
        c0_0.intoArray(acc, 0 * L); c0_1.intoArray(acc, 1 * L);
        c1_0.intoArray(acc, 2 * L); c1_1.intoArray(acc, 3 * L);
        c2_0.intoArray(acc, 4 * L); c2_1.intoArray(acc, 5 * L);
        c3_0.intoArray(acc, 6 * L); c3_1.intoArray(acc, 7 * L);
        c4_0.intoArray(acc, 8 * L); c4_1.intoArray(acc, 9 * L);
        c5_0.intoArray(acc, 10 * L); c5_1.intoArray(acc, 11 * L);
        c6_0.intoArray(acc, 12 * L); c6_1.intoArray(acc, 13 * L);
        c7_0.intoArray(acc, 14 * L); c7_1.intoArray(acc, 15 * L);
    }

    /**
     * 5×2-vector tile: acc[r][v] = Σ_p A[p][r]·B[p][v·L…], written to acc (MR×NR, row-major) for {@link #store}.
     * Its 10 accumulators and 2 B vectors leave AVX2's 16 registers room for few broadcasts in flight, and how many
     * C2 schedules ahead depends on the profiles the Vector API's methods share with every other kernel: a second
     * micro-kernel method compiled before this one turned it, in most JVMs, into a form that keeps one accumulator
     * on the stack (each FMA of that chain waits for a store and a reload: GEMMs and the d6 step 1.5–2× slower,
     * docs/BENCHMARKS.md session 28). Check its compiled form when adding vector kernels beside it.
     */
    private static void kernel5x2(int kc, float[] ap, int ai, int as, float[] bp, int bi, float[] acc) {
        FloatVector c0_0 = FloatVector.zero(F), c0_1 = FloatVector.zero(F);
        FloatVector c1_0 = FloatVector.zero(F), c1_1 = FloatVector.zero(F);
        FloatVector c2_0 = FloatVector.zero(F), c2_1 = FloatVector.zero(F);
        FloatVector c3_0 = FloatVector.zero(F), c3_1 = FloatVector.zero(F);
        FloatVector c4_0 = FloatVector.zero(F), c4_1 = FloatVector.zero(F);
        for (int p = 0; p < kc; p++, ai += as, bi += 2 * L) {
            FloatVector b0 = FloatVector.fromArray(F, bp, bi);
            FloatVector b1 = FloatVector.fromArray(F, bp, bi + 1 * L);
            FloatVector a0 = FloatVector.broadcast(F, ap[ai + 0]);
            c0_0 = a0.fma(b0, c0_0); c0_1 = a0.fma(b1, c0_1);
            FloatVector a1 = FloatVector.broadcast(F, ap[ai + 1]);
            c1_0 = a1.fma(b0, c1_0); c1_1 = a1.fma(b1, c1_1);
            FloatVector a2 = FloatVector.broadcast(F, ap[ai + 2]);
            c2_0 = a2.fma(b0, c2_0); c2_1 = a2.fma(b1, c2_1);
            FloatVector a3 = FloatVector.broadcast(F, ap[ai + 3]);
            c3_0 = a3.fma(b0, c3_0); c3_1 = a3.fma(b1, c3_1);
            FloatVector a4 = FloatVector.broadcast(F, ap[ai + 4]);
            c4_0 = a4.fma(b0, c4_0); c4_1 = a4.fma(b1, c4_1);
        }
        c0_0.intoArray(acc, 0 * L); c0_1.intoArray(acc, 1 * L);
        c1_0.intoArray(acc, 2 * L); c1_1.intoArray(acc, 3 * L);
        c2_0.intoArray(acc, 4 * L); c2_1.intoArray(acc, 5 * L);
        c3_0.intoArray(acc, 6 * L); c3_1.intoArray(acc, 7 * L);
        c4_0.intoArray(acc, 8 * L); c4_1.intoArray(acc, 9 * L);
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
