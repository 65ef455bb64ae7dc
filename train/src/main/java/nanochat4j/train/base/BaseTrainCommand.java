package nanochat4j.train.base;

import java.util.concurrent.Callable;
import nanochat4j.model.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code nanochat4j base-train}: nanochat's {@code scripts/base_train.py} with the trained tokenizer. */
@Command(name = "base-train", mixinStandardHelpOptions = true,
        description = "Pretrain a base model (nanochat's base_train: the depth dial, MuonAdamW, val bpb, checkpoints).")
public final class BaseTrainCommand implements Callable<Integer> {
    @Mixin
    BaseTrainOptions options;

    @Override
    public Integer call() throws Exception {
        Tokenizer tok = Tokenizer.load(Tokenizer.defaultDir());
        TokenizerView view = new TokenizerView(tok::encode, tok::decode, tok.bosId(), tok.vocabSize(), tok.tokenByteLengths(),
                Tokenizer.defaultDir().toString());
        BaseTrain.run(options, view, System.out);
        return 0;
    }
}
