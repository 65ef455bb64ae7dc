package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** The bf16 decode store: its only difference from fp32 is the rounding of the streamed matrices; its GEMV kernel. */
class DecoderBf16Test {
    static final GPTConfig CFG = GPTTest.CFG;   // GQA 4/2, vocab 70 (padded 128), layer 0 window 128
    static final int T = 150;

    /** Parameters the Decoder streams (and so holds in bf16). */
    static boolean streamed(String name) {
        return name.equals("lm_head.weight") || name.endsWith("attn.c_q.weight") || name.endsWith("attn.c_k.weight")
                || name.endsWith("attn.c_v.weight") || name.endsWith("attn.c_proj.weight") || name.endsWith("mlp.c_fc.weight")
                || name.endsWith("mlp.c_proj.weight");
    }

    static GPT smeared() {
        GPT m = TestModels.perturbed(CFG, 21);
        m.parameter("smear_lambda").tensor().fill(0.7f);
        m.parameter("backout_lambda").tensor().fill(0.3f);
        return m;
    }

    /** A copy of m whose streamed matrices are rounded to bf16 (nearest even) and widened back. */
    static GPT rounded(GPT m) {
        Map<String, float[]> state = m.stateDict();
        state.forEach((name, v) -> {
            if (streamed(name)) for (int i = 0; i < v.length; i++) v[i] = DType.fromBf16(DType.toBf16(v[i]));
        });
        GPT r = new GPT(CFG);
        r.loadStateDict(state);
        return r;
    }

    @Test
    void bf16DecodeEqualsTheFullForwardOfTheModelWithItsMatricesRoundedToBf16() {
        GPT m = smeared();
        GPT ref = rounded(m);
        m.decodeWeights(DecodeWeights.BF16);
        assertEquals(DecodeWeights.BF16, m.decodeWeights());
        // Every chunk runs the Decoder (B·T ≤ 32): a first chunk that smears within itself, then single steps past
        // the 128-key window of layer 0.
        for (int b = 1; b <= 2; b++) {
            Tensor x = GPTTest.ids(30 + b, b, T, 70);
            float[] want = ref.logits(x).toFloatArray();
            float[] exact = m.logits(x).toFloatArray();   // the full forward still reads the fp32 parameters
            float[] got = decode(m, x, b, 32 / b);
            double worst = 0, fromFp32 = 0;
            for (int i = 0; i < want.length; i++) {
                worst = Math.max(worst, Math.abs(want[i] - got[i]));
                fromFp32 = Math.max(fromFp32, Math.abs(exact[i] - got[i]));
            }
            assertTrue(worst <= 1e-4, "B=" + b + ": bf16 decode vs rounded full forward differ by " + worst);
            // The rounding shows (so the bf16 store is what ran), at the size bf16 gives (8 mantissa bits).
            assertTrue(fromFp32 > 1e-3 && fromFp32 < 0.1, "B=" + b + ": bf16 decode vs the fp32 forward differ by " + fromFp32);
        }
        // Back to fp32: decode equals the unrounded full forward again.
        m.decodeWeights(DecodeWeights.FP32);
        Tensor x = GPTTest.ids(40, 2, T, 70);
        float[] want = m.logits(x).toFloatArray(), got = decode(m, x, 2, 16);
        for (int i = 0; i < want.length; i++) assertEquals(want[i], got[i], 1e-4, "fp32 logit " + i);
    }

    /** Logits (b, T, vocab) of x fed through a KV cache: a first chunk of {@code first} tokens, then single steps. */
    private static float[] decode(GPT m, Tensor x, int b, int first) {
        KVCache cache = new KVCache(m, b, T);
        float[] out = new float[b * T * 70];
        int p = 0;
        while (p < T) {
            int len = p == 0 ? first : 1;
            int[] chunk = new int[b * len];
            for (int bi = 0; bi < b; bi++) System.arraycopy(x.ints(), bi * T + p, chunk, bi * len, len);
            float[] l = m.forwardCached(Tensor.ofInts(chunk, b, len), cache).toFloatArray();
            for (int bi = 0; bi < b; bi++) System.arraycopy(l, bi * len * 70, out, (bi * T + p) * 70, len * 70);
            p += len;
        }
        return out;
    }

    @Test
    void bf16StoreHalvesTheStreamedMatrixBytesAndIsASnapshot() {
        GPT m = smeared();
        long fp32 = m.decodeWeightBytes();
        m.decodeWeights(DecodeWeights.BF16);
        long bf16 = m.decodeWeightBytes();
        int c = CFG.nEmbd(), hd = CFG.nHead() * CFG.headDim(), kvd = CFG.kvDim();
        long matrices = (long) CFG.nLayer() * (hd * c + 2L * kvd * c + (long) c * hd + 8L * c * c) + 70L * c;  // lm_head: real vocab rows
        assertEquals(2 * matrices, fp32 - bf16);
        // Changing a parameter afterwards does not reach the copy until decodeWeights(BF16) is called again.
        Tensor tok = Tensor.ofInts(new int[] {3}, 1, 1);
        float before = m.forwardCached(tok, new KVCache(m, 1, 4)).toFloatArray()[5];
        m.parameter("lm_head.weight").tensor().fill(0f);
        assertEquals(before, m.forwardCached(tok, new KVCache(m, 1, 4)).toFloatArray()[5]);
        m.decodeWeights(DecodeWeights.BF16);
        assertEquals(0f, m.forwardCached(tok, new KVCache(m, 1, 4)).toFloatArray()[5]);
    }
}
