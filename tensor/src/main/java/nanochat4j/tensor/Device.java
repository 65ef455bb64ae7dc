package nanochat4j.tensor;

/**
 * Where a tensor's storage lives: heap arrays (CPU) or device memory ({@link DeviceStorage}, CUDA), behind the same
 * {@link Backend} methods, so the model and autograd never branch on the device.
 */
public enum Device {
    CPU, CUDA
}
