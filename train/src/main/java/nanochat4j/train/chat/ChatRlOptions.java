package nanochat4j.train.chat;

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
 * chat_rl's flags with nanochat's names and defaults. Ours: --num-steps (a shorter run; the LR ramp
 * then spans it), --seed, the data folder, checkpoints and resume, --device and --precision.
 */
public final class ChatRlOptions {
    @Mixin
    public StartModelOptions start = new StartModelOptions();
    @Option(names = "--num-epochs", defaultValue = "1", description = "epochs over GSM8K train (default: ${DEFAULT-VALUE})")
    public int numEpochs;
    @Option(names = "--device-batch-size", defaultValue = "8", description = "max rows per forward pass (default: ${DEFAULT-VALUE})")
    public int deviceBatchSize;
    @Option(names = "--examples-per-step", defaultValue = "16", description = "questions per optimizer step across all ranks (default: ${DEFAULT-VALUE})")
    public int examplesPerStep;
    @Option(names = "--num-samples", defaultValue = "16", description = "completions sampled per question (default: ${DEFAULT-VALUE})")
    public int numSamples;
    @Option(names = "--max-new-tokens", defaultValue = "256", description = "max tokens per completion (default: ${DEFAULT-VALUE})")
    public int maxNewTokens;
    @Option(names = "--temperature", defaultValue = "1.0", description = "sampling temperature (default: ${DEFAULT-VALUE})")
    public double temperature;
    @Option(names = "--top-k", defaultValue = "50", description = "top-k sampling, 0 = whole vocabulary (default: ${DEFAULT-VALUE})")
    public int topK;
    @Option(names = "--embedding-lr", defaultValue = "0.2", description = "AdamW LR of the embedding (default: ${DEFAULT-VALUE})")
    public double embeddingLr;
    @Option(names = "--unembedding-lr", defaultValue = "0.004", description = "AdamW LR of lm_head (default: ${DEFAULT-VALUE})")
    public double unembeddingLr;
    @Option(names = "--matrix-lr", defaultValue = "0.02", description = "Muon LR (default: ${DEFAULT-VALUE})")
    public double matrixLr;
    @Option(names = "--weight-decay", defaultValue = "0.0", description = "weight decay (default: ${DEFAULT-VALUE})")
    public double weightDecay;
    @Option(names = "--init-lr-frac", defaultValue = "0.05", description = "initial LR as a fraction of the base LR (default: ${DEFAULT-VALUE})")
    public double initLrFrac;
    @Option(names = "--eval-every", defaultValue = "60", description = "pass@k every N steps, -1 = never (default: ${DEFAULT-VALUE})")
    public int evalEvery;
    @Option(names = "--eval-examples", defaultValue = "400", description = "GSM8K test problems for pass@k (default: ${DEFAULT-VALUE})")
    public int evalExamples;
    @Option(names = "--save-every", defaultValue = "60", description = "checkpoint every N steps (and at the end) (default: ${DEFAULT-VALUE})")
    public int saveEvery;
    // ours
    @Option(names = "--num-steps", defaultValue = "-1", description = "optimizer steps, -1 = (GSM8K train // examples-per-step) × epochs (default: ${DEFAULT-VALUE})")
    public int numSteps;
    @Option(names = "--seed", defaultValue = "0", description = "mixed into every sampling seed (default: ${DEFAULT-VALUE})")
    public long seed;
    @Mixin
    public TaskDataOptions tasks = new TaskDataOptions();
    @Mixin
    public ResumeOptions resume = new ResumeOptions();
    @Mixin
    public TrainDevice device = new TrainDevice();

    /** Every flag by nanochat's argument name, for the meta file's {@code user_config}. */
    public Map<String, Object> userConfig() {
        Map<String, Object> m = UserConfig.of(this, Set.of("--on-bad-line", "--resume-from-step", "--checkpoint-dir"));
        m.put("device_type", m.remove("device_type")); // nanochat's key (--device-type), last, where meta files have always had it
        return m;
    }
}
