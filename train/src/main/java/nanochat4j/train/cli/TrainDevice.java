package nanochat4j.train.cli;

import java.util.Locale;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.cuda.CudaUnavailableException;
import nanochat4j.tensor.cuda.MatmulPrecision;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * Where a training command runs ({@code --device cpu|cuda}) and, on the GPU, in what precision its linear layers
 * compute ({@code --precision bf16|fp32}) and its activations are kept for the backward ({@code --[no-]bf16-activations}):
 * a mixin for chat-sft and chat-rl; base-train keeps the same flags in its own list (nanochat's order) and shares the
 * parsing here.
 */
public final class TrainDevice {
    @Option(names = {"--device", "--device-type"}, defaultValue = "cpu",
            description = "cpu or cuda: where parameters, gradients and activations live (--device-type: nanochat's name) (default: ${DEFAULT-VALUE})")
    public String device = "cpu";
    @Mixin
    public PrecisionOption precision = new PrecisionOption();
    @Option(names = "--bf16-activations", defaultValue = "true", negatable = true, fallbackValue = "true", description = BF16_ACTIVATIONS)
    public boolean bf16Activations = true;

    /** The help of {@code --[no-]bf16-activations} (base-train has the flag in its own list). */
    public static final String BF16_ACTIVATIONS = "on CUDA under --precision bf16, keep each block's activations for the backward in bf16 as"
            + " nanochat does (~40%% less activation memory, a conversion each way); --no-bf16-activations keeps them as computed, fp32"
            + " (default: ${DEFAULT-VALUE})";

    /** The line a run prints on a device under bf16 matmuls, saying how it keeps activations; null where it does not matter. */
    public static String activationsLine(Device device, MatmulPrecision precision, boolean bf16Activations) {
        if (device == Device.CPU || precision != MatmulPrecision.BF16) return null;
        return "Activations kept for the backward: " + (bf16Activations ? "bf16 (--no-bf16-activations: fp32)" : "fp32");
    }

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

    /** The log line that says where a run computes: "Device: CUDA (H100 …, sm_90, …; linear layers in bf16)" or "Device: CPU". */
    public static String line(Backend backend, MatmulPrecision precision) {
        String what = backend.describe();
        if (backend.device() == Device.CPU) return "Device: " + what;
        return "Device: " + (what.endsWith(")") ? what.substring(0, what.length() - 1) + "; " : what + " (") + "linear layers in " + precision.flag() + ")";
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
