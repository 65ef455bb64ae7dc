package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

/** The depth dial against the reference's derived table (§6: ratio 12, CLI shape defaults, vocab 32768). */
class DepthDialTest {

    static DepthDial dial(int depth) {
        return DepthDial.derive(depth, 64, 128, 2048, "SSSL", 32768, 12, -1, -1, -1, 0.28);
    }

    @ParameterizedTest(name = "d{0}")
    @CsvSource({
            // depth, width, heads, batch, lr scale, wd, iterations
            "4,  256,  2,  262144, 0.7071067811865476, 1.890, 528",
            "8,  512,  4,  262144, 0.7071067811865476, 0.520, 1920",
            "12, 768,  6,  524288, 1.0,                0.280, 2520",
            "16, 1024, 8,  524288, 1.0,                0.131, 5376",
            "18, 1152, 9,  1048576, 1.4142135623730951, 0.134, 3712",
            "20, 1280, 10, 1048576, 1.4142135623730951, 0.100, 4980",
            "24, 1536, 12, 1048576, 1.4142135623730951, 0.0597, 8352",
            "26, 1664, 13, 1048576, 1.4142135623730951, 0.0475, 10510",
    })
    void matchesTheReferenceTable(int depth, int width, int heads, long batch, double lrScale, double wd, int iters) {
        DepthDial d = dial(depth);
        assertEquals(width, d.config().nEmbd());
        assertEquals(heads, d.config().nHead());
        assertEquals(heads, d.config().nKvHead());
        assertEquals(depth, d.config().nLayer());
        assertEquals(batch, d.totalBatch());
        assertEquals(lrScale, d.batchLrScale(), 1e-15);
        assertEquals(wd, d.weightDecay(), wd * 5e-3, "wd is quoted to 3 significant digits");
        assertEquals(iters, d.numIterations());
        assertEquals(d.targetTokens() / batch, d.numIterations());
    }

    @Test
    void everyDepthFrom4To26IsConsistent() {
        for (int depth = 4; depth <= 26; depth++) {
            DepthDial d = dial(depth);
            assertEquals((int) Math.ceil(depth * 64 / 128.0) * 128, d.config().nEmbd(), "d" + depth);
            assertEquals(Long.bitCount(d.totalBatch()), 1, "batch is a power of two at d" + depth);
            assertEquals((long) (12.0 * d.scalingParams()), d.targetTokens());
            assertEquals(0.28 * Math.sqrt(d.totalBatch() / (double) DepthDial.B_REF) * d.dRef() / d.targetTokens(), d.weightDecay(), 1e-15);
        }
        // the speedrun: d24 at ratio 8 → B = 1,048,576, 5,568 steps
        DepthDial speedrun = DepthDial.derive(24, 64, 128, 2048, "SSSL", 32768, 8, -1, -1, -1, 0.28);
        assertEquals(1_048_576, speedrun.totalBatch());
        assertEquals(5568, speedrun.numIterations());
    }

    @Test
    void horizonPrecedenceAndBadInput() {
        assertEquals(7, DepthDial.derive(4, 64, 128, 2048, "SSSL", 32768, 12, -1, 7, 1e18, 0.28).numIterations());
        DepthDial flops = DepthDial.derive(12, 64, 128, 2048, "SSSL", 32768, -1, -1, -1, 1e18, 0.28);
        assertEquals(Math.rint(1e18 / ((double) flops.flopsPerToken() * flops.totalBatch())), flops.numIterations());
        assertEquals(16384, DepthDial.derive(4, 64, 128, 512, "L", 32768, 12, 16384, -1, -1, 0.28).totalBatch());
        assertThrows(IllegalArgumentException.class, () -> DepthDial.derive(4, 64, 128, 2048, "SSSL", 32768, -1, -1, -1, -1, 0.28));
    }
}
