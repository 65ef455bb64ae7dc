package nanochat4j.tensor.cuda;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;

/**
 * Our own tensor-core GEMM, generated per tile shape: each {@link Tile} is an NVRTC compile of its source with its sizes
 * as -D constants. Two kernels: {@code gemm_wgmma.cu} (Hopper's warpgroup MMA, wgmma.mma_async, operands copied into
 * shared memory by TMA and read from there by the tensor cores; sm_90a only) and {@code gemm.cu} (mma.sync m16n8k16,
 * any tensor-core GPU). On
 * tensors it computes C = alpha·A·Bᵀ + beta·C for A (batch…, M, K) and B (N, K) or (batch…, N, K) in bf16, C (batch…,
 * M, N) fp32 — the layout of y = x·Wᵀ; on device addresses also A·B and Aᵀ·B (the backward's dx = dy·W and dW =
 * dyᵀ·x). {@code bench kernels --device cuda} times every tile beside cuBLAS on the model's layer shapes and reports the
 * faster per shape.
 */
public final class TensorCoreGemm {
    /**
     * A block tile BM×BN×BK. mma.sync ({@code stages} 0): split into warps of WM×WN; the static shared memory of the
     * double-buffered, padded bf16 tiles, 2·(BM+BN)·(BK+8)·2 bytes, stays within the 48 KiB a kernel may declare
     * statically. wgmma ({@link #wgmma(int, int, int)}): two consumer warpgroups of 64 rows × BN (the wgmma's N) each
     * and one producer warpgroup that issues the TMA copies, BK 64, {@code stages} stages of dynamic shared
     * memory, (BM+BN)·64·2 bytes each, plus their two mbarriers and 1 KiB to align the stages for the swizzle; with
     * {@code splits} > 1 the depth is split that many ways (gemm_wgmma.cu's split-K), for a C of few tiles.
     */
    public record Tile(int bm, int bn, int bk, int wm, int wn, int stages, int splits) {
        /** An mma.sync tile (gemm.cu). */
        public Tile(int bm, int bn, int bk, int wm, int wn) {
            this(bm, bn, bk, wm, wn, 0, 1);
        }

        /** A wgmma tile (gemm_wgmma.cu): BM 128 (two consumer warpgroups) and a producer, N = BN, depth 64 a stage. */
        public static Tile wgmma(int bm, int bn, int stages) {
            if (bm != 128 || (bn != 128 && bn != 256) || stages < 2) {
                throw new IllegalArgumentException("gemm_wgmma.cu takes BM 128, BN 128 or 256 and 2 or more stages, not " + bm + "x" + bn + "/" + stages);
            }
            return new Tile(bm, bn, 64, 64, bn, stages, 1);
        }

        /** This wgmma tile with the depth split {@code ways} ways, each into its own fp32 slice, summed after. */
        public Tile splitK(int ways) {
            if (!wgmma() || ways < 2) throw new IllegalArgumentException("split-K: a wgmma tile split 2 or more ways, not " + this + " / " + ways);
            return new Tile(bm, bn, bk, wm, wn, stages, ways);
        }

        /** Hopper's warpgroup-MMA kernel (sm_90a), not the mma.sync one. */
        public boolean wgmma() { return stages > 0; }

        public int threads() { return wgmma() ? (bm / 64 + 1) * 128 : (bm / wm) * (bn / wn) * 32; }

        /** Dynamic shared memory a block of this tile takes (the mma.sync kernel's is static). */
        public int sharedBytes() { return wgmma() ? 1024 + stages * ((bm + bn) * bk * 2 + 16) : 0; }

        /** The kernel source this tile compiles. */
        public String source() { return wgmma() ? "gemm_wgmma" : "gemm"; }

        /** "bm,bn,bk,wm,wn" or "wgmma,bm,bn,stages[,splitS]": how a checkpoint names the tile (GemmChooser.saved). */
        public String key() {
            if (!wgmma()) return bm + "," + bn + "," + bk + "," + wm + "," + wn;
            return "wgmma," + bm + "," + bn + "," + stages + (splits > 1 ? ",split" + splits : "");
        }

        public Map<String, String> defines() {
            if (wgmma()) return Map.of("BM", String.valueOf(bm), "BN", String.valueOf(bn), "STAGES", String.valueOf(stages), "BLOCK", "256");
            return Map.of("BM", String.valueOf(bm), "BN", String.valueOf(bn), "BK", String.valueOf(bk), "WM", String.valueOf(wm),
                    "WN", String.valueOf(wn), "BLOCK", "256");
        }

