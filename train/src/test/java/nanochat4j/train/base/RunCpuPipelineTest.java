package nanochat4j.train.base;

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
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.fixture.SharedDir;
import nanochat4j.train.data.DataSource;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * runs/runcpu.sh in seconds: a BPE tokenizer trained on a slice of the Gutenberg books, then base-train at depth 2
 * for a few steps on those books (Gutenberg headers stripped, the last book is validation), with val bpb, the
 * unigram bar and samples.
 */
class RunCpuPipelineTest {
    @TempDir
    Path tmp;

    @Test
    void tokenizerThenATinyBaseModelOnTheGutenbergBooks() throws Exception {
        Path books = SharedDir.locate("data/pretrain_text/gutenberg_books");
        assumeTrue(books != null, SharedDir.skipMessage("data/pretrain_text/gutenberg_books"));
        DataSource src = DataSource.open(books, true);
        List<String> docs = new ArrayList<>();
        long chars = 0;
        for (String d : src.documents(DataSource.Split.TRAIN)) {
            docs.add(d);
            if ((chars += d.length()) > 300_000) break;
        }
        Tokenizer tok = Tokenizer.train(docs, 512);
        TokenizerView view = new TokenizerView(tok::encode, tok::decode, tok.bosId(), tok.vocabSize(), tok.tokenByteLengths(), "test");

        BaseTrainOptions o = new BaseTrainOptions();
        new CommandLine(o).parseArgs("--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=64", "--window-pattern=L",
                "--device-batch-size=2", "--total-batch-size=256", "--num-iterations=3", "--warmup-steps=1", "--eval-every=3",
                "--eval-tokens=256", "--sample-every=3", "--core-metric-every=-1", "--data=" + books, "--checkpoint-dir=" + tmp.resolve("ckpt"));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        BaseTrain.Result r = BaseTrain.run(o, view, new PrintStream(log, true, StandardCharsets.UTF_8));
        String out = log.toString(StandardCharsets.UTF_8);
        assertEquals(3, r.finalStep(), out);
        assertTrue(Double.isFinite(r.valBpb().get(3)) && r.valBpb().get(3) > 0, out);
        assertTrue(Double.isFinite(r.unigramBpb()) && r.unigramBpb() > 0, out);
        assertTrue(out.contains("Unigram baseline bpb"), out);
        assertEquals(7, r.samples().size());
        assertTrue(Files.exists(tmp.resolve("ckpt/model_000003.safetensors")) && Files.exists(tmp.resolve("ckpt/meta_000003.json"))
                && Files.exists(tmp.resolve("ckpt/optim_000003_rank0.safetensors")), "checkpoint files");
    }
}
