package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.HashSet;
import java.util.Set;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** CUDA-only behaviour (skipped with the reason where no GPU is usable): bad input, memory, the kernel cache. */
class CudaBackendTest {
    private CudaBackend be;

    @BeforeEach
    void gpu() {
        be = CudaTesting.gpu("CUDA tests");
    }

    /**
     * Under bf16 the backend keeps its latest activation casts for the GEMMs that take the same input (q, k, v; a
     * linear's two backward GEMMs): an input written in place since, by any of the in-place ops or a copy, is cast
     * again, never taken from the stale copy.
     */
    @Test
    void anActivationWrittenInPlaceIsCastAgain() {
        MatmulPrecision old = be.setMatmulPrecision(MatmulPrecision.BF16);
        try {
            Tensor w = be.upload(Tensor.of(new float[] {1, 0, 0, 1, 1, 1}, 3, 2));
            Tensor x = be.upload(Tensor.of(new float[] {1, 2}, 1, 2));
            assertArrayEquals(new float[] {1, 2, 3}, be.linear(x, w).toFloatArray());
            long reused = be.activationCastCounts()[1];
            assertArrayEquals(new float[] {1, 2, 3}, be.linear(x, w).toFloatArray());
            assertEquals(reused + 1, be.activationCastCounts()[1], "the same input: its cast reused");
            be.axpy(1f, be.upload(Tensor.of(new float[] {3, 3}, 1, 2)), x);
            assertArrayEquals(new float[] {4, 5, 9}, be.linear(x, w).toFloatArray(), "after axpy into x");
            x.copyFrom(Tensor.of(new float[] {-1, 1}, 1, 2));
            assertArrayEquals(new float[] {-1, 1, 0}, be.linear(x, w).toFloatArray(), "after a copy into x");
            be.narrowAssign(x, 1, 1, be.upload(Tensor.of(new float[] {2}, 1, 1)));
            assertArrayEquals(new float[] {-1, 2, 1}, be.linear(x, w).toFloatArray(), "after narrowAssign into x");
            be.zero(x);
            assertArrayEquals(new float[] {0, 0, 0}, be.linear(x, w).toFloatArray(), "after zero");
            // a GEMM's operand taken from the older of the two kept casts is not the one its other operand's cast
            // replaces (the suites poison a replaced copy: the product would be NaN)
            Tensor a = be.upload(Tensor.of(new float[] {1, 2}, 1, 2)), b = be.upload(Tensor.of(new float[] {3, 4}, 1, 2));
            Tensor w2 = be.upload(Tensor.of(new float[] {1, 0, 0, 1}, 2, 2));
            be.linear(a, w2);
            be.linear(b, w2);                                            // kept: b's cast, then a's
            Tensor c = be.upload(Tensor.of(new float[] {5, 6}, 1, 2)), dW = be.upload(Tensor.zeros(2, 2));
            be.linearBackwardWeight(a, c, dW, false);                    // dW = aᵀ·c: a's cast reused, c's made
            assertArrayEquals(new float[] {5, 6, 10, 12}, dW.toFloatArray());
        } finally {
            be.setMatmulPrecision(old);
        }
    }

