package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/** Bits per byte by hand: ignored targets and zero-byte (special) tokens drop out of both sums. */
class BitsPerByteTest {
    // token ids: 0 = BOS (0 bytes), 1 = "a" (1 byte), 2 = "the" (3 bytes), 3 = "é" (2 bytes)
    static final int[] TOKEN_BYTES = {0, 1, 3, 2};

    @Test
    void countsOnlyNonIgnoredTargetsWithBytes() {
        BitsPerByte bpb = new BitsPerByte();
        float[] losses = {1.0f, 2.0f, 0.5f, 4.0f, 8.0f};
        int[] targets = {1, 2, 0, -1, 3};
        bpb.add(losses, targets, TOKEN_BYTES);
        // counted: target 1 (1.0 nats, 1 byte), target 2 (2.0, 3 bytes), target 3 (8.0, 2 bytes); BOS and -1 out
        assertEquals(11.0, bpb.nats(), 1e-12);
        assertEquals(6, bpb.bytes());
        assertEquals(11.0 / (Math.log(2) * 6), bpb.value(), 1e-12);
    }

    @Test
    void partialSumsFromRanksAddUpToTheWholeAndZeroBytesIsInfinite() {
        BitsPerByte rank0 = new BitsPerByte();
        rank0.add(new float[] {Math.round(Math.log(2) * 1e6) / 1e6f}, new int[] {1}, TOKEN_BYTES);
        BitsPerByte rank1 = new BitsPerByte();
        rank1.add(new float[] {3.0f, 9.0f}, new int[] {2, 0}, TOKEN_BYTES);
        BitsPerByte all = new BitsPerByte();
        all.add(rank0.nats(), rank0.bytes());
        all.add(rank1.nats(), rank1.bytes());
        assertEquals(4, all.bytes());
        assertEquals((0.693147 + 3.0) / (Math.log(2) * 4), all.value(), 1e-6);
        assertEquals(1.0, rank0.value(), 1e-6); // ln 2 nats over one byte = one bit per byte

        BitsPerByte none = new BitsPerByte();
        none.add(new float[] {5f, 6f}, new int[] {0, -1}, TOKEN_BYTES);
        assertEquals(Double.POSITIVE_INFINITY, none.value());
        assertEquals(0.0, none.nats());
    }

    @Test
    void mismatchedLengthsAndUnknownTokensFail() {
        BitsPerByte bpb = new BitsPerByte();
        assertThrows(IllegalArgumentException.class, () -> bpb.add(new float[2], new int[3], TOKEN_BYTES));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> bpb.add(new float[1], new int[] {9}, TOKEN_BYTES));
        assertEquals("target 9 at 0 outside the token-bytes table of 4", e.getMessage());
    }
}
