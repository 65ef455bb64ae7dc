package nanochat4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.CudaTesting;
import org.junit.jupiter.api.Test;

/**
 * A cached decode step on the GPU makes the host wait for the device only where it must: the token going up and the
 * logits coming down — not for the embeddings' id checks (the ids were checked on the host as they went up) nor for
 * backout's λ (it stays on the device), nor for its position (a replayed step moves it on itself). Skipped without a
 * GPU.
 */
class CudaDecodeHostWaitsTest {
    @Test
    void aDecodeStepWaitsOnlyForItsTokenAndItsLogits() {
        CudaTesting.assumeGpu("decode host-wait count");
        GPTConfig config = GPTConfig.fromDepth(4, 32, 32, 64, "L", 257); // two value-embedding layers
        GPT model = GPT.create(config, 1, Device.CUDA);
        KVCache cache = new KVCache(model, 1, 64);
        model.forwardCached(Tensor.ofInts(new int[] {1, 2, 3, 4}, 1, 4), cache); // prefill; compiles the kernels
        model.forwardCached(Tensor.ofInts(new int[] {5}, 1, 1), cache);           // the first step: warm
        model.forwardCached(Tensor.ofInts(new int[] {7}, 1, 1), cache);           // the second: recorded, then replayed
        CudaContext ctx = CudaContext.get();
        long before = ctx.hostWaits();
        Tensor logits = model.forwardCached(Tensor.ofInts(new int[] {6}, 1, 1), cache);
        long waits = ctx.hostWaits() - before;
        assertEquals(2, waits, "host waits in one decode step of d4 (token up, logits down; was 2 + 1 per embedding table + 1 for λ)");
        for (float f : logits.toFloatArray()) assertTrue(Float.isFinite(f));
    }
}