    /**
     * matmulAtPrecision (Muon's polar express): fp32 under fp32 matmuls; under bf16 the product of the bf16-rounded
     * operands with fp32 accumulation — one matrix, a batched stack, a shared B, both layouts of a Gram matrix (one
     * operand twice) — and measurably not the fp32 product (so the bf16 path ran).
     */
    @Test
    void matmulAtPrecisionRoundsTheOperandsToBf16UnderBf16Matmuls() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(21);
        int[][] cases = {{1, 128, 128, 64}, {3, 48, 40, 32}, {2, 32, 24, 16}};
        for (int[] cs : cases) {
            int batch = cs[0], m = cs[1], n = cs[2], k = cs[3];
            for (int layout = 0; layout < 4; layout++) {
                boolean gram = layout >= 2, transA = layout == 2, transB = layout == 1 || layout == 3;
                // gram: XᵀX (transA, X (k, m)) or XXᵀ (transB, X (m, k)) from one tensor; else A (m, k), B (k, n) or (n, k)
                int bn = gram ? m : n;
                float[] av = new float[batch * m * k], bv = new float[(layout == 0 && batch == 2 ? 1 : batch) * k * bn];
                for (int i = 0; i < av.length; i++) av[i] = (float) r.nextGaussian();
                for (int i = 0; i < bv.length; i++) bv[i] = (float) r.nextGaussian();
                Tensor a = be.upload(Tensor.of(av, batch, transA ? k : m, transA ? m : k));
                boolean shared = bv.length == k * bn && batch > 1;
                Tensor b = gram ? a : shared ? be.upload(Tensor.of(bv, transB ? bn : k, transB ? k : bn))
                        : be.upload(Tensor.of(bv, batch, transB ? bn : k, transB ? k : bn));
                boolean tb = gram ? !transA : transB;
                String what = batch + "x" + m + "x" + bn + "x" + k + (gram ? transA ? " XᵀX" : " XXᵀ" : tb ? " A·Bᵀ" : " A·B") + (shared ? " shared B" : "");
                MatmulPrecision old = be.setMatmulPrecision(MatmulPrecision.BF16);
                float[] got, fp32;
                try {
                    got = be.matmulAtPrecision(a, transA, b, tb).toFloatArray();
                    fp32 = be.matmul(a, transA, b, tb).toFloatArray();
                } finally {
                    be.setMatmulPrecision(old);
                }
                assertArrayEquals(fp32, be.matmulAtPrecision(a, transA, b, tb).toFloatArray(), what + ": fp32 under fp32 matmuls");
                float[] ah = a.toFloatArray(), bh = b.toFloatArray();
                double worst = 0, off = 0;
                for (int q = 0; q < batch; q++) {
                    for (int i = 0; i < m; i++) {
                        for (int j = 0; j < bn; j++) {
                            double sum = 0;
                            for (int l = 0; l < k; l++) {
                                float x = transA ? ah[(q * k + l) * m + i] : ah[(q * m + i) * k + l];
                                int bq = gram ? q : shared ? 0 : q;
                                float y = gram ? (transA ? ah[(bq * k + l) * m + j] : ah[(bq * m + j) * k + l])
                                        : tb ? bh[(bq * bn + j) * k + l] : bh[(bq * k + l) * bn + j];
                                sum += (double) roundBf16(x) * roundBf16(y);
                            }
                            int o = (q * m + i) * bn + j;
                            worst = Math.max(worst, Math.abs(got[o] - sum));
                            off = Math.max(off, Math.abs(fp32[o] - sum));
                        }
                    }
                }
                assertTrue(worst < 1e-5 * k, what + ": max error " + worst + " against the bf16-rounded operands' product");
                assertTrue(off > 100 * worst + 1e-3, what + ": the fp32 product is as close (" + off + "): the operands were not rounded");
            }
        }
    }

    /** fp32 → bf16 → fp32, round to nearest even (the cast kernel's). */
    static float roundBf16(float x) {
        int b = Float.floatToRawIntBits(x);
        return Float.intBitsToFloat((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000);
    }

    /**
     * The norms' backward from the output takes y as a shelved training step keeps it, in bf16, widened in the kernel:
     * exactly what it computes from the widened copy; so do rms_norm and its backward from a kept input x.
     */
    @Test
    void normBackwardsReadASavedBf16OutputAsItsWidenedCopy() {
        java.util.Random r = new java.util.Random(3);
        float[] xs = new float[2 * 3 * 4 * 16], gs = new float[xs.length];
        for (int i = 0; i < xs.length; i++) {
            xs[i] = (float) r.nextGaussian();
            gs[i] = (float) r.nextGaussian();
        }
        Tensor x = be.upload(Tensor.of(xs, 2, 3, 4, 16)), dy = be.upload(Tensor.of(gs, 2, 3, 4, 16));
        nanochat4j.tensor.Backend.RotaryTables rt = be.rotaryTables(8, 16, 10000);
        nanochat4j.tensor.Backend.NormOut q = be.rotaryRmsNorm(x, rt.cos(), rt.sin(), 2, 1.2f, true);
        Tensor saved = be.toBf16(q.y()), widened = be.savedValue(saved);
        assertArrayEquals(be.rotaryRmsNormBackward(dy, widened, q.inv(), rt.cos(), rt.sin(), 2, 1.2f).toFloatArray(),
                be.rotaryRmsNormBackward(dy, saved, q.inv(), rt.cos(), rt.sin(), 2, 1.2f).toFloatArray());
        nanochat4j.tensor.Backend.NormOut n = be.rmsNormKeepingInv(x.reshape(6, 64), 1f);
        Tensor savedN = be.toBf16(n.y());
        assertArrayEquals(be.rmsNormBackwardFromOutput(dy.reshape(6, 64), be.savedValue(savedN), n.inv(), 1f).toFloatArray(),
                be.rmsNormBackwardFromOutput(dy.reshape(6, 64), savedN, n.inv(), 1f).toFloatArray());
        // the MLP's backward recomputes its norm, and its norm's backward, from the block input as shelved
        Tensor savedX = be.toBf16(x.reshape(6, 64)), widenedX = be.savedValue(savedX);
        assertArrayEquals(be.rmsNorm(widenedX, 1f).toFloatArray(), be.rmsNorm(savedX, 1f).toFloatArray());
        assertArrayEquals(be.rmsNormBackward(widenedX, dy.reshape(6, 64), 1f).toFloatArray(),
                be.rmsNormBackward(savedX, dy.reshape(6, 64), 1f).toFloatArray());
    }

    /**
     * The lambda mix's backward takes x and x0 as a shelved step keeps them (bf16, or fp32 where not shelved), widened
     * in its one kernel: the gradients it gives from the widened copies, with dA and dB equal to dot(dy, x) and
     * dot(dy, x0) bit for bit.
     */
    @Test
    void lambdaMixBackwardReadsSavedBf16InputsAsTheirWidenedCopies() {
        java.util.Random r = new java.util.Random(5);
        int n = 3 * 1024 * 300 + 17; // more elements than the reductions' 1,024 blocks take in one stride
        float[] xs = new float[n], x0s = new float[n], gs = new float[n];
        for (int i = 0; i < n; i++) {
            xs[i] = (float) r.nextGaussian();
            x0s[i] = (float) r.nextGaussian();
            gs[i] = (float) r.nextGaussian();
        }
        Tensor x = be.upload(Tensor.of(xs, n)), x0 = be.upload(Tensor.of(x0s, n)), dy = be.upload(Tensor.of(gs, n));
        Tensor a = be.upload(Tensor.of(new float[] {0.75f}, 1)), b = be.upload(Tensor.of(new float[] {-0.5f}, 1));
        Tensor xKept = be.toBf16(x), x0Kept = be.toBf16(x0);
        Tensor xw = be.savedValue(xKept), x0w = be.savedValue(x0Kept);
        float[] dx = be.mul(dy, a).toFloatArray(), dx0 = be.mul(dy, b).toFloatArray();
        for (Tensor[] in : new Tensor[][] {{xKept, x0Kept}, {xKept, x0w}, {xw, x0Kept}, {xw, x0w}}) {
            nanochat4j.tensor.Backend.MixGrads g = be.lambdaMixBackward(dy, a, in[0], b, in[1]);
            String what = in[0].dtype() + " x, " + in[1].dtype() + " x0";
            assertEquals(be.dot(dy, xw).item(), g.da().item(), what);
            assertEquals(be.dot(dy, x0w).item(), g.db().item(), what);
            assertArrayEquals(dx, g.dx().toFloatArray(), what);
            assertArrayEquals(dx0, g.dx0().toFloatArray(), what);
        }
    }

    @Test
    void hostTensorsAreRejectedWithTheWayOut() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.relu2(Tensor.of(new float[] {1f})));
        assertTrue(e.getMessage().contains("relu2") && e.getMessage().contains("upload"), e.getMessage());
    }

    @Test
    void outOfMemorySaysWhatWasAskedAndWhatIsFree() {
        long total = be.context().driver().memoryInfo()[1];
        CudaOutOfMemoryException e = assertThrows(CudaOutOfMemoryException.class, () -> be.context().allocate(total + (1L << 30)));
        assertTrue(e.getMessage().contains("asked for " + CudaOutOfMemoryException.human(total + (1L << 30))), e.getMessage());
        assertTrue(e.getMessage().contains("--device-batch-size"), e.getMessage());
        Tensor after = be.upload(Tensor.of(new float[] {1f, 2f}));
        assertArrayEquals(new float[] {1f, 4f}, be.relu2(after).toFloatArray(), "the device still works after an OOM");
    }

    @Test
    void freedTensorsGoBackToThePoolAndAreReused() throws Exception {
        CudaContext ctx = be.context();
        ctx.releasePool();
        int n = 1_800_000; // 7.2 MB: an 8 MiB bucket no other tensor here uses
        Set<Long> dropped = new HashSet<>();
        for (int i = 0; i < 20; i++) dropped.add(be.zeros(n).deviceAddress()); // dropped at once
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (ctx.pooledBytes() == 0 && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(50);
        }
        assertTrue(ctx.pooledBytes() > 0, "the GC found the dropped tensors and their blocks came back to the pool");
        Tensor t = be.zeros(n);
        assertEquals(Device.CUDA, t.device());
        assertTrue(dropped.contains(t.deviceAddress()), "the new tensor took a dropped one's block");
        assertArrayEquals(new float[n], t.toFloatArray(), "a reused block is zeroed");
    }

    @Test
    void bigRowsAndOddShapesMatchTheCpu() {
        // rows wider than a block, and a vocab that is not a multiple of anything
        int n = 3, v = 50_257;
        float[] x = new float[n * v];
        java.util.Random r = new java.util.Random(3);
        for (int i = 0; i < x.length; i++) x[i] = (float) r.nextGaussian() * 4;
        Tensor host = Tensor.of(x, n, v);
        Tensor dev = be.upload(host);
        assertArrayEquals(nanochat4j.tensor.Backend.cpu().argmax(host).toIntArray(), be.argmax(dev).toIntArray());
        Tensor ids = be.upload(Tensor.ofInts(new int[] {5, -1, 50_256}));
        var cpuLoss = nanochat4j.tensor.Backend.cpu().crossEntropy(host, Tensor.ofInts(new int[] {5, -1, 50_256}), 15f,
                nanochat4j.tensor.Reduction.SUM, false).loss().item();
        assertEquals(cpuLoss, be.crossEntropy(dev, ids, 15f, nanochat4j.tensor.Reduction.SUM, false).loss().item(), 1e-4f * Math.abs(cpuLoss));
        assertEquals(DType.I32, be.argmax(dev).dtype());
    }

    @Test
    void uncheckedEmbeddingSkipsTheWaitButNeverReadsABadRow() {
        Tensor table = be.upload(Tensor.of(new float[] {1, 2, 3, 4}, 2, 2));
        Tensor ok = be.embedding(table, be.upload(Tensor.ofInts(new int[] {1, 0})), false);
        assertArrayEquals(new float[] {3, 4, 1, 2}, ok.toFloatArray());
        Tensor bad = be.upload(Tensor.ofInts(new int[] {7, 1}));
        long waits = be.context().hostWaits();
        Tensor rows = be.embedding(table, bad, false); // no throw, no fault: the bad id's row is skipped
        assertEquals(waits, be.context().hostWaits(), "no wait for the device's id check");
        float[] got = rows.toFloatArray();
        assertArrayEquals(new float[] {3, 4}, Arrays.copyOfRange(got, 2, 4), "the good id's row");
        if (Recycler.POISON) { // the output is allocated poisoned: a row never written keeps its NaN
            assertTrue(Float.isNaN(got[0]) && Float.isNaN(got[1]), "the bad id's row was read from somewhere: " + Arrays.toString(got));
        }
        assertThrows(IllegalArgumentException.class, () -> be.embedding(table, bad));
        assertArrayEquals(new float[] {1, 2, 3, 4}, table.toFloatArray(), "the device is still healthy");
    }
}
