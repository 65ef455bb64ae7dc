package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;

import java.util.SplittableRandom;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.DeviceStandIn;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.MatmulPrecision;
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
        // on a GPU, every step after the first (which runs as issued, then the second is recorded) is a replay
        if (onGpu()) assertEquals(steps - 1, gpu.recorded.replays(), "decode steps replayed from the recording");
    }

    private static boolean onGpu() {
        return CudaContext.unavailableReason() == null;
    }

    /**
     * Replayed decode steps against the same steps issued kernel by kernel, under bf16 matmuls, where the recording
     * reads the weights' bf16 copies: after a weight is written, the next step runs as issued (making the new copy) and
     * the one after is recorded anew (a replay of the old recording would read the stale copy).
     */
    @Test
    void replayedDecodeStepsFollowAWeightWrittenBetweenThem() {
        org.junit.jupiter.api.Assumptions.assumeTrue(onGpu(), "recorded decode steps need a GPU (the stand-in records nothing)");
        MatmulPrecision old = CudaBackend.get().setMatmulPrecision(MatmulPrecision.BF16);
        try {
            GPT m = cpuAndGpu()[1];
            KVCache rec = new KVCache(m, 2, 40), issued = new KVCache(m, 2, 40);
            int[] prompt = new SplittableRandom(8).ints(2 * 10, 0, CFG.vocabSize()).toArray();
            m.forwardCached(Tensor.ofInts(prompt.clone(), 2, 10), rec);
            m.forwardCached(Tensor.ofInts(prompt.clone(), 2, 10), issued);
            SplittableRandom r = new SplittableRandom(9);
            RecordedDecode first = null;
            for (int s = 0; s < 12; s++) {
                if (s == 6) {   // a weight written between steps (as a training step between generations would)
                    Tensor w = m.parameter("transformer.h.1.mlp.c_fc.weight").tensor();
                    Tensor h = w.toCpu();
                    float[] a = h.floats();
                    for (int i = h.offset(); i < h.offset() + h.numel(); i++) a[i] *= 1.5f;
                    w.copyFrom(h);
                }
                int[] next = r.ints(2, 0, CFG.vocabSize()).toArray();
                m.recordDecodeSteps(true);
                float[] got = m.forwardCached(Tensor.ofInts(next.clone(), 2, 1), rec).toFloatArray();
                m.recordDecodeSteps(false);
                float[] want = m.forwardCached(Tensor.ofInts(next.clone(), 2, 1), issued).toFloatArray();
                close("step " + s, want, got);
                if (s == 1) first = rec.recorded;
            }
            m.recordDecodeSteps(true);
            assertNotSame(first, rec.recorded, "recorded anew after the weight changed");
            assertEquals(5, rec.recorded.replays(), "steps 7–11 replayed from the new recording (6 ran as issued and made the new bf16 copy)");
            assertEquals(5, first.replays(), "steps 1–5 replayed from the first");
        } finally {
            CudaBackend.get().setMatmulPrecision(old);
        }
    }

    /**
     * Closing a KV cache gives its device memory back at once (keys, values, the previous embedding and the recorded
     * decode step's buffers), not when the collector finds it: what a server's next request allocates.
     */
    @Test
    void aClosedCacheGivesItsDeviceMemoryBackAtOnce() {
        org.junit.jupiter.api.Assumptions.assumeTrue(onGpu(), "device memory accounting needs a GPU (the stand-in keeps host arrays)");
        GPT m = cpuAndGpu()[1];
        KVCache cache = new KVCache(m, 2, 40);
        long buffers = 4L * cache.prev().numel();
        for (int l = 0; l < CFG.nLayer(); l++) buffers += 4L * (cache.keys(l).numel() + cache.values(l).numel());
        m.forwardCached(Tensor.ofInts(new SplittableRandom(6).ints(2 * 10, 0, CFG.vocabSize()).toArray(), 2, 10), cache);
        for (int s = 0; s < 4; s++) m.forwardCached(Tensor.ofInts(new int[] {s, s + 1}, 2, 1), cache);
        org.junit.jupiter.api.Assertions.assertNotNull(cache.recorded, "the decode steps were recorded");
        long before = m.backend().deviceMemory().inUse();
        cache.close();
        long freed = before - m.backend().deviceMemory().inUse();
        org.junit.jupiter.api.Assertions.assertTrue(freed > buffers,
                "closing gave back " + freed + " bytes: more than its " + buffers + " bytes of buffers (the recording's too)");
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
