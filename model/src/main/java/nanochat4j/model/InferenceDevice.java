package nanochat4j.model;

import java.util.Locale;
import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Backend;

/**
 * The {@code --device} of the commands that run a trained model (chat, serve, base-eval, chat-eval): {@code auto}
 * (the GPU when CUDA is usable here, else the CPU), {@code cpu} (always works) or {@code cuda} (a one-line error with
 * the reason when it is not usable).
 */
public enum InferenceDevice {
    AUTO, CPU, CUDA;

    /** The device this choice means on this machine. */
    public Device resolve() {
        return switch (this) {
            case CPU -> Device.CPU;
            case AUTO -> Backend.unavailableReason(Device.CUDA) == null ? Device.CUDA : Device.CPU;
            case CUDA -> {
                String why = Backend.unavailableReason(Device.CUDA);
                if (why != null) throw new IllegalArgumentException("--device cuda: " + why + " (--device cpu always works)");
                yield Device.CUDA;
            }
        };
    }

    /** {@code model} on {@code device}: itself when it is there already, else a copy of its weights. */
    public static GPT place(GPT model, Device device) {
        return model.device() == device ? model : model.to(device);
    }

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
