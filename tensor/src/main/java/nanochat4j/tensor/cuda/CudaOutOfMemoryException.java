package nanochat4j.tensor.cuda;

import java.util.Locale;

/**
 * The device ran out of memory, even after every cached block went back to the driver: in our own cuMemAlloc (the
 * bytes asked for are known) or inside a CUDA call that allocates for itself (a module's code, a launch's local
 * memory, cuBLAS's workspace: {@link #requested()} is -1 and {@link #what()} names the call).
 */
public final class CudaOutOfMemoryException extends CudaException {
    private final String what;
    private final long requested, free, total;

    /** cuMemAlloc of {@code requested} bytes failed. */
    public CudaOutOfMemoryException(long requested, long free, long total) {
        this("cuMemAlloc", requested, free, total);
    }

    /** {@code what} failed for lack of device memory; {@code requested} -1 where the call does not say how much. */
    public CudaOutOfMemoryException(String what, long requested, long free, long total) {
        super(String.format(Locale.ROOT, "CUDA out of memory: %s, %s free of %s on the device; use a smaller"
                + " --device-batch-size (or a shorter sequence / smaller model)", asked(what, requested), human(free), human(total)), 2);
        this.what = what;
        this.requested = requested;
        this.free = free;
        this.total = total;
    }

    /** The call that failed ("cuMemAlloc", "cuModuleLoadData(attention.cu)", "cublasGemmEx(…)"). */
    public String what() { return what; }

    /** Bytes the failed allocation asked for; -1 when a CUDA call allocated for itself. */
    public long requested() { return requested; }

    /** Free device memory (cuMemGetInfo) after the cache was returned to the driver; -1 when unknown. */
    public long free() { return free; }

    /** The device's total memory (cuMemGetInfo); -1 when unknown. */
    public long total() { return total; }

    private static String asked(String what, long requested) {
        return requested >= 0 ? "asked for " + human(requested) : what + " failed for lack of memory";
    }

    /** "1.50 GiB", "12.0 MiB", "512 B"; "?" for -1 (unknown). */
    public static String human(long bytes) {
        if (bytes < 0) return "?";
        if (bytes < 1024) return bytes + " B";
        if (bytes < 1024L * 1024) return String.format(Locale.ROOT, "%.1f KiB", bytes / 1024.0);
        if (bytes < 1024L * 1024 * 1024) return String.format(Locale.ROOT, "%.1f MiB", bytes / (1024.0 * 1024));
        return String.format(Locale.ROOT, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    }
}
