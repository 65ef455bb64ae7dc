package nanochat4j.train.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.fixture.SharedDir;
import nanochat4j.train.base.BaseTrain;
import nanochat4j.train.base.BaseTrainOptions;
import nanochat4j.train.base.TokenizerView;
import nanochat4j.train.data.DataSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * runs/scaling_laws.sh's one budget in seconds: real base-train runs at depths 1-3 for the same --target-flops (as
 * the script passes it), read back by {@link Scaling} from their checkpoints: each reached its horizon, spent the
 * budget to within half a step, and has its final val bpb.
 */
class ScalingSweepTest {
    @TempDir
    Path base;

    @Test
    void tinyBaseTrainRunsAtOneBudgetAreReadBackFromTheirCheckpoints() throws Exception {
        Path books = SharedDir.locate("data/pretrain_text/gutenberg_books");
        assumeTrue(books != null, SharedDir.skipMessage("data/pretrain_text/gutenberg_books"));
        List<String> docs = new ArrayList<>();
        long chars = 0;
        for (String d : DataSource.open(books, true).documents(DataSource.Split.TRAIN)) {
            docs.add(d);
            if ((chars += d.length()) > 200_000) break;
        }
        Tokenizer tok = Tokenizer.train(docs, 512);
        TokenizerView view = new TokenizerView(tok::encode, tok::decode, tok.bosId(), tok.vocabSize(), tok.tokenByteLengths(), "test");
        long batch = 256;
        // four steps at depth 3; depths 1 and 2 get more steps for the same FLOPs
        double budget = 4.0 * GPTConfig.fromDepth(3, 32, 32, 64, "L", tok.vocabSize()).estimateFlops() * batch;
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        for (int d = 1; d <= 3; d++) {
            BaseTrainOptions o = new BaseTrainOptions();
            new CommandLine(o).parseArgs("--depth=" + d, "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=64", "--window-pattern=L",
                    "--device-batch-size=2", "--total-batch-size=" + batch, "--target-flops=" + budget, "--target-param-data-ratio=-1",
                    "--warmup-steps=1", "--eval-every=999999", "--eval-tokens=256", "--sample-every=-1", "--core-metric-every=-1",
                    "--save-every=-1", "--data=" + books, "--checkpoint-dir=" + base.resolve("base_checkpoints/t_d" + d));
            BaseTrain.run(o, view, new PrintStream(log, true, StandardCharsets.UTF_8));
        }
        String out = log.toString(StandardCharsets.UTF_8);
        List<Scaling.Run> runs = Scaling.gather(base.resolve("base_checkpoints"), "t_");
        assertEquals(3, runs.size(), out);
        for (Scaling.Run r : runs) {
            assertTrue(r.usable(), r + "\n" + out);
            assertEquals(budget, r.budget(), 0.0);
            assertEquals(r.horizon(), r.step());
            assertEquals(budget, r.trainingFlops(), r.flopsPerToken() * batch / 2.0, r.toString());
            assertTrue(r.valBpb() > 0 && r.valBpb() < 20, r.toString());
        }
        assertEquals(4, runs.getLast().step());
        assertTrue(runs.getFirst().step() > runs.get(1).step() && runs.get(1).step() > 4, runs.toString());
        Scaling.write(base, "t_", base.resolve("t_results"), new PrintStream(log, true, StandardCharsets.UTF_8));
        assertEquals(4, Files.readAllLines(base.resolve("t_results/results.csv")).size());
        assertTrue(Files.readString(base.resolve("t_results/scaling.md")).contains("C = " + String.format(java.util.Locale.ROOT, "%.3g", budget)
                + " FLOPs, 3 runs"));
    }
}
