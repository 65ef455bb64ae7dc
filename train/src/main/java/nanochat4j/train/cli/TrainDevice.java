package nanochat4j.train.cli;

import java.io.IOException;
import java.util.Locale;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaUnavailableException;
import nanochat4j.tensor.cuda.MatmulPrecision;
import picocli.CommandLine.Option;

/**
 * Where a training command runs ({@code --device cpu|cuda}) and, on the GPU, in what precision its linear layers
 * compute ({@code --precision bf16|fp32}): a mixin for chat-sft; base-train keeps the same two flags in its own list
 * (nanochat's order) and shares the parsing here.
 */
public final class TrainDevice {
    @Option(names = "--device", defaultValue = "cpu", description = "cpu or cuda: where parameters, gradients and activations live (default: ${DEFAULT-VALUE})")
    public String device = "cpu";
    @Option(names = "--precision", defaultValue = "bf16",
            description = "linear layers on CUDA: bf16 (nanochat's: bf16 operands, fp32 accumulation, fp32 master weights) or fp32; the CPU computes in fp32 (default: ${DEFAULT-VALUE})")
    public String precision = "bf16";

    public Device kind() {
        return parse(device);
    }

    /** A --device value as a {@link Device}; a clear message for anything but cpu/cuda. */
    public static Device parse(String device) {
        return switch (device == null ? "cpu" : device.toLowerCase(Locale.ROOT)) {
            case "cpu" -> Device.CPU;
            case "cuda" -> Device.CUDA;
            default -> throw new IllegalArgumentException("--device " + device + ": expected cpu or cuda");
        };
    }

    /** A run's body. */
    @FunctionalInterface
    public interface Run<T> {
        T run() throws IOException;
    }

    /**
     * {@code body} with the GPU's linear layers at {@code precision} for its length only ({@code cuda} null: on the
     * CPU, as is): the backend is the process's, and what runs after (a test of fp32 ops in the same JVM) must find it
     * as it was.
     */
    public static <T> T withPrecision(CudaBackend cuda, MatmulPrecision precision, Run<T> body) throws IOException {
        MatmulPrecision before = cuda != null ? cuda.setMatmulPrecision(precision) : null;
        try {
            return body.run();
        } finally {
            if (cuda != null) cuda.setMatmulPrecision(before);
        }
    }

    /** The backend of {@code device}; where CUDA is unusable, an error with the one-line reason. */
    public static Backend backend(Device device) {
        try {
            return Backend.forDevice(device);
        } catch (CudaUnavailableException e) {
            throw new IllegalArgumentException("--device cuda: " + e.getMessage() + " (--device cpu always works)", e);
        }
    }
}
