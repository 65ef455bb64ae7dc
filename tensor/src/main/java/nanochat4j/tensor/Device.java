package nanochat4j.tensor;

/**
 * Where a tensor's storage lives. Only CPU exists today; a CUDA backend adds device memory behind the same
 * {@link Backend} methods, so the model and autograd never branch on the device.
 */
public enum Device {
    CPU, CUDA
}
