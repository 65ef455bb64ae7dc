package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Our tensor-core GEMM: every tile against a float64 reference on the same bf16-rounded inputs and against cuBLAS
 * bf16 GemmEx (where a GPU exists), single and batched, shared and per-batch B, beta accumulation; the tile
 * arithmetic without one.
 */
class TensorCoreGemmTest {
    @Test
    void tilesDivideTheModelsLayerShapes() {
        for (int c : new int[] {768, 1280, 1536}) { // d12, d20, d24 widths; 32 × 2048 tokens
            int m = 32 * 2048;
            for (int[] nk : new int[][] {{c, c}, {4 * c, c}, {c, 4 * c}, {32768, c}}) {
                assertEquals(TensorCoreGemm.TILES.getFirst(), TensorCoreGemm.firstFitting(m, nk[0], nk[1]), c + " " + nk[0] + "x" + nk[1]);
            }
        }
        assertNull(TensorCoreGemm.firstFitting(100, 128, 32), "M not a multiple of any tile: cuBLAS only");
        for (TensorCoreGemm.Tile t : TensorCoreGemm.TILES) {
            assertEquals(256, t.threads(), t.toString());
            assertTrue(2 * (t.bm() + t.bn()) * (t.bk() + 8) * 2 <= 48 * 1024, t + " fits static shared memory");
            assertEquals(0, t.sharedBytes(), t.toString());
        }
        // the wgmma tiles divide them too (K a multiple of 64), their stages fit an H100's 227 KiB of opt-in shared memory
        for (int c : new int[] {768, 1280, 1536}) {
            for (int[] nk : new int[][] {{c, c}, {4 * c, c}, {c, 4 * c}, {32768, c}}) {
                assertTrue(TensorCoreGemm.WGMMA_TILES.stream().anyMatch(t -> t.fits(32 * 2048, nk[0], nk[1])), c + " " + nk[0] + "x" + nk[1]);
            }
        }
        for (TensorCoreGemm.Tile t : TensorCoreGemm.WGMMA_TILES) {
            assertTrue(t.wgmma() && t.bk() == 64 && t.bm() % 64 == 0, t.toString());
            assertEquals((t.bm() / 64 + 1) * 128, t.threads(), t + ": a consumer warpgroup each 64 rows, and the producer");
            // the stages, an mbarrier pair each, and 1 KiB to start them on 1024 bytes (the swizzle's period)
            assertTrue(t.sharedBytes() == 1024 + t.stages() * ((t.bm() + t.bn()) * 64 * 2 + 16) && t.sharedBytes() <= 232448, t + ": " + t.sharedBytes());
            assertTrue(t.key().startsWith("wgmma,") && t.toString().startsWith("wgmma "), t.key());
        }
        // split-K where the C is a few tiles and K deep: a d12 weight gradient (768×768 from 65,536 tokens), not the
        // forward (K 768), not the lm_head's gradient (8·256 = 2048 tiles of 128×128: no need, and no workspace for it)
        List<TensorCoreGemm.Tile> split = TensorCoreGemm.WGMMA_TILES.stream().filter(t -> t.splits() > 1).toList();
        assertTrue(split.stream().filter(t -> t.fits(768, 768, 65536)).count() == split.size(), "every split fits 768x768x65536");
        assertTrue(split.stream().noneMatch(t -> t.fits(32 * 2048, 768, 768)), "no split of the forward");
        assertTrue(split.stream().noneMatch(t -> t.fits(32768, 768, 65536)), "no split of a C of 1536 tiles");
        assertEquals(TensorCoreGemm.WGMMA_TILES.size(), TensorCoreGemm.WGMMA_TILES.stream().map(TensorCoreGemm.Tile::key).distinct().count(), "keys name one tile each");
        assertEquals("wgmma,128,128,6,split4", TensorCoreGemm.Tile.wgmma(128, 128, 6).splitK(4).key());
        assertThrows(IllegalArgumentException.class, () -> TensorCoreGemm.TILES.getFirst().splitK(2), "mma.sync tiles do not split");
        assertThrows(IllegalArgumentException.class, () -> TensorCoreGemm.Tile.wgmma(64, 128, 4), "the kernel's register split is for BM 128");
        assertEquals(TensorCoreGemm.TILES, TensorCoreGemm.tiles(false), "no wgmma off Hopper");
        assertEquals(TensorCoreGemm.WGMMA_TILES.getFirst(), TensorCoreGemm.tiles(true).getFirst(), "wgmma first on Hopper");
        assertTrue(TensorCoreGemm.tiles(true).containsAll(TensorCoreGemm.TILES));
    }

