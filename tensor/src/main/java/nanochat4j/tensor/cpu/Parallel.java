package nanochat4j.tensor.cpu;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicReference;

/**
 * The one fixed worker pool every CPU kernel shares, sized to the cores ({@code -Dnanochat4j.threads=N} overrides).
 * Kernels split their outer loop into ranges with {@link #forRange}; the calling thread runs one range itself.
 * Nested calls (a kernel called from inside a worker) run serially, so the pool can never deadlock on itself.
 */
public final class Parallel {
    private Parallel() {}

    /** Body over a half-open range [start, end). */
    @FunctionalInterface
    public interface RangeBody {
        void run(int start, int end);
    }

    private static final int THREADS = threadCount();
    private static final ExecutorService POOL = Executors.newFixedThreadPool(Math.max(1, THREADS - 1), r -> {
        Thread t = new Thread(r, "nanochat4j-cpu");
        t.setDaemon(true);
        return t;
    });
    private static final ThreadLocal<Boolean> IN_WORKER = ThreadLocal.withInitial(() -> false);

    private static int threadCount() {
        String p = System.getProperty("nanochat4j.threads");
        int n = (p == null || p.isBlank()) ? Runtime.getRuntime().availableProcessors() : Integer.parseInt(p.trim());
        if (n < 1) throw new IllegalArgumentException("-Dnanochat4j.threads=" + p + " must be >= 1");
        return n;
    }

    /** Number of threads kernels split their work over. */
    public static int threads() {
        return THREADS;
    }

    /**
     * Runs {@code body} over [0, n) split into at most {@link #threads()} contiguous ranges of whole {@code grain}s
     * (so a range boundary never splits a tile); returns when all are done, rethrowing the first failure.
     */
    public static void forRange(int n, int grain, RangeBody body) {
        if (n <= 0) return;
        int units = (n + grain - 1) / grain;
        int parts = Math.min(THREADS, units);
        if (parts <= 1 || IN_WORKER.get()) {
            body.run(0, n);
            return;
        }
        CountDownLatch done = new CountDownLatch(parts - 1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        for (int p = 1; p < parts; p++) {
            int start = Math.min(n, (int) ((long) units * p / parts) * grain);
            int end = Math.min(n, (int) ((long) units * (p + 1) / parts) * grain);
            POOL.execute(() -> {
                IN_WORKER.set(true);
                try {
                    if (start < end) body.run(start, end);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    IN_WORKER.set(false);
                    done.countDown();
                }
            });
        }
        IN_WORKER.set(true);
        try {
            body.run(0, Math.min(n, (int) ((long) units / parts) * grain));
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        } finally {
            IN_WORKER.set(false);
        }
        try {
            done.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for kernel workers", e);
        }
        Throwable t = failure.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error er) throw er;
        if (t != null) throw new IllegalStateException(t);
    }

    /** {@link #forRange} with a grain of 1. */
    public static void forRange(int n, RangeBody body) {
        forRange(n, 1, body);
    }
}
