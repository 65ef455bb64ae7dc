package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaTesting;
import org.junit.jupiter.api.Test;

/**
 * The fused AdamW of a backend equals {@link AdamW#update} bit for bit, over several steps: the kernel on the GPU
 * (optim.cu; skipped without one) and the CPU backend's (the optimizer's kernel over tensors, which the GPU stand-in
 * of the device-path tests runs).
 */
class GpuAdamWTest {
    @Test
    void deviceStepsEqualTheCpuKernelBitForBit() {
        check(CudaTesting.gpu("GPU AdamW"));
    }

    @Test
    void theCpuBackendsAdamwIsTheOptimizersKernel() {
        check(Backend.cpu());
    }

    private static void check(Backend be) {
        int n = 100_003; // not a multiple of the block or the vector width
        SplittableRandom r = new SplittableRandom(9);
        float[] p = new float[n], m = new float[n], v = new float[n];
        for (int i = 0; i < n; i++) p[i] = (float) r.nextGaussian();
        Tensor dp = be.upload(Tensor.of(p.clone())), dm = be.zeros(n), dv = be.zeros(n);
        // both lerp branches: β1 0.8 (w1 0.2 < 0.5) and β1 0.3 (w1 0.7)
        double[][] hp = {{0.004, 0.8, 0.95, 1e-10, 0.01}, {0.2, 0.3, 0.995, 1e-8, 0.0}, {0.05, 0.96, 0.95, 1e-10, 0.05}};
        for (int step = 1; step <= 3; step++) {
            float[] g = new float[n];
            for (int i = 0; i < n; i++) g[i] = (float) (r.nextGaussian() * 1e-2);
            double[] h = hp[step - 1];
            AdamW.Scalars s = AdamW.Scalars.of(h[0], h[1], h[2], h[3], h[4], step);
            AdamW.update(p, 0, g, 0, m, v, 0, n, s);
            be.adamw(dp, be.upload(Tensor.of(g)), dm, dv, s.decay(), s.w1(), s.w2(), s.bias2(), s.eps(), s.stepSize());
            assertArrayEquals(p, dp.toFloatArray(), "params after step " + step);
            assertArrayEquals(m, dm.toFloatArray(), "exp_avg after step " + step);
            assertArrayEquals(v, dv.toFloatArray(), "exp_avg_sq after step " + step);
        }
    }
}
