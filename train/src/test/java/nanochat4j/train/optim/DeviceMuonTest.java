package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.StandInCuda;
import org.junit.jupiter.api.Test;

/**
 * {@link DeviceMuon} (Muon written against Backend: batched GEMMs, broadcasting ops, one fused cautious-update
 * kernel) against the CPU {@link Muon} over three steps, for wide, square and tall stacks: parameters, momentum
 * and second moment agree to float rounding. On the CPU backend, and on the CUDA one (or its stand-in).
 */
class DeviceMuonTest {
    static final int[][] SHAPES = {{3, 24, 40}, {2, 32, 32}, {4, 48, 16}};

    @Test
    void cpuBackendMatchesMuon() {
        for (int[] s : SHAPES) check(Backend.cpu(), s[0], s[1], s[2]);
    }

    /** On the GPU; without one on {@link StandInCuda} (device tensors, the backend's own cautious-update loop). */
    @Test
    void cudaBackendMatchesMuon() {
        try (var device = StandInCuda.unlessGpu()) {
            for (int[] s : SHAPES) check(Backend.forDevice(nanochat4j.tensor.Device.CUDA), s[0], s[1], s[2]);
        }
    }

    static double relErr(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (double) (a[i] - b[i]) * (a[i] - b[i]);
            den += (double) a[i] * a[i];
        }
        return Math.sqrt(num / Math.max(den, 1e-30));
    }

    static void check(Backend be, int k, int rows, int cols) {
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
                assertTrue(e < 1e-4, "params of matrix " + j + " of " + at + ": relative error " + e);
            }
            double em = relErr(ref.momentum, dev.momentum.toFloatArray()), es = relErr(ref.second, dev.second.toFloatArray());
            assertTrue(em < 1e-6 && es < 1e-3, "state of " + at + ": momentum " + em + ", second moment " + es);
        }
    }
}
