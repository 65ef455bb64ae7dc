package nanochat4j.bench;

import java.time.Instant;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.LongAdder;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordingStream;

/**
 * The JIT's deoptimizations while a bench times something (JFR's {@code jdk.Deoptimization} events, streamed in this
 * process), so that a timing made slow by compiled code that keeps falling back to the interpreter says so, and
 * where. Such a storm made about one JVM in four decode 20× slower for several sessions before it was found
 * (docs/BENCHMARKS.md); a settled timed run has a handful at most. Without the jdk.jfr module (a trimmed runtime)
 * nothing is counted and every count reads -1.
 */
final class Deopts implements AutoCloseable {
    /** More deoptimizations than this in one timed stretch is a storm, not the JIT settling. */
    static final long STORM = 1000;

    /** One timed stretch: events whose start time falls between its start and end are its own. */
    static final class Window {
        final Instant start = Instant.now();
        volatile Instant end = Instant.MAX;
        final LongAdder count = new LongAdder();
        final Map<String, LongAdder> sites = new ConcurrentHashMap<>();
    }

    private final RecordingStream stream;            // null where jdk.jfr is absent
    private final List<Window> windows = new CopyOnWriteArrayList<>();
    private volatile Instant flushed = Instant.MIN;   // every event up to here has been delivered

    private Deopts(RecordingStream stream) {
        this.stream = stream;
    }

    /** Starts counting (a no-op recorder where the runtime has no jdk.jfr module). */
    static Deopts start() {
        if (ModuleLayer.boot().findModule("jdk.jfr").isEmpty()) return new Deopts(null);
        RecordingStream rs = new RecordingStream();
        Deopts d = new Deopts(rs);
        rs.enable("jdk.Deoptimization");   // the site is in the event itself: no stack trace per event
        rs.onEvent("jdk.Deoptimization", d::record);
        rs.onFlush(() -> d.flushed = Instant.now());
        rs.startAsync();
        return d;
    }

    Window open() {
        Window w = new Window();
        windows.add(w);
        return w;
    }

    /** Ends w and returns its count once every event up to its end has been delivered (at most ~3 s later), or -1. */
    long close(Window w) {
        return close(w, true);
    }

    /**
     * Ends w and returns its count so far, or -1; without waiting, the events of its last second may still be on their
     * way (JFR delivers them about once a second), which a storm over timed runs of a second or more outlasts.
     */
    long close(Window w, boolean waitForDelivery) {
        w.end = Instant.now();
        if (stream == null) return -1;
        if (!waitForDelivery) return w.count.sum();
        long deadline = System.nanoTime() + 3_000_000_000L;
        while (flushed.isBefore(w.end) && System.nanoTime() < deadline) {
            try {
                Thread.sleep(20);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                break;
            }
        }
        return w.count.sum();
    }

    /**
     * A note for a closed window with a storm ("the JIT deoptimized N times …, most at … (reason, action): …"), or
     * null when it had fewer than {@link #STORM}.
     */
    static String note(Window w, String what) {
        long n = w.count.sum();
        if (n < STORM) return null;
        String worst = w.sites.entrySet().stream().max(Comparator.comparingLong(e -> e.getValue().sum()))
                .map(e -> String.format(Locale.ROOT, "%,d at %s", e.getValue().sum(), e.getKey())).orElse("?");
        return String.format(Locale.ROOT, "the JIT deoptimized %,d times during %s (%s): compiled code is falling back"
                + " to the interpreter, so this timing is not the kernel's", n, what, worst);
    }

    private void record(RecordedEvent e) {
        Instant t = e.getStartTime();
        for (Window w : windows) {
            if (!t.isBefore(w.start) && !t.isAfter(w.end)) {
                w.count.increment();
                w.sites.computeIfAbsent(site(e), k -> new LongAdder()).increment();
            }
        }
    }

    private static String site(RecordedEvent e) {
        String method = e.getValue("method") instanceof RecordedMethod m
                ? m.getType().getName().replaceFirst("^.*\\.", "") + "." + m.getName() : "?";
        return method + " line " + e.getValue("lineNumber") + ": " + e.getValue("reason") + ", action " + e.getValue("action");
    }

    @Override
    public void close() {
        if (stream != null) stream.close();
    }
}
