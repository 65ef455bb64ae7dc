package nanochat4j.tensor;

import java.lang.foreign.MemorySegment;

/**
 * Memory on an accelerator that a {@link Tensor} can sit on instead of a heap array. The tensor package only needs
 * the address (handed to kernels by the backend that owns the memory) and the few copies {@link Tensor} offers for
 * explicit device ↔ host moves; allocation, freeing and every kernel live in that backend (e.g. {@code CudaBackend}).
 * Offsets and sizes are in bytes.
 */
public interface DeviceStorage {

    /** The device this memory belongs to (never {@link Device#CPU}). */
    Device device();

    /** Base device address (e.g. a {@code CUdeviceptr}). */
    long address();

    /** Capacity in bytes. */
    long bytes();

    /** Copies {@code bytes} from this memory at {@code byteOffset} into host memory {@code dst} (blocking). */
    void copyToHost(long byteOffset, MemorySegment dst, long bytes);

    /** Copies {@code bytes} from host memory {@code src} into this memory at {@code byteOffset} (blocking). */
    void copyFromHost(MemorySegment src, long byteOffset, long bytes);

    /** Copies {@code bytes} from {@code src} at {@code srcOffset} to this memory at {@code dstOffset} (same device). */
    void copyFromDevice(DeviceStorage src, long srcOffset, long dstOffset, long bytes);

    /** New memory of {@code bytes} on the same device (contents undefined). */
    DeviceStorage allocateLike(long bytes);

    /**
     * Hands this memory back to its allocator now, for reuse by work queued after everything that read it; called
     * once nothing will read it again (by the {@link Recycler}, for the autograd tape, and by backends for their own
     * temporaries). The default does nothing: the memory then goes when unreachable.
     */
    default void recycle() {}
}