    /**
     * Every tile the simulated or real device offers (wgmma ones on Hopper). The shapes include a depth of 512: eight
     * 64-deep tiles wrap the wgmma kernel's four stages, so a stage refilled too early shows (cudasim lands cp.async at
     * the wait and fails a copy into shared memory a wgmma still reads); and ten row tiles of 128, one group of eight
     * and a short one in the wgmma kernel's grouped block order. The deep shapes (K 1024, 1536, 3072) are where the
     * split-K tiles fit: 2 and 3 ways of 24 tiles of depth, 2, 3, 4 and 6 ways of 48 (uneven shares included), and
     * a batch of 2 split 2 ways. The wgmma kernel is persistent (a block an SM); one of each pair of runs caps it at 3
     * blocks, so a block walks several tiles, slices and splits, its stages and their mbarrier phases running on.
     */
    static java.util.List<TensorCoreGemm.Tile> deviceTiles(CudaBackend be) {
        return TensorCoreGemm.tiles(be.context().hopper());
    }

    static Tensor bf16(CudaBackend be, SplittableRandom r, int... shape) {
        float[] x = new float[Tensor.numel(shape)];
        for (int i = 0; i < x.length; i++) x[i] = (float) (r.nextDouble() * 2 - 1);
        return be.toBf16(be.upload(Tensor.of(x, shape)));
    }

