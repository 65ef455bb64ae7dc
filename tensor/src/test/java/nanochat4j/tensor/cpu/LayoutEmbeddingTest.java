package nanochat4j.tensor.cpu;

import static nanochat4j.tensor.cpu.Ref.randT;
import static nanochat4j.tensor.cpu.Ref.size;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** narrow / its backward / concat / narrowAssign (exact copies), embedding gather + scatter-add, bf16 conversion. */
class LayoutEmbeddingTest {
    private final Backend be = Backend.cpu();

    @Test
    void narrowAlongAnyDimAndItsBackwardPads() {
        Random r = Ref.rng("narrow");
        int b = size(2, 1), t = size(6, 5), c = size(32, 29);
        Tensor x = randT(r, 1f, b, t, c);
        Tensor last = be.narrow(x, -1, 0, 24 % c == 0 ? c : Math.min(24, c));
        int len = last.shape(-1);
        for (int i = 0; i < b; i++) for (int j = 0; j < t; j++) for (int k = 0; k < len; k++) {
            assertEquals(Ref.at(x, i, j, k), Ref.at(last, i, j, k));
        }
        Tensor mid = be.narrow(x, 1, 1, t - 1);           // x[:, 1:] (smear)
        Tensor back = be.narrowBackward(mid, 1, 1, t);
        for (int i = 0; i < b; i++) for (int k = 0; k < c; k++) {
            assertEquals(0f, Ref.at(back, i, 0, k));
            for (int j = 1; j < t; j++) assertEquals(Ref.at(x, i, j, k), Ref.at(back, i, j, k));
        }
        // pad then narrow is the identity; <narrow(x), y> = <x, narrowBackward(y)>
        Tensor y = randT(r, 1f, b, t, len);
        assertEquals(Ref.dotD(Ref.d(last), Ref.d(y)), Ref.dotD(Ref.d(x), Ref.d(be.narrowBackward(y, 2, 0, c))), 1e-5);
        var ex = assertThrows(IllegalArgumentException.class, () -> be.narrow(x, 2, c - 1, 2));
        assertTrue(ex.getMessage().contains("narrow"), ex.getMessage());
    }

    @Test
    void concatAndNarrowAssignRoundTrip() {
        Random r = Ref.rng("concat");
        int b = size(2, 1), t = size(5, 3), c = size(8, 7);
        Tensor a = randT(r, 1f, b, t, c), bb = randT(r, 1f, b, 2, c);
        Tensor cat = be.concat(1, a, bb);
        assertArrayEquals(new int[] {b, t + 2, c}, cat.shape());
        assertArrayEquals(bb.toFloatArray(), be.narrow(cat, 1, t, 2).toFloatArray());
        assertArrayEquals(a.toFloatArray(), be.narrow(cat, 1, 0, t).toFloatArray());
        // KV-cache insert: (B, Tmax, KV, D) cache, write 2 positions at 3
        Tensor cache = Tensor.zeros(b, 8, 2, c);
        Tensor kv = randT(r, 1f, b, 2, 2, c);
        be.narrowAssign(cache, 1, 3, kv);
        assertArrayEquals(kv.toFloatArray(), be.narrow(cache, 1, 3, 2).toFloatArray());
        assertArrayEquals(new float[b * 3 * 2 * c], be.narrow(cache, 1, 0, 3).toFloatArray(), "the rows before 3 stay zero");
        assertThrows(IllegalArgumentException.class, () -> be.narrowAssign(cache, 1, 7, kv));
    }

