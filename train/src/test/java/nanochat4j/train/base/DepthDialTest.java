package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The depth dial against the reference's derived table (ratio 12, the CLI's shape defaults, vocab 32768). */
class DepthDialTest {

    /** base-train's flags at their defaults but for {@code args}, with nanochat's vocabulary. */
    static DepthDial dial(String... args) {
        return DepthDial.derive(CommandLine.populateCommand(new BaseTrainOptions(), args), 32768);
    }

    static DepthDial dial(int depth) {
        return dial("--depth=" + depth);
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
        DepthDial speedrun = dial("--depth=24", "--target-param-data-ratio=8");
        assertEquals(1_048_576, speedrun.totalBatch());
        assertEquals(5568, speedrun.numIterations());
    }

    @Test
    void horizonPrecedenceAndBadInput() {
        assertEquals(7, dial("--depth=4", "--num-iterations=7", "--target-flops=1e18").numIterations());
        DepthDial flops = dial("--depth=12", "--target-param-data-ratio=-1", "--target-flops=1e18");
        assertEquals(Math.rint(1e18 / ((double) flops.flopsPerToken() * flops.totalBatch())), flops.numIterations());
        assertEquals(16384, dial("--depth=4", "--max-seq-len=512", "--window-pattern=L", "--total-batch-size=16384").totalBatch());
        assertThrows(IllegalArgumentException.class, () -> dial("--depth=4", "--target-param-data-ratio=-1"));
    }
}
