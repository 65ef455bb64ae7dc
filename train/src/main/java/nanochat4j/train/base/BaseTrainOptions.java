package nanochat4j.train.base;

import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import nanochat4j.tensor.Device;
import nanochat4j.train.cli.ResumeOptions;
import nanochat4j.train.cli.TrainDevice;
import nanochat4j.train.cli.UserConfig;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * base_train's flags, with nanochat's names and defaults. A picocli mixin: the
 * {@code base-train} command parses them, tests build them the same way ({@code CommandLine.populateCommand}).
 */
public final class BaseTrainOptions {
    // model
    @Option(names = "--depth", defaultValue = "20", description = "depth of the Transformer (default: ${DEFAULT-VALUE})")
    public int depth;
    @Option(names = "--aspect-ratio", defaultValue = "64", description = "model_dim = depth * aspect_ratio, rounded up to head dim (default: ${DEFAULT-VALUE})")
    public int aspectRatio;
    @Option(names = "--head-dim", defaultValue = "128", description = "target head dimension (default: ${DEFAULT-VALUE})")
    public int headDim;
    @Option(names = "--max-seq-len", defaultValue = "2048", description = "max context length (default: ${DEFAULT-VALUE})")
    public int maxSeqLen;
    @Option(names = "--window-pattern", defaultValue = "SSSL", description = "sliding window pattern over layers: L = full, S = quarter context (default: ${DEFAULT-VALUE})")
    public String windowPattern;
    // horizon (first that is set wins)
    @Option(names = "--num-iterations", defaultValue = "-1", description = "explicit number of optimizer steps (-1 = derive)")
    public int numIterations;
    @Option(names = "--target-flops", defaultValue = "-1", description = "derive steps from this FLOP budget (-1 = off)")
    public double targetFlops;
    @Option(names = "--target-param-data-ratio", defaultValue = "12", description = "derive steps as ratio * scaling params tokens (default: ${DEFAULT-VALUE})")
    public double targetParamDataRatio;
    // batch
    @Option(names = "--device-batch-size", defaultValue = "32", description = "sequences per forward/backward (default: ${DEFAULT-VALUE})")
    public int deviceBatchSize;
    @Option(names = "--total-batch-size", defaultValue = "-1", description = "tokens per optimizer step (-1 = derive, Power-Lines rule)")
    public long totalBatchSize;
    // optimizer
    @Option(names = "--embedding-lr", defaultValue = "0.3", description = "AdamW LR of the embedding (default: ${DEFAULT-VALUE})")
    public double embeddingLr;
    @Option(names = "--unembedding-lr", defaultValue = "0.008", description = "AdamW LR of lm_head (default: ${DEFAULT-VALUE})")
    public double unembeddingLr;
    @Option(names = "--matrix-lr", defaultValue = "0.02", description = "Muon LR of the matrices (default: ${DEFAULT-VALUE})")
    public double matrixLr;
    @Option(names = "--scalar-lr", defaultValue = "0.5", description = "LR of the scalars (default: ${DEFAULT-VALUE})")
    public double scalarLr;
    @Option(names = "--weight-decay", defaultValue = "0.28", description = "Muon weight decay before the T_epoch scaling (default: ${DEFAULT-VALUE})")
    public double weightDecay;
    @Option(names = "--warmup-steps", defaultValue = "40", description = "LR warmup steps (default: ${DEFAULT-VALUE})")
    public int warmupSteps;
    @Option(names = "--warmdown-ratio", defaultValue = "0.65", description = "fraction of steps for the LR warmdown (default: ${DEFAULT-VALUE})")
    public double warmdownRatio;
    @Option(names = "--final-lr-frac", defaultValue = "0.05", description = "final LR as a fraction of the initial (default: ${DEFAULT-VALUE})")
    public double finalLrFrac;
    @Mixin
    public ResumeOptions resume = new ResumeOptions();
    // evaluation and output
    @Option(names = "--eval-every", defaultValue = "250", description = "val bpb every N steps, -1 = off (default: ${DEFAULT-VALUE})")
    public int evalEvery;
    @Option(names = "--eval-tokens", defaultValue = "41943040", description = "tokens per val bpb evaluation (default: 80*524288)")
    public long evalTokens;
    @Option(names = "--core-metric-every", defaultValue = "2000", description = "CORE metric every N steps and at the end, -1 = off (default: ${DEFAULT-VALUE})")
    public int coreMetricEvery;
    @Option(names = "--core-metric-max-per-task", defaultValue = "500", description = "examples per task for the CORE metric, -1 = all (default: ${DEFAULT-VALUE})")
    public int coreMetricMaxPerTask;
    @Option(names = "--bundle", description = "CORE eval bundle folder (default: $NANOCHAT_BASE_DIR/eval_bundle, downloaded there when missing)")
    public Path bundle;
    @Option(names = "--sample-every", defaultValue = "2000", description = "greedy samples every N steps, -1 = off (default: ${DEFAULT-VALUE})")
    public int sampleEvery;
    @Option(names = "--save-every", defaultValue = "-1", description = "checkpoint every N steps, -1 = only at the end")
    public int saveEvery;
    @Option(names = "--save-final", defaultValue = "true", negatable = true, fallbackValue = "true",
            description = "checkpoint at the end (--no-save-final: a benchmark run that keeps nothing, e.g. gpu-check's) (default: ${DEFAULT-VALUE})")
    public boolean saveFinal = true;
    @Option(names = "--model-tag", description = "checkpoint folder name (default: d<depth>)")
    public String modelTag;
    @Option(names = "--data", description = "data directory (*.parquet, *.jsonl, *.txt; last file = val) (default: $NANOCHAT_BASE_DIR/base_data_climbmix)")
    public Path data;
    @Option(names = "--strip-gutenberg", defaultValue = "true", negatable = true, fallbackValue = "true",
            description = "keep only the text between Project Gutenberg START/END markers in .txt files (default: ${DEFAULT-VALUE})")
    public boolean stripGutenberg;
    @Option(names = {"--device", "--device-type"}, defaultValue = "cpu",
            description = "cpu or cuda: where parameters, gradients and activations live (--device-type: nanochat's name) (default: ${DEFAULT-VALUE})")
    public String device;
    @Option(names = "--precision", defaultValue = "bf16",
            description = "linear layers on CUDA: bf16 (nanochat's: bf16 operands, fp32 accumulation, fp32 master weights) or fp32; the CPU computes in fp32 (default: ${DEFAULT-VALUE})")
    public String precision;
    @Option(names = "--muon-precision", defaultValue = "auto",
            description = "Muon's polar-express GEMMs on CUDA: auto (as --precision: bf16 operands under bf16, as nanochat's) or fp32 (a run's "
                    + "update then sums the same whatever the number of ranks; bf16 can turn a last-bit difference into a rounding step) (default: ${DEFAULT-VALUE})")
    public String muonPrecision = "auto";
    @Option(names = "--bf16-activations", defaultValue = "true", negatable = true, fallbackValue = "true",
            description = TrainDevice.BF16_ACTIVATIONS)
    public boolean bf16Activations;
    @Option(names = "--overlap-reduce", defaultValue = "auto",
            description = "several ranks: average the gradients while the backward runs, then an unsharded optimizer on every rank (on), or ZeRO-2 reduce-scatter after it (off); auto = on for cuda (default: ${DEFAULT-VALUE})")
    public String overlapReduce;
    @Option(names = "--profile-step", defaultValue = "-1",
            description = "on CUDA: time every kernel of optimizer step N (CUDA events around each launch) and print where the step's device time went, -1 = off (default: ${DEFAULT-VALUE})")
    public int profileStep;