        /** The -D options nvcc gets for this tile (the compile test). */
        public List<String> nvccDefines() {
            return defines().entrySet().stream().sorted(Map.Entry.comparingByKey()).map(e -> "-D" + e.getKey() + "=" + e.getValue()).toList();
        }

        /**
         * Whether the tile divides the shape. A split-K tile also needs a C of at most {@link #SPLIT_MAX_TILES} tiles
         * (where a split pays: fewer blocks than two waves of SMs; it also bounds the workspace) and at least 8 of
         * depth's 64-deep tiles in each split (a shallow split spends its time filling the pipeline).
         */
        public boolean fits(int m, int n, int k) {
            if (m % bm != 0 || n % bn != 0 || k % bk != 0) return false;
            return splits == 1 || (long) (m / bm) * (n / bn) <= SPLIT_MAX_TILES && k / bk >= 8 * splits;
        }

        @Override
        public String toString() {
            if (!wgmma()) return bm + "x" + bn + "x" + bk + "/" + wm + "x" + wn;
            return "wgmma " + bm + "x" + bn + "x" + bk + "/" + stages + " stages" + (splits > 1 ? ", split-K " + splits : "");
        }
    }

    /** The mma.sync tiles: 8 warps of 64×32 on 128×128, and 8 warps of 32×32 on 64×128 (more blocks for small M·N). */
    public static final List<Tile> TILES = List.of(new Tile(128, 128, 32, 64, 32), new Tile(64, 128, 32, 32, 32));

    /**
     * The wgmma tiles (Hopper): two consumer warpgroups on 128×256 (four stages, 192 KiB: one block an SM, the most work
     * per byte loaded) and on 128×128 (six stages of half the size; twice the blocks for the narrower products). The
     * stages fill as much of the SM's 227 KiB as fits, so TMA runs that many tiles ahead of the tensor cores.
     */
    public static final List<Tile> WGMMA_TILES = List.of(Tile.wgmma(128, 256, 4), Tile.wgmma(128, 128, 6),
            Tile.wgmma(128, 256, 4).splitK(2), Tile.wgmma(128, 256, 4).splitK(3),
            Tile.wgmma(128, 128, 6).splitK(2), Tile.wgmma(128, 128, 6).splitK(3), Tile.wgmma(128, 128, 6).splitK(4),
            Tile.wgmma(128, 128, 6).splitK(6));

    /**
     * The most C tiles a split-K tile takes on: 256, under two waves of an H100/H200's 132 SMs. The weight gradients of
     * the model's narrow layers (768² at d12: 36 tiles of 128×128) leave most SMs idle unsplit; the split counts above
     * (2, 3, 4, 6) give the chooser several wave fillings to time.
     */
    public static final int SPLIT_MAX_TILES = 256;

    /** The tiles a device runs: the wgmma ones first on Hopper (sm_90a), then the mma.sync ones everywhere. */
    public static List<Tile> tiles(boolean hopper) {
        if (!hopper) return TILES;
        List<Tile> all = new ArrayList<>(WGMMA_TILES);
        all.addAll(TILES);
        return List.copyOf(all);
    }

    private final CudaContext ctx;
    /** The most blocks a wgmma launch takes (persistent: one an SM; fewer in tests, so each block walks several tiles). */
    private final int maxBlocks;

    public TensorCoreGemm(CudaContext ctx) {
        this(ctx, ctx.multiprocessors());
    }

    TensorCoreGemm(CudaContext ctx, int maxBlocks) {
        this.ctx = ctx;
        this.maxBlocks = maxBlocks;
    }

    /** The first tile that divides the shape, or null (then only cuBLAS can run it). */
    public static Tile firstFitting(int m, int n, int k) {
        for (Tile t : TILES) if (t.fits(m, n, k)) return t;
        return null;
    }

