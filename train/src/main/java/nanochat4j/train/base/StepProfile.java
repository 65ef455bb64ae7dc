package nanochat4j.train.base;

import java.util.List;
import java.util.Locale;
import nanochat4j.tensor.Backend;

/** base-train's --profile-step report: where one optimizer step's device time went, kernel by kernel. */
final class StepProfile {
    private StepProfile() {}

    /** Ends a profile whose step failed with {@code failure}; a failure to end it is added to that one, never hides it. */
    static void abandon(Backend backend, Throwable failure) {
        try {
            backend.stopProfile();
        } catch (RuntimeException e) {
            failure.addSuppressed(e);
        }
    }

    /** Kernels listed by name; the rest are summed on one line. */
    static final int TOP = 24;

    /**
     * The table for step {@code step}: each kernel's milliseconds, share of the kernels' sum and calls, the longest first.
     * The sum against the step's wall time says how much of the step the device was busy; the rest it waited for the
     * host (launches, host reads, the data).
     */
    static String table(int step, List<Backend.KernelTime> times, double wallMs) {
        double busy = Backend.KernelTime.totalMs(times);
        int launches = Backend.KernelTime.totalCalls(times);
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT,
                "Device time of step %d by kernel (CUDA events around each of its %,d launches): %.1f ms busy in a step of %.1f ms (%.0f%%)%n",
                step, launches, busy, wallMs, wallMs > 0 ? 100 * busy / wallMs : 0));
        sb.append(String.format(Locale.ROOT, "  %9s %6s %6s  %s%n", "ms", "share", "calls", "kernel"));
        double rest = 0;
        int restKernels = 0, restCalls = 0;
        for (int i = 0; i < times.size(); i++) {
            Backend.KernelTime t = times.get(i);
            if (i < TOP) {
                sb.append(String.format(Locale.ROOT, "  %9.3f %5.1f%% %6d  %s%n", t.ms(), busy > 0 ? 100 * t.ms() / busy : 0, t.calls(), t.name()));
            } else {
                rest += t.ms();
                restKernels++;
                restCalls += t.calls();
            }
        }
        if (restKernels > 0) {
            sb.append(String.format(Locale.ROOT, "  %9.3f %5.1f%% %6d  (%d more kernels)%n", rest, busy > 0 ? 100 * rest / busy : 0, restCalls, restKernels));
        }
        return sb.toString();
    }
}