    /** Whether a job of {@code world} ranks on {@code device} overlaps its gradient all-reduce with the backward pass. */
    public boolean overlapReduce(int world, Device device) {
        boolean on = switch (overlapReduce == null ? "auto" : overlapReduce.toLowerCase(Locale.ROOT)) {
            case "auto" -> device == Device.CUDA;
            case "on", "true" -> true;
            case "off", "false" -> false;
            default -> throw new IllegalArgumentException("--overlap-reduce " + overlapReduce + ": expected auto, on or off");
        };
        return world > 1 && on;
    }

    /** {@link #device} as a {@link Device}; a clear message for anything but cpu/cuda. */
    public Device deviceKind() {
        return TrainDevice.parse(device);
    }

    public String tag() {
        return modelTag != null ? modelTag : "d" + depth;
    }

    /**
     * Every flag by nanochat's argument name, for the meta file's {@code user_config}; --model-tag as resolved, --device
     * under nanochat's name. Left out: where this machine keeps the eval bundle and the checkpoints (--data stays:
     * base-eval reads it to score the data the model was trained on), and the diagnostics (--profile-step, --no-save-final).
     */
    public Map<String, Object> userConfig() {
        Map<String, Object> m = UserConfig.of(this, Set.of("--bundle", "--checkpoint-dir", "--profile-step", "--save-final"));
        m.put("model_tag", tag());
        m.put("device_type", m.remove("device_type")); // nanochat's key (--device-type), last, where meta files have always had it
        return m;
    }
}
