package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaTesting;
import nanochat4j.tensor.cuda.MatmulPrecision;
import org.junit.jupiter.api.Test;

/**
 * {@link DeviceMuon} (Muon written against Backend: batched GEMMs, broadcasting ops, one fused cautious-update
 * kernel) against the CPU {@link Muon} over three steps, for wide, square and tall stacks: parameters, momentum
 * and second moment agree to float rounding. On the CPU backend, and on the CUDA one (or its stand-in); under bf16
 * matmuls on a GPU, to bf16 rounding.
 */
class DeviceMuonTest {
    static final int[][] SHAPES = {{3, 24, 40}, {2, 32, 32}, {4, 48, 16}};

    @Test
    void cpuBackendMatchesMuon() {
        for (int[] s : SHAPES) check(Backend.cpu(), s[0], s[1], s[2], FP32_PARAMS, FP32_SECOND);
    }

    /** On the GPU; without one on {@link StandInCuda} (device tensors, the backend's own cautious-update loop). */
    @Test
    void cudaBackendMatchesMuon() {
        try (var device = StandInCuda.unlessGpu()) {
            for (int[] s : SHAPES) check(Backend.forDevice(nanochat4j.tensor.Device.CUDA), s[0], s[1], s[2], FP32_PARAMS, FP32_SECOND);
        }
    }

    /**
     * Under bf16 matmuls on a GPU (real or cudasim; skipped elsewhere): the polar express takes bf16 operands, as
     * nanochat's does on CUDA; the parameters and the second moment stay within bf16 rounding of the CPU's fp32 Muon,
     * the momentum as close as in fp32 (it does not go through the GEMMs).
     */
    @Test
    void cudaBackendUnderBf16MatmulsMatchesMuonToBf16Rounding() {
        CudaBackend be = CudaTesting.gpu("device Muon (needs a GPU or cudasim)");
        MatmulPrecision old = be.setMatmulPrecision(MatmulPrecision.BF16);
        try {
            for (int[] s : SHAPES) check(be, s[0], s[1], s[2], BF16_PARAMS, BF16_SECOND);
        } finally {
            be.setMatmulPrecision(old);
        }
    }

    /**
     * Relative errors allowed after each step, parameters and NorMuon's second moment: fp32 GEMMs; bf16 operands in the
     * polar express. Five iterations from bf16-rounded operands (2^-8 ≈ 3.9e-3 a rounding, amplified by the first
     * iterations' large coefficients) land on another near-orthogonal X than fp32's, a few percent apart per element:
     * on cudasim at most 8.4e-3 in the parameters after three steps (the tall stack; the update is ~30% of them) and
     * 2.7e-2 in the second moment, which averages X².
     */
    static final double FP32_PARAMS = 1e-4, FP32_SECOND = 1e-3, BF16_PARAMS = 2e-2, BF16_SECOND = 6e-2;

    static double relErr(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (double) (a[i] - b[i]) * (a[i] - b[i]);
            den += (double) a[i] * a[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-30));
    }

    static void check(Backend be, int k, int rows, int cols, double paramTolerance, double secondTolerance) {
        SplittableRandom r = new SplittableRandom(k * 1000 + rows + cols);
        int mn = rows * cols;
        float[][] p = new float[k][mn];
        for (float[] a : p) for (int i = 0; i < mn; i++) a[i] = (float) (r.nextGaussian() * 0.05);
        Tensor[] dp = new Tensor[k];
        for (int j = 0; j < k; j++) dp[j] = be.upload(Tensor.of(p[j].clone(), rows, cols));
        Muon ref = new Muon(k, rows, cols);
        DeviceMuon dev = new DeviceMuon(be, k, rows, cols);
        double lr = Muon.effectiveLr(0.02, rows, cols);
        for (int step = 0; step < 3; step++) {
            float[][] g = new float[k][mn];
            Tensor[] dg = new Tensor[k];
            for (int j = 0; j < k; j++) {
                for (int i = 0; i < mn; i++) g[j][i] = (float) (r.nextGaussian() * 1e-3);
                dg[j] = be.upload(Tensor.of(g[j].clone(), rows, cols));
            }
            ref.step(p, new int[k], g, new int[k], lr, 0.95, 0.9, 0.2, 5);
            dev.step(dp, dg, lr, 0.95, 0.9, 0.2, 5);
            String at = k + "x" + rows + "x" + cols + " step " + step;
            for (int j = 0; j < k; j++) {
                double e = relErr(p[j], dp[j].toFloatArray());
                assertTrue(e < paramTolerance, "params of matrix " + j + " of " + at + ": relative error " + e);
            }
            double em = relErr(ref.momentum, dev.momentum.toFloatArray()), es = relErr(ref.second, dev.second.toFloatArray());
            assertTrue(em < 1e-6 && es < secondTolerance, "state of " + at + ": momentum " + em + ", second moment " + es);
        }
    }
}