    /** C = alpha·A·Bᵀ + beta·C with {@code tile} (see the class comment for the shapes); beta = 0 ignores C's contents. */
    public void run(Tensor a, Tensor b, Tensor c, float alpha, float beta, Tile tile) {
        checkOperands(a, b, c);
        if (a.rank() < 2 || b.rank() < 2 || c.rank() != a.rank()) {
            throw new IllegalArgumentException("TensorCoreGemm: A " + a + ", B " + b + ", C " + c + ": expected (…, M, K), (…, N, K), (…, M, N)");
        }
        int m = a.shape(-2), k = a.shape(-1), n = b.shape(-2);
        int batch = a.numel() / (m * k);
        boolean sharedB = b.rank() == 2;
        if (b.shape(-1) != k || c.shape(-2) != m || c.shape(-1) != n || c.numel() != batch * m * n
                || (!sharedB && b.numel() != batch * n * k)) {
            throw new IllegalArgumentException("TensorCoreGemm: shapes A " + a + ", B " + b + ", C " + c + " do not make C = A·Bᵀ");
        }
        checkTile(a, b, c, m, n, k, tile);
        run(a.deviceAddress(), b.deviceAddress(), c.deviceAddress(), m, n, k, batch, sharedB, alpha, beta, tile);
        Reference.reachabilityFence(a); // raw addresses above: the tensors stay reachable past the launch
        Reference.reachabilityFence(b); // (see CudaContext.Module#launch)
        Reference.reachabilityFence(c);
    }

    /**
     * C (M, N) = alpha·op(A)·op(B) + beta·C on matrices in any layout of ours: A (M, K), or (K, M) when {@code
     * transA}; B (N, K) when {@code transB}, else (K, N) — the backward's dx = dy·W (A·B) and dW = dyᵀ·x (Aᵀ·B) beside
     * the forward's A·Bᵀ.
     */
    public void run(Tensor a, boolean transA, Tensor b, boolean transB, Tensor c, float alpha, float beta, Tile tile) {
        checkOperands(a, b, c);
        if (!supports(transA, transB)) throw new IllegalArgumentException("TensorCoreGemm: no kernel for Aᵀ·Bᵀ");
        if (a.rank() != 2 || b.rank() != 2 || c.rank() != 2) {
            throw new IllegalArgumentException("TensorCoreGemm: A " + a + ", B " + b + ", C " + c + ": matrices expected");
        }
        int m = c.shape(0), n = c.shape(1), k = transA ? a.shape(0) : a.shape(1);
        if (a.shape(transA ? 1 : 0) != m || b.shape(transB ? 0 : 1) != n || b.shape(transB ? 1 : 0) != k) {
            throw new IllegalArgumentException("TensorCoreGemm: shapes A " + a + (transA ? "ᵀ" : "") + ", B " + b + (transB ? "ᵀ" : "") + ", C " + c
                    + " do not make C = op(A)·op(B)");
        }
        checkTile(a, b, c, m, n, k, tile);
        run(a.deviceAddress(), b.deviceAddress(), c.deviceAddress(), m, n, k, 1, true, transA, transB, alpha, beta, tile);
        Reference.reachabilityFence(a);
        Reference.reachabilityFence(b);
        Reference.reachabilityFence(c);
    }

    private static void checkOperands(Tensor a, Tensor b, Tensor c) {
        for (Tensor t : new Tensor[] {a, b, c}) {
            if (!t.isOnDevice()) throw new IllegalArgumentException("TensorCoreGemm: " + t + " is not in device memory");
        }
        if (a.dtype() != DType.BF16 || b.dtype() != DType.BF16 || c.dtype() != DType.F32) {
            throw new IllegalArgumentException("TensorCoreGemm: needs bf16 A and B and an fp32 C, got " + a + ", " + b + ", " + c);
        }
    }

    private static void checkTile(Tensor a, Tensor b, Tensor c, int m, int n, int k, Tile tile) {
        if (!tile.fits(m, n, k)) {
            throw new IllegalArgumentException("TensorCoreGemm: tile " + tile + " does not divide M=" + m + " N=" + n + " K=" + k);
        }
        if (!aligned(a.deviceAddress(), b.deviceAddress(), c.deviceAddress())) { // a misaligned copy faults the whole context
            throw new IllegalArgumentException("TensorCoreGemm: A " + a + " and B " + b + " must start 16-byte aligned and C " + c
                    + " 8-byte aligned in device memory (a view at an odd offset: copy it, or use cuBLAS)");
        }
    }

    /**
     * The same on device addresses (bf16 A (batch, m, k), B (n, k) when {@code sharedB} else (batch, n, k), fp32 C),
     * for the backend's GEMMs on windows of larger buffers; the caller has checked the shapes and that the tile fits.
     */
    void run(long a, long b, long c, int m, int n, int k, int batch, boolean sharedB, float alpha, float beta, Tile tile) {
        run(a, b, c, m, n, k, batch, sharedB, false, true, alpha, beta, tile);
    }

    /** Our kernels' layouts: A·Bᵀ, A·B and Aᵀ·B (not Aᵀ·Bᵀ, which no op of the model computes). */
    public static boolean supports(boolean transA, boolean transB) {
        return !(transA && transB);
    }

