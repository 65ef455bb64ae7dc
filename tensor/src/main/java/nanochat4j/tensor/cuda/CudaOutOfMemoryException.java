package nanochat4j.tensor.cuda;

/** cuMemAlloc failed for lack of device memory, even after returning every cached block to the driver. */
public final class CudaOutOfMemoryException extends CudaException {
    public CudaOutOfMemoryException(long requested, long free, long total) {
        super(String.format("CUDA out of memory: asked for %s, %s free of %s on the device; use a smaller"
                + " --device-batch-size (or a shorter sequence / smaller model)", human(requested), human(free), human(total)), 2);
    }

    static String human(long bytes) {
        if (bytes < 1024) return bytes + " B";
        if (bytes < 1024L * 1024) return String.format("%.1f KiB", bytes / 1024.0);
        if (bytes < 1024L * 1024 * 1024) return String.format("%.1f MiB", bytes / (1024.0 * 1024));
        return String.format("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
}
