package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.DeviceStandIn;
import nanochat4j.tensor.StandInCuda;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The model's KV-cache forward on the GPU (cache, previous embedding and activations on the device; logits down once
 * per call) against the same model on the CPU, whose decode steps run the fused {@link Decoder}: a batch-2 prompt
 * chunk, then single-token steps past a short window, with value embeddings, GQA, smear and backout; and a batch-1
 * prefill copied into 3 rows as the Engine does. On a GPU (scripts/gpu-check.sh runs it there) and, elsewhere, on
 * {@link StandInCuda}: the device code path with the CPU's arithmetic.
 */
class GPTCudaTest {
    // layer 0 (S) sees 128 keys back (nanochat rounds the short window, a quarter of the context, up to 128s)
    static final GPTConfig CFG = new GPTConfig(512, 97, 4, 4, 2, 32, "SL");

    private DeviceStandIn.Installed device;

    @BeforeEach
    void gpuOrStandIn() {
        device = StandInCuda.unlessGpu();
    }

    @AfterEach
    void putBack() {
        device.close();
    }

    private static GPT[] cpuAndGpu() {
        GPT cpu = TestModels.perturbed(CFG, 7);
        cpu.parameter("smear_lambda").tensor().fill(0.7f);
        cpu.parameter("backout_lambda").tensor().fill(0.3f);
        return new GPT[] {cpu, cpu.to(Device.CUDA)};
    }

    @Test
    void prefillThenDecodeStepsMatchTheCpuModel() {
        GPT[] m = cpuAndGpu();
        int batch = 2, prompt = 100, steps = 40; // past the short window: from position 129 on, layer 0 drops keys
        assertEquals(128, CFG.windowSize(0));
        KVCache cpu = new KVCache(m[0], batch, prompt + steps), gpu = new KVCache(m[1], batch, prompt + steps);
        int[] tokens = new SplittableRandom(3).ints(batch * prompt, 0, CFG.vocabSize()).toArray();
        float[] want = m[0].forwardCached(Tensor.ofInts(tokens.clone(), batch, prompt), cpu).toFloatArray();
        close("prefill", want, m[1].forwardCached(Tensor.ofInts(tokens.clone(), batch, prompt), gpu).toFloatArray());
        SplittableRandom r = new SplittableRandom(4);
        for (int s = 0; s < steps; s++) {
            int[] next = r.ints(batch, 0, CFG.vocabSize()).toArray();
            want = m[0].forwardCached(Tensor.ofInts(next.clone(), batch, 1), cpu).toFloatArray();
            close("decode step " + s, want, m[1].forwardCached(Tensor.ofInts(next.clone(), batch, 1), gpu).toFloatArray());
        }
        assertEquals(prompt + steps, gpu.pos());
    }

    @Test
    void batchOnePrefillCopiedIntoRowsOnTheDeviceDecodesLikeTheCpu() {
        GPT[] m = cpuAndGpu();
        float[][] got = new float[2][];
        for (int d = 0; d < 2; d++) {
            KVCache one = new KVCache(m[d], 1, 40);
            m[d].forwardCached(Tensor.ofInts(new SplittableRandom(5).ints(40 - 2, 0, CFG.vocabSize()).toArray(), 1, 38), one);
            KVCache rows = new KVCache(m[d], 3, 40);
            rows.copyFrom(one);
            got[d] = m[d].forwardCached(Tensor.ofInts(new int[] {5, 6, 7}, 3, 1), rows).toFloatArray();
        }
        close("rows after copyFrom", got[0], got[1]);
    }

    static void close(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 2e-4 + 2e-4 * Math.abs(want[i]), what + " logit " + i);
    }
}
