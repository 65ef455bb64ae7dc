package nanochat4j.tensor;

/**
 * A backend installed in the CUDA backend's place by tests on machines without a GPU (the tensor module's test
 * {@code StandInCuda}: device tensors in host memory, every op computed by the CPU backend). Everything above the
 * backend — the model, autograd, the optimizer, the engine, the training and serving commands — then takes its device
 * code paths on the CPU: a host accessor on a device tensor, a host tensor handed to a device op or a read of memory
 * already handed back fails there as it would on a GPU. Nothing outside tests installs one.
 */
public final class DeviceStandIn {
    private static volatile Backend cuda;

    private DeviceStandIn() {}

    /** An installed stand-in; closing it puts the real CUDA backend back. */
    public interface Installed extends AutoCloseable {
        @Override
        void close();
    }

    /** Installs {@code backend} (whose device is CUDA) for {@link Device#CUDA} until the handle closes; one at a time. */
    public static synchronized Installed installForCuda(Backend backend) {
        if (backend.device() != Device.CUDA) throw new IllegalArgumentException("a CUDA stand-in must compute on Device.CUDA, not " + backend.device());
        if (cuda != null) throw new IllegalStateException("a CUDA stand-in is installed already");
        cuda = backend;
        return () -> {
            synchronized (DeviceStandIn.class) {
                cuda = null;
            }
        };
    }

    /** The installed CUDA stand-in, or null. */
    static Backend cuda() {
        return cuda;
    }
}
