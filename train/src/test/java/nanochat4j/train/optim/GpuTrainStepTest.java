package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Random;
import nanochat4j.autograd.Parameter;
import nanochat4j.autograd.Var;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.MatmulPrecision;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The training step on the GPU equals the CPU one on a tiny model: loss, every gradient and every parameter after
 * two MuonAdamW steps, to a tolerance that covers the GPU kernels' different summation order (the same code path
 * — GPT, autograd, optimizer — with only the backend of the tensors' device changed). Skipped without a GPU.
 */
class GpuTrainStepTest {
    static final GPTConfig CFG = new GPTConfig(64, 70, 3, 4, 2, 32, "SL");

    @BeforeEach
    void needsGpu() {
        String why = CudaContext.unavailableReason();
        Assumptions.assumeTrue(why == null, () -> "GPU training-step equivalence skipped: " + why);
    }

    static Tensor ids(long seed, int b, int t, int lo) {
        Random r = new Random(seed);
        int[] a = new int[b * t];
        for (int i = 0; i < a.length; i++) a[i] = lo + r.nextInt(CFG.vocabSize() - lo);
        return Tensor.ofInts(a, b, t);
    }

    /** ‖a − b‖₂ / ‖a‖₂ (the tolerance is relative to the tensor's size, so tiny gradients are not over-weighted). */
    static double relErr(float[] a, float[] b) {
        double num = 0, den = 0;
        for (int i = 0; i < a.length; i++) {
            num += (double) (a[i] - b[i]) * (a[i] - b[i]);
            den += (double) a[i] * a[i];
        }
        return den == 0 ? Math.sqrt(num) : Math.sqrt(num / den);
    }

    @Test
    void twoOptimizerStepsOnTheGpuMatchTheCpu() {
        GPT cpu = GPT.create(CFG, 11), gpu = GPT.create(CFG, 11, Device.CUDA);
        assertEquals(Device.CUDA, gpu.parameters().getFirst().tensor().device());
        MuonAdamW oc = new MuonAdamW(cpu.paramGroups()), og = new MuonAdamW(gpu.paramGroups());
        for (int step = 0; step < 2; step++) {
            for (int micro = 0; micro < 2; micro++) { // gradient accumulation over two micro-batches
                Tensor x = ids(100 + 10 * step + micro, 2, 16, 0), y = ids(200 + 10 * step + micro, 2, 16, 0);
                Var lc = cpu.loss(x, y, Reduction.MEAN), lg = gpu.loss(x, y, Reduction.MEAN);
                assertEquals(Device.CUDA, lg.value().device(), "the loss is computed on the GPU");
                assertEquals(lc.item(), lg.item(), 2e-3 * Math.abs(lc.item()), "loss at step " + step + " micro " + micro);
                lc.backward(0.5f);
                lg.backward(0.5f);
            }
            List<Parameter> pc = cpu.parameters(), pg = gpu.parameters();
            for (int i = 0; i < pc.size(); i++) {
                double e = relErr(pc.get(i).grad().toFloatArray(), pg.get(i).grad().toFloatArray());
                assertTrue(e < 2e-2, "gradient of " + pc.get(i).name() + " at step " + step + ": relative error " + e);
            }
            oc.step();
            og.step();
            oc.zeroGrad();
            og.zeroGrad();
            for (Parameter p : pg) assertEquals(0f, maxAbs(p.grad().toFloatArray()), p.name() + " gradient zeroed on the GPU");
        }
        List<Parameter> pc = cpu.parameters(), pg = gpu.parameters();
        for (int i = 0; i < pc.size(); i++) {
            double e = relErr(pc.get(i).tensor().toFloatArray(), pg.get(i).tensor().toFloatArray());
            assertTrue(e < 1e-2, "parameter " + pc.get(i).name() + " after 2 steps: relative error " + e);
        }
    }

    /**
     * nanochat's CUDA precision (bf16 operands for every linear layer and the lm_head, fp32 accumulation, fp32
     * master weights and optimizer) against the fp32 CPU step, to bf16 tolerance: loss, gradients, and parameters
     * after two optimizer steps; each weight is cast to bf16 once per step, not once per use.
     */
    @Test
    void twoOptimizerStepsInBf16MatchTheCpuToBf16Tolerance() {
        CudaBackend be = CudaBackend.get();
        MatmulPrecision before = be.setMatmulPrecision(MatmulPrecision.BF16);
        try {
            GPT cpu = GPT.create(CFG, 11), gpu = GPT.create(CFG, 11, Device.CUDA);
            MuonAdamW oc = new MuonAdamW(cpu.paramGroups()), og = new MuonAdamW(gpu.paramGroups());
            long matrices = gpu.parameters().stream().filter(p -> p.shape().length == 2 && !p.name().contains("wte")
                    && !p.name().contains("value_embeds")).count();
            for (int step = 0; step < 2; step++) {
                long casts0 = be.weightCastCounts()[0];
                for (int micro = 0; micro < 2; micro++) {
                    Tensor x = ids(100 + 10 * step + micro, 2, 16, 0), y = ids(200 + 10 * step + micro, 2, 16, 0);
                    Var lc = cpu.loss(x, y, Reduction.MEAN), lg = gpu.loss(x, y, Reduction.MEAN);
                    assertEquals(lc.item(), lg.item(), 2e-2 * Math.abs(lc.item()), "bf16 loss at step " + step + " micro " + micro);
                    lc.backward(0.5f);
                    lg.backward(0.5f);
                }
                long casts = be.weightCastCounts()[0] - casts0;
                assertTrue(casts <= matrices, "at most one bf16 cast per weight matrix in a step of 2 micro-batches: " + casts + " for "
                        + matrices);
                List<Parameter> pc = cpu.parameters(), pg = gpu.parameters();
                for (int i = 0; i < pc.size(); i++) {
                    double e = relErr(pc.get(i).grad().toFloatArray(), pg.get(i).grad().toFloatArray());
                    assertTrue(e < 8e-2, "bf16 gradient of " + pc.get(i).name() + " at step " + step + ": relative error " + e);
                }
                oc.step();
                og.step();
                oc.zeroGrad();
                og.zeroGrad();
            }
            List<Parameter> pc = cpu.parameters(), pg = gpu.parameters();
            for (int i = 0; i < pc.size(); i++) {
                double e = relErr(pc.get(i).tensor().toFloatArray(), pg.get(i).tensor().toFloatArray());
                assertTrue(e < 3e-2, "bf16: parameter " + pc.get(i).name() + " after 2 steps: relative error " + e);
            }
        } finally {
            be.setMatmulPrecision(before);
        }
    }

    @Test
    void modelsMoveBetweenDevicesExactly() {
        GPT cpu = GPT.create(CFG, 5);
        GPT there = cpu.to(Device.CUDA), back = there.to(Device.CPU);
        assertEquals(Device.CUDA, there.device());
        cpu.stateDict().forEach((k, v) -> org.junit.jupiter.api.Assertions.assertArrayEquals(v, back.stateDict().get(k), k));
        // and the same initialisation drawn for either device
        GPT direct = GPT.create(CFG, 5, Device.CUDA);
        cpu.stateDict().forEach((k, v) -> org.junit.jupiter.api.Assertions.assertArrayEquals(v, direct.stateDict().get(k), k));
    }

    static float maxAbs(float[] a) {
        float m = 0;
        for (float v : a) m = Math.max(m, Math.abs(v));
        return m;
    }
}
