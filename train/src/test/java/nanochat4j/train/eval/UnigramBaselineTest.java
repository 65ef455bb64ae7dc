package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/** The unigram bar by hand: add-one smoothed train frequencies, scored like bits per byte. */
class UnigramBaselineTest {
    @Test
    void smoothedFrequenciesScoredOnTargetsWithBytes() {
        UnigramBaseline u = new UnigramBaseline(3);
        u.count(new int[] {1, 1, 2, -1}); // counts [0, 2, 1], total 3 → p = (c+1)/6
        BitsPerByte acc = new BitsPerByte();
        u.score(new int[] {1, 2, 0, -1}, new int[] {0, 1, 2}, acc); // token 0 has no bytes, -1 is ignored
        assertEquals(Math.log(2) + Math.log(3), acc.nats(), 1e-6);
        assertEquals(3, acc.bytes());
        assertEquals((Math.log(2) + Math.log(3)) / (Math.log(2) * 3), acc.value(), 1e-6);
    }
}