    /**
     * Whether device addresses suit our kernels: 16-byte aligned operands (cp.async, TMA and the 16-byte loads of the
     * transposed tiles) and an 8-byte aligned C (float2 stores).
     */
    public static boolean aligned(long a, long b, long c) {
        return (a & 15) == 0 && (b & 15) == 0 && (c & 7) == 0;
    }

    /** The kernel of a layout: gemm_bf16_nt (A (m, k), B (n, k)), _nn (B (k, n)) or _tn (A (k, m), B (k, n)). */
    static String kernel(boolean transA, boolean transB) {
        if (!supports(transA, transB)) throw new IllegalArgumentException("TensorCoreGemm: no kernel for Aᵀ·Bᵀ");
        return "gemm_bf16_" + (transA ? "t" : "n") + (transB ? "t" : "n");
    }

    /** The kernel of a layout for {@code tile}: gemm_bf16_… (mma.sync) or gemm_wgmma_… (Hopper). */
    static String kernel(Tile tile, boolean transA, boolean transB) {
        String k = kernel(transA, transB);
        return tile.wgmma() ? k.replace("gemm_bf16_", "gemm_wgmma_") : k;
    }

    /**
     * Row-major C (m, n) = alpha·op(A)·op(B) + beta·C on device addresses, op(A) (m, k) being A stored (k, m) when
     * {@code transA}, op(B) (k, n) being B stored (n, k) when {@code transB}; batch strides are the matrices' sizes
     * (B's 0 when {@code sharedB}). The caller has checked the shapes, the alignment and that the tile fits.
     */
    void run(long a, long b, long c, int m, int n, int k, int batch, boolean sharedB, boolean transA, boolean transB, float alpha,
             float beta, Tile tile) {
        if (batch == 0 || m == 0 || n == 0) return;
        if (!tile.wgmma()) {
            ctx.module(tile.source(), tile.defines()).launch(kernel(tile, transA, transB), n / tile.bn(), m / tile.bm(), batch, tile.threads(),
                    tile.sharedBytes(), a, b, c, m, n, k, alpha, beta, (long) m * k, sharedB ? 0L : (long) n * k, (long) m * n);
            return;
        }
        if (!ctx.hopper()) throw new IllegalArgumentException("TensorCoreGemm: tile " + tile + " needs a Hopper GPU (sm_90a), not " + ctx.describe());
        // TMA's view of A and B: each a 2-D matrix, the batches stacked along its rows; a box is 64 k wide when K is the
        // contiguous dim (a tile's rows in one box), else 64 columns × 64 k (BM/64 or BN/64 boxes a tile)
        int batchesB = sharedB ? 1 : batch;
        try (Arena arena = Arena.ofConfined()) { // cuLaunchKernel copies the maps into the launch's parameters
            Driver d = ctx.driver();
            MemorySegment mapA = transA ? d.tensorMapBf16(arena, a, (long) batch * k, m, 64, 64)
                    : d.tensorMapBf16(arena, a, (long) batch * m, k, tile.bm(), 64);
            MemorySegment mapB = transB ? d.tensorMapBf16(arena, b, (long) batchesB * n, k, tile.bn(), 64)
                    : d.tensorMapBf16(arena, b, (long) batchesB * k, n, 64, 64);
            CudaContext.Module module = ctx.module(tile.source(), tile.defines());
            // persistent blocks, one an SM at most, share out the tiles of every C slice (batch × splits of them); a
            // split product goes to a workspace of batch × splits slices of m·n floats, then its slices are summed in
            // split order into C
            int slices = batch * tile.splits();
            int blocks = (int) Math.min(maxBlocks, (long) (m / tile.bm()) * (n / tile.bn()) * slices);
            boolean split = tile.splits() > 1;
            CudaContext.Memory parts = split ? ctx.allocate(4L * slices * m * n) : null;
            module.launch(kernel(tile, transA, transB), blocks, 1, 1, tile.threads(), tile.sharedBytes(), mapA, mapB, split ? parts.address() : c,
                    m, n, k, split ? 1f : alpha, split ? 0f : beta, transA ? k : m, sharedB ? 0 : transB ? n : k, tile.splits(), slices);
            if (!split) return;
            long quads = (long) batch * m * n / 4;
            module.launch("gemm_split_sum", (int) Math.min((quads + 255) / 256, 8L * ctx.multiprocessors()), 1, 1, 256, 0, parts.address(), c,
                    (long) m * n, tile.splits(), alpha, beta, batch);
            parts.recycle(); // for work queued after the sum, which has read it
        }
    }
}
