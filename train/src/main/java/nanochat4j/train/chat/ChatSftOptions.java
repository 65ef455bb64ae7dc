package nanochat4j.train.chat;

import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import nanochat4j.train.cli.ResumeOptions;
import nanochat4j.train.cli.StartModelOptions;
import nanochat4j.train.cli.TaskDataOptions;
import nanochat4j.train.cli.TrainDevice;
import nanochat4j.train.cli.UserConfig;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * chat_sft's flags with nanochat's names and defaults; null batch/LR values are inherited from the
 * base checkpoint's meta (fallbacks 2048 / 32 / 524288 and 0.3 / 0.004 / 0.02), as nanochat does. The data flags
 * are ours: nanochat downloads SmolTalk, MMLU auxiliary_train and GSM8K from the Hub; here they are files.
 */
public final class ChatSftOptions {
    @Mixin
    public StartModelOptions start = new StartModelOptions();
    @Option(names = "--load-optimizer", defaultValue = "1", description = "warm-start the optimizer from the base checkpoint, 0/1 (default: ${DEFAULT-VALUE})")
    public int loadOptimizer;
    @Option(names = "--num-iterations", defaultValue = "-1", description = "optimizer steps, -1 = one epoch of the mixture (default: ${DEFAULT-VALUE})")
    public int numIterations;
    @Option(names = "--max-seq-len", description = "row length (default: the base model's)")
    public Integer maxSeqLen;
    @Option(names = "--device-batch-size", description = "rows per forward/backward (default: the base run's)")
    public Integer deviceBatchSize;
    @Option(names = "--total-batch-size", description = "tokens per optimizer step (default: the base run's)")
    public Long totalBatchSize;
    @Option(names = "--embedding-lr", description = "AdamW LR of the embedding (default: the base run's, else 0.3)")
    public Double embeddingLr;
    @Option(names = "--unembedding-lr", description = "AdamW LR of lm_head (default: the base run's, else 0.004)")
    public Double unembeddingLr;
    @Option(names = "--matrix-lr", description = "Muon LR (default: the base run's, else 0.02)")
    public Double matrixLr;
    @Option(names = "--scalar-lr", defaultValue = "0.5", description = "LR of the scalars (default: ${DEFAULT-VALUE})")
    public double scalarLr;
    @Option(names = "--init-lr-frac", defaultValue = "0.8", description = "initial LR as a fraction of the base LR (default: ${DEFAULT-VALUE})")
    public double initLrFrac;
    @Option(names = "--warmup-ratio", defaultValue = "0.0", description = "fraction of progress for LR warmup (default: ${DEFAULT-VALUE})")
    public double warmupRatio;
    @Option(names = "--warmdown-ratio", defaultValue = "0.5", description = "fraction of progress for LR warmdown (default: ${DEFAULT-VALUE})")
    public double warmdownRatio;
    @Option(names = "--final-lr-frac", defaultValue = "0.0", description = "final LR as a fraction of the initial (default: ${DEFAULT-VALUE})")
    public double finalLrFrac;
    @Option(names = "--eval-every", defaultValue = "200", description = "val loss/bpb every N steps, -1 = only at the end (default: ${DEFAULT-VALUE})")
    public int evalEvery;
    @Option(names = "--eval-tokens", defaultValue = "20971520", description = "tokens per validation (default: 40*524288)")
    public long evalTokens;
    @Option(names = "--chatcore-every", defaultValue = "200", description = "ChatCORE every N steps and at the end, -1 = off (default: ${DEFAULT-VALUE})")
    public int chatcoreEvery;
    @Option(names = "--chatcore-max-cat", defaultValue = "-1", description = "problems per categorical task for ChatCORE, -1 = all (default: ${DEFAULT-VALUE})")
    public int chatcoreMaxCat;
    @Option(names = "--chatcore-max-sample", defaultValue = "24", description = "problems per generative task for ChatCORE (default: ${DEFAULT-VALUE})")
    public int chatcoreMaxSample;
    @Option(names = "--mmlu-epochs", defaultValue = "3", description = "epochs of the multiple-choice set in the mixture (default: ${DEFAULT-VALUE})")
    public int mmluEpochs;
    @Option(names = "--gsm8k-epochs", defaultValue = "4", description = "epochs of GSM8K train in the mixture (default: ${DEFAULT-VALUE})")
    public int gsm8kEpochs;
    // ours: data files, checkpoints
    @Mixin
    public TaskDataOptions tasks = new TaskDataOptions();
    @Option(names = "--conversations", description = "general conversations, JSONL of {\"messages\":[…]} or alpaca records; its last 5%% is validation (default: <task-data>/sft/alpaca_5000/alpaca_5000.json)")
    public Path conversations;
    @Option(names = "--max-conversations", defaultValue = "-1", description = "use only the first N general conversations, -1 = all (default: ${DEFAULT-VALUE})")
    public int maxConversations;
    @Option(names = "--extra-conversations", description = "custom conversations (identity, spelling…), JSONL, added --extra-epochs times")
    public Path extraConversations;
    @Option(names = "--extra-epochs", defaultValue = "2", description = "epochs of --extra-conversations (default: ${DEFAULT-VALUE})")
    public int extraEpochs;
    @Option(names = "--save-every", defaultValue = "-1", description = "checkpoint every N steps, -1 = only at the end (default: ${DEFAULT-VALUE})")
    public int saveEvery;
    @Mixin
    public ResumeOptions resume = new ResumeOptions();
    @Mixin
    public TrainDevice device = new TrainDevice();

    /** Every flag by nanochat's argument name, for the meta file's {@code user_config} (chat-sft writes the inherited values over it). */
    public Map<String, Object> userConfig() {
        Map<String, Object> m = UserConfig.of(this, Set.of("--on-bad-line", "--resume-from-step", "--checkpoint-dir"));
        m.put("device_type", m.remove("device_type")); // nanochat's key (--device-type), last, where meta files have always had it
        return m;
    }
}
