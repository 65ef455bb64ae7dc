package nanochat4j.tensor.cuda;

import nanochat4j.tensor.Tensor;

/**
 * A kernel argument pointing {@code byteOffset} bytes into {@code tensor}'s device memory. Passed to
 * {@link CudaContext.Module#launch} instead of a raw address, it keeps the tensor reachable until the kernel is
 * queued (see there).
 */
public record DevicePtr(Tensor tensor, long byteOffset) {
    long address() {
        return tensor.deviceAddress() + byteOffset;
    }
}