    @Test
    void matchesFloat64AndCublasOnTheGpu() {
        CudaBackend be = CudaTesting.gpu("tensor-core GEMM");
        SplittableRandom r = new SplittableRandom(4);
        int[][] shapes = {{1, 128, 128, 32}, {1, 256, 384, 96}, {3, 128, 256, 64}, {2, 192, 128, 160}, {2, 256, 256, 192}, {1, 128, 256, 512},
                {1, 1280, 256, 64}, {2, 128, 128, 1024}};
        for (TensorCoreGemm.Tile tile : deviceTiles(be)) {
            for (int[] s : shapes) {
                int batch = s[0], m = s[1], n = s[2], k = s[3];
                if (!tile.fits(m, n, k)) continue;
                for (boolean sharedB : new boolean[] {true, false}) {
                    Tensor a = bf16(be, r, batch, m, k), b = sharedB ? bf16(be, r, n, k) : bf16(be, r, batch, n, k);
                    Tensor c0 = be.upload(Tensor.of(new float[batch * m * n], batch, m, n));
                    float[] init = new float[batch * m * n];
                    for (int i = 0; i < init.length; i++) init[i] = (float) r.nextGaussian();
                    Tensor c = be.upload(Tensor.of(init.clone(), batch, m, n));
                    new TensorCoreGemm(be.context(), 3).run(a, b, c, 0.5f, 2f, tile); // 3 persistent blocks: each walks several tiles
                    new TensorCoreGemm(be.context()).run(a, b, c0, 1f, 0f, tile);
                    float[] ah = a.toFloatArray(), bh = b.toFloatArray(), got = c.toFloatArray(), plain = c0.toFloatArray();
                    double worst = 0;
                    for (int q = 0; q < batch; q++) {
                        for (int i = 0; i < m; i++) {
                            for (int j = 0; j < n; j++) {
                                double sum = 0;
                                int bo = sharedB ? 0 : q * n * k;
                                for (int l = 0; l < k; l++) sum += (double) ah[(q * m + i) * k + l] * bh[bo + j * k + l];
                                int o = (q * m + i) * n + j;
                                worst = Math.max(worst, Math.abs(plain[o] - sum));
                                worst = Math.max(worst, Math.abs(got[o] - (0.5 * sum + 2.0 * init[o])));
                            }
                        }
                    }
                    // fp32 accumulation of k products of magnitude ≤ 1
                    assertTrue(worst < 1e-5 * k + 1e-4, tile + " " + batch + "x" + m + "x" + n + "x" + k + (sharedB ? " shared B" : "") + ": max error " + worst);
                    if (batch == 1) {
                        Tensor cb = be.zeros(m, n);
                        be.context().cublas().gemmEx(Cublas.OP_T, Cublas.OP_N, n, m, k, 1f, b.deviceAddress(), Cublas.R_16BF, k,
                                a.deviceAddress(), Cublas.R_16BF, k, 0f, cb.deviceAddress(), Cublas.R_32F, n, Cublas.COMPUTE_32F);
                        float[] ref = cb.toFloatArray();
                        for (int i = 0; i < ref.length; i++) {
                            assertEquals(ref[i], plain[i], 1e-5 * k + 1e-4, tile + " vs cuBLAS at " + i);
                        }
                    }
                }
            }
        }
        Tensor f32 = be.zeros(128, 32);
        assertThrows(IllegalArgumentException.class, () -> new TensorCoreGemm(be.context()).run(f32, f32, be.zeros(128, 128), 1f, 0f,
                TensorCoreGemm.TILES.getFirst()), "fp32 operands are refused");
        Tensor odd = be.toBf16(be.zeros(128 * 32 + 1)).slice(1, 128 * 32 + 1).reshape(128, 32); // starts 2 bytes in
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new TensorCoreGemm(be.context()).run(odd, odd,
                be.zeros(128, 128), 1f, 0f, TensorCoreGemm.TILES.getFirst()), "a misaligned view is refused before cp.async faults the context");
        assertTrue(e.getMessage().contains("16-byte aligned"), e.getMessage());
        assertEquals(DType.BF16, be.toBf16(f32).dtype());
        assertTrue(Backend.of(f32) == be);
    }

    /** The backward's layouts, A·B (dx = dy·W) and Aᵀ·B (dW = dyᵀ·x), at every tile against float64, with and without beta. */
    @Test
    void backwardLayoutsMatchFloat64OnTheGpu() {
        CudaBackend be = CudaTesting.gpu("tensor-core GEMM");
        SplittableRandom r = new SplittableRandom(5);
        TensorCoreGemm own = new TensorCoreGemm(be.context()), few = new TensorCoreGemm(be.context(), 3); // few: 3 persistent blocks
        int[][] shapes = {{128, 128, 32}, {256, 384, 96}, {192, 128, 160}, {256, 256, 128}, {128, 384, 192}, {128, 256, 512}, {128, 256, 1536},
                {128, 128, 3072}};
        for (TensorCoreGemm.Tile tile : deviceTiles(be)) {
            for (int[] s : shapes) {
                int m = s[0], n = s[1], k = s[2];
                if (!tile.fits(m, n, k)) continue;
                for (boolean transA : new boolean[] {false, true}) {
                    Tensor a = transA ? bf16(be, r, k, m) : bf16(be, r, m, k), b = bf16(be, r, k, n);
                    float[] init = new float[m * n];
                    for (int i = 0; i < init.length; i++) init[i] = (float) r.nextGaussian();
                    Tensor c = be.upload(Tensor.of(init.clone(), m, n)), c0 = be.upload(Tensor.of(init.clone(), m, n));
                    few.run(a.deviceAddress(), b.deviceAddress(), c.deviceAddress(), m, n, k, 1, true, transA, false, 0.5f, 2f, tile);
                    own.run(a, transA, b, false, c0, 1f, 0f, tile); // the public form on tensors
                    float[] ah = a.toFloatArray(), bh = b.toFloatArray(), got = c.toFloatArray(), plain = c0.toFloatArray();
                    double worst = 0;
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < n; j++) {
                            double sum = 0;
                            for (int l = 0; l < k; l++) sum += (double) (transA ? ah[l * m + i] : ah[i * k + l]) * bh[l * n + j];
                            worst = Math.max(worst, Math.abs(plain[i * n + j] - sum));
                            worst = Math.max(worst, Math.abs(got[i * n + j] - (0.5 * sum + 2.0 * init[i * n + j])));
                        }
                    }
                    assertTrue(worst < 1e-5 * k + 1e-4, tile + (transA ? " TN " : " NN ") + m + "x" + n + "x" + k + ": max error " + worst);
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> TensorCoreGemm.kernel(true, true), "no Aᵀ·Bᵀ kernel");
        Tensor a = bf16(be, r, 128, 64), b = bf16(be, r, 128, 64);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> own.run(a, true, b, false, be.zeros(64, 128), 1f, 0f,
                TensorCoreGemm.TILES.getFirst()), "Aᵀ (64, 128) · B (128, 64) is 64×64, not 64×128");
        assertTrue(e.getMessage().contains("do not make C = op(A)·op(B)"), e.getMessage());
    }

    @Test
    void layoutsNameTheirKernelsAndAlignmentIsChecked() {
        assertEquals("gemm_bf16_nt", TensorCoreGemm.kernel(false, true));
        assertEquals("gemm_bf16_nn", TensorCoreGemm.kernel(false, false));
        assertEquals("gemm_bf16_tn", TensorCoreGemm.kernel(true, false));
        assertThrows(IllegalArgumentException.class, () -> TensorCoreGemm.kernel(true, true));
        assertTrue(TensorCoreGemm.aligned(256, 4096, 8));
        assertTrue(!TensorCoreGemm.aligned(256 + 8, 4096, 8) && !TensorCoreGemm.aligned(256, 4096 + 2, 8) && !TensorCoreGemm.aligned(256, 4096, 4));
        // every kernel the layouts name is in gemm.cu, with the parameter list the launch passes
        var kernels = KernelSignatures.parse(KernelSources.source("gemm"));
        for (String k : List.of("gemm_bf16_nt", "gemm_bf16_nn", "gemm_bf16_tn")) {
            assertTrue(kernels.containsKey(k), k + " is not in gemm.cu: " + kernels.keySet());
            KernelSignatures.check(k, kernels.get(k), new Object[] {0L, 0L, 0L, 1, 1, 1, 1f, 0f, 0L, 0L, 0L});
        }
        TensorCoreGemm.Tile wg = TensorCoreGemm.WGMMA_TILES.getFirst(), mma = TensorCoreGemm.TILES.getFirst();
        assertEquals("gemm_wgmma_tn", TensorCoreGemm.kernel(wg, true, false));
        assertEquals("gemm_bf16_nn", TensorCoreGemm.kernel(mma, false, false));
        var wgKernels = KernelSignatures.parse(KernelSources.source("gemm_wgmma"));
        for (String k : List.of("gemm_wgmma_nt", "gemm_wgmma_nn", "gemm_wgmma_tn")) {
            assertTrue(wgKernels.containsKey(k), k + " is not in gemm_wgmma.cu: " + wgKernels.keySet());
            // the operands as TMA tensor maps (128 bytes each, by value), C, the shape, alpha, beta, the batch rows, the
            // splits and the C slices
            MemorySegment map = MemorySegment.ofArray(new byte[128]);
            KernelSignatures.check(k, wgKernels.get(k), new Object[] {map, map, 0L, 1, 1, 1, 1f, 0f, 1, 0, 1, 1});
        }
    }
}
