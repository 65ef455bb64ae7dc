package nanochat4j.tensor.cuda;

/** cuMemAlloc failed for lack of device memory, even after returning every cached block to the driver. */
public final class CudaOutOfMemoryException extends CudaException {
    private final long requested, free, total;

    public CudaOutOfMemoryException(long requested, long free, long total) {
        super(String.format(java.util.Locale.ROOT, "CUDA out of memory: asked for %s, %s free of %s on the device; use a smaller"
                + " --device-batch-size (or a shorter sequence / smaller model)", human(requested), human(free), human(total)), 2);
        this.requested = requested;
        this.free = free;
        this.total = total;
    }

    /** Bytes the failed allocation asked for. */
    public long requested() { return requested; }

    /** Free device memory (cuMemGetInfo) after the cache was returned to the driver. */
    public long free() { return free; }

    /** The device's total memory (cuMemGetInfo). */
    public long total() { return total; }

    /** "1.50 GiB", "12.0 MiB", "512 B". */
    public static String human(long bytes) {
        if (bytes < 1024) return bytes + " B";
        if (bytes < 1024L * 1024) return String.format(java.util.Locale.ROOT, "%.1f KiB", bytes / 1024.0);
        if (bytes < 1024L * 1024 * 1024) return String.format(java.util.Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024));
        return String.format(java.util.Locale.ROOT, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
}
