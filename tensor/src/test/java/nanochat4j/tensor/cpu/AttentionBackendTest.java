package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * Attention through the Backend seam (the kernels themselves are tested in AttentionTest): PyTorch fixtures for
 * full and window-5 forward/backward, the decode case through a KV cache filled with narrowAssign, views with a
 * non-zero storage offset, and shape errors.
 */
class AttentionBackendTest {
    private final Backend be = Backend.cpu();
    private static final float SCALE = 0.25f; // 1/sqrt(16)

    @Test
    void forwardAndBackwardMatchPyTorch() {
        Tensor q = Fixtures.tensor("attention/q"), k = Fixtures.tensor("attention/k"), v = Fixtures.tensor("attention/v");
        Tensor dy = Fixtures.tensor("attention/dy");
        for (String c : new String[] {"full", "window5"}) {
            int window = c.equals("full") ? -1 : 5;
            Backend.AttentionOut out = be.attention(q, k, v, window, SCALE);
            assertArrayEquals(new int[] {2, 4, 16}, out.lse().shape());
            Fixtures.check("attention/y_" + c, out.y(), 1e-4);
            Backend.AttentionGrads g = be.attentionBackward(q, k, v, out.y(), out.lse(), dy, window, SCALE);
            Fixtures.check("attention/dq_" + c, g.dq(), 1e-4);
            Fixtures.check("attention/dk_" + c, g.dk(), 1e-4);
            Fixtures.check("attention/dv_" + c, g.dv(), 1e-4);
        }
    }

    @Test
    void decodeThroughAKvCacheMatchesPyTorch() {
        Tensor q = Fixtures.tensor("attention/q"), k = Fixtures.tensor("attention/k"), v = Fixtures.tensor("attention/v");
        // batch 0 only, a cache longer than needed; keys 0..11 inserted in two prefill chunks
        Tensor kc = Tensor.zeros(1, 20, 2, 16), vc = Tensor.zeros(1, 20, 2, 16);
        Tensor k0 = k.slice(0, 1), v0 = v.slice(0, 1);
        be.narrowAssign(kc, 1, 0, be.narrow(k0, 1, 0, 7));
        be.narrowAssign(vc, 1, 0, be.narrow(v0, 1, 0, 7));
        be.narrowAssign(kc, 1, 7, be.narrow(k0, 1, 7, 5));
        be.narrowAssign(vc, 1, 7, be.narrow(v0, 1, 7, 5));
        Tensor q11 = be.narrow(q.slice(0, 1), 1, 11, 1);
        Fixtures.check("attention/decode_y_full", be.attentionCached(q11, kc, vc, 11, -1, SCALE), 1e-4);
        Fixtures.check("attention/decode_y_window5", be.attentionCached(q11, kc, vc, 11, 5, SCALE), 1e-4);
    }

    @Test
    void offsetViewsAreAccepted() {
        var r = Ref.rng("attn-views");
        int t = size(8, 5);
        Tensor q = randT(r, 1f, 2, t, 4, 8), k = randT(r, 1f, 2, t, 2, 8), v = randT(r, 1f, 2, t, 2, 8);
        Tensor y1 = be.attention(q.slice(1, 2), k.slice(1, 2), v.slice(1, 2), -1, 0.3f).y();
        Tensor y2 = be.attention(q.slice(1, 2).copy(), k.slice(1, 2).copy(), v.slice(1, 2).copy(), -1, 0.3f).y();
        assertArrayEquals(y2.toFloatArray(), y1.toFloatArray());
    }

    @Test
    void badShapesNameTheOp() {
        Tensor q = Tensor.zeros(1, 4, 3, 8), k = Tensor.zeros(1, 4, 2, 8);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.attention(q, k, k, -1, 1f));
        assertTrue(ex.getMessage().contains("attention") && ex.getMessage().contains("[1, 4, 3, 8]"), ex.getMessage());
        Tensor cache = Tensor.zeros(1, 4, 1, 8);
        assertThrows(IllegalArgumentException.class, () -> be.attentionCached(Tensor.zeros(1, 2, 2, 8), cache, cache, 3, -1, 1f));
    }
}