    @Test
    void embeddingGathersAndScatterAddsRepeatedIds() {
        Random r = Ref.rng("embedding");
        int v = size(50, 47), e = size(16, 13);
        Tensor table = randT(r, 1f, v, e);
        int[] ids = {3, 7, 3, v - 1, 0, 3};
        Tensor out = be.embedding(table, Tensor.ofInts(ids, 2, 3));
        assertArrayEquals(new int[] {2, 3, e}, out.shape());
        for (int i = 0; i < ids.length; i++) for (int k = 0; k < e; k++) {
            assertEquals(Ref.at(table, ids[i], k), out.floats()[i * e + k]);
        }
        Tensor dy = randT(r, 1f, 2, 3, e);
        Tensor dT = Tensor.full(0.5f, v, e);
        be.embeddingBackward(dy, Tensor.ofInts(ids, 2, 3), dT);
        for (int k = 0; k < e; k++) {
            double want = 0.5 + (double) dy.floats()[k] + dy.floats()[2 * e + k] + dy.floats()[5 * e + k];
            assertEquals(want, Ref.at(dT, 3, k), 1e-6);
            assertEquals(0.5f, Ref.at(dT, 1, k));
        }
        var ex = assertThrows(IllegalArgumentException.class, () -> be.embedding(table, Tensor.ofInts(new int[] {0, -1})));
        assertTrue(ex.getMessage().contains("embedding") && ex.getMessage().contains("-1"), ex.getMessage());
        assertThrows(IllegalArgumentException.class, () -> be.embeddingBackward(dy, Tensor.ofInts(new int[] {0, 1, 2, 3, 4, v}, 2, 3), dT));
    }

    @Test
    void bf16ConversionRoundsToNearestEven() {
        // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1+2^-7: ties to even → 1.0; a hair more rounds up
        float half = 1f + 0x1p-8f, above = Math.nextUp(half), odd = 1f + 0x1p-7f + 0x1p-8f;
        Tensor x = Tensor.of(new float[] {half, above, odd, -2.5f, Float.NaN, Float.MAX_VALUE, 1e-40f});
        Tensor h = be.toBf16(x);
        assertEquals(DType.BF16, h.dtype());
        float[] back = h.toFloatArray();
        assertEquals(1f, back[0]);
        assertEquals(1f + 0x1p-7f, back[1]);
        assertEquals(1f + 0x1p-6f, back[2]); // halfway between odd 1+2^-7 and even 1+2^-6: up to even
        assertEquals(-2.5f, back[3]);
        assertTrue(Float.isNaN(back[4]));
        assertEquals(Float.POSITIVE_INFINITY, back[5]);
        assertEquals(Float.intBitsToFloat(0x00010000), back[6]); // subnormal 0x000116c2 rounds to 0x0001_0000
        Random r = Ref.rng("bf16");
        Tensor big = randT(r, 100f, size(1000, 997));
        float[] bb = be.toBf16(big).toFloatArray();
        for (int i = 0; i < bb.length; i++) {
            float want = big.floats()[i];
            assertTrue(Math.abs(bb[i] - want) <= Math.abs(want) * 0x1p-8f, "bf16 relative error > 2^-8 at " + i);
        }
    }

    @Test
    void vectorBf16ConversionIsBitExactWithTheScalarRuleOnRandomBitPatterns() {
        Random r = Ref.rng("bf16-bits");
        int n = size(4099, 997);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = Float.intBitsToFloat(r.nextInt()); // every class: NaN, inf, subnormal, ties
        x[0] = Float.intBitsToFloat(0x3f808000);
        x[1] = Float.intBitsToFloat(0x7f7fffff);
        short[] h = be.toBf16(Tensor.of(x)).shorts();
        float[] back = new float[n]; // widened as the bf16 decode weights are
        int i = 0;
        for (; i + Vec.F.length() <= n; i += Vec.F.length()) Vec.fromBf16(h, i).intoArray(back, i);
        for (; i < n; i++) back[i] = DType.fromBf16(h[i]);
        for (i = 0; i < n; i++) {
            assertEquals(DType.toBf16(x[i]), h[i], "bf16 bits of 0x" + Integer.toHexString(Float.floatToRawIntBits(x[i])));
            assertEquals(Float.floatToRawIntBits(DType.fromBf16(h[i])), Float.floatToRawIntBits(back[i]), "widened bits at " + i);
        }
    }
}
