package nanochat4j.train.cli;

import nanochat4j.tensor.cuda.MatmulPrecision;
import picocli.CommandLine.Option;

/**
 * {@code --precision bf16|fp32}: how a GPU computes the linear layers (nanochat's CUDA policy is bf16, autocast in
 * training and inference alike); the CPU computes in fp32 whatever it says (its bf16 for decoding is {@code --weights}).
 * A mixin of the training commands (through {@link TrainDevice}) and of those that run a model.
 */
public final class PrecisionOption {
    @Option(names = "--precision", defaultValue = "bf16",
            description = "on CUDA, the linear layers: bf16 (nanochat's: bf16 operands, fp32 accumulation; training keeps fp32 master weights) or fp32; the CPU computes in fp32 (default: ${DEFAULT-VALUE})")
    String value = "bf16";

    public MatmulPrecision get() {
        return MatmulPrecision.parse(value);
    }
}
