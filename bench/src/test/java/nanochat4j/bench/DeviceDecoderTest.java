package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The backend-generic decoder against the model's own KV-cache forward: a prompt chunk then single-token steps,
 * with value embeddings, GQA, a short window (S) and the backout, at batch 2. On the CPU backend always; on CUDA where
 * a GPU is usable.
 */
class DeviceDecoderTest {
    static final GPTConfig CFG = new GPTConfig(64, 97, 4, 4, 2, 64, "SL");

    static void compare(Backend be) {
        GPT model = GPT.create(CFG, 7);
        int batch = 2, prompt = 9, steps = 6, maxLen = prompt + steps;
        int[] tokens = new java.util.SplittableRandom(3).ints(batch * prompt, 0, CFG.vocabSize()).toArray();
        KVCache cache = new KVCache(CFG, batch, maxLen);
        DeviceDecoder dec = new DeviceDecoder(model, be, batch, maxLen);
        float[] want = model.forwardCached(Tensor.ofInts(tokens.clone(), batch, prompt), cache).toFloatArray();
        Tensor got = dec.step(tokens, prompt);
        close("prefill", want, got.toFloatArray());
        int[] next = dec.greedy(got);
        for (int s = 0; s < steps; s++) {
            want = model.forwardCached(Tensor.ofInts(next.clone(), batch, 1), cache).toFloatArray();
            got = dec.step(next, 1);
            close("decode step " + s, want, got.toFloatArray());
            int[] ref = new int[batch];
            for (int r = 0; r < batch; r++) ref[r] = argmax(want, r * CFG.vocabSize(), CFG.vocabSize());
            next = dec.greedy(got);
            assertArrayEquals(ref, next, "greedy tokens at step " + s);
        }
        assertEquals(maxLen, dec.pos());
        dec.reset(batch, maxLen);
        close("prefill after reset", model.forwardCached(Tensor.ofInts(tokens.clone(), batch, prompt), new KVCache(CFG, batch, maxLen)).toFloatArray(),
                dec.step(tokens, prompt).toFloatArray());
    }

    static int argmax(float[] a, int off, int n) {
        int best = 0;
        for (int i = 1; i < n; i++) if (a[off + i] > a[off + best]) best = i;
        return best;
    }

    static void close(String what, float[] want, float[] got) {
        assertEquals(want.length, got.length, what);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], 2e-4 + 2e-4 * Math.abs(want[i]), what + " logit " + i);
        }
    }

    @Test
    void matchesTheModelOnTheCpu() {
        compare(Backend.cpu());
    }

    @Test
    void matchesTheModelOnTheGpu() {
        String why = CudaContext.unavailableReason();
        Assumptions.assumeTrue(why == null, () -> "CUDA decode skipped: " + why);
        compare(CudaBackend.get());
    }
}
