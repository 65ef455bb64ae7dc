package nanochat4j.tensor.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.tensor.Backend;

/**
 * Where a stretch of device work spends its time, kernel by kernel ({@link CudaContext#startProfile}): each kernel
 * launch, cuBLAS call and graph launch queued on the context's stream while it is on is bracketed by two events, and
 * {@link #finish} waits for the stream and sums the elapsed times by name. One stream runs everything in order, so
 * the events serialize nothing; they add a few microseconds of host time a launch, so a profiled step runs a little
 * slower than the others (profile one step, not a run). Work another thread queues between a kernel's two events
 * (serve's workers share the stream) counts to that kernel. The GPU's idle time between kernels is the step's wall
 * time less the sum: the host's share (launches, waits for the device).
 */
final class KernelProfile {
    private final Driver driver;
    private final MemorySegment stream;
    /** Created events, reused: pair i is events 2i (start) and 2i+1 (end). */
    private final List<MemorySegment> events = new ArrayList<>();
    private final List<String> names = new ArrayList<>();
    /** Set by {@link #finish}: a launch another thread queues after it runs untimed (no event is left to leak). */
    private boolean finished;

    KernelProfile(Driver driver, MemorySegment stream) {
        this.driver = driver;
        this.stream = stream;
    }

    /** Queues {@code work} (one launch) between two events, under {@code name}. */
    synchronized void time(String name, Runnable work) {
        if (finished) {
            work.run();
            return;
        }
        int i = names.size();
        MemorySegment start = event(2 * i), end = event(2 * i + 1);
        driver.eventRecord(start, stream);
        work.run();                      // a failed launch leaves the pair unused: its name is never added
        driver.eventRecord(end, stream);
        names.add(name);
    }

    private MemorySegment event(int i) {
        while (events.size() <= i) events.add(driver.eventCreate());
        return events.get(i);
    }

    /** Waits for the timed work, then its milliseconds by name, the longest first; the events are destroyed. */
    synchronized List<Backend.KernelTime> finish() {
        finished = true;
        try {
            Map<String, double[]> byName = new LinkedHashMap<>();   // name → {calls, ms}
            if (!names.isEmpty()) driver.eventSynchronize(events.get(2 * names.size() - 1));
            for (int i = 0; i < names.size(); i++) {
                double[] t = byName.computeIfAbsent(names.get(i), n -> new double[2]);
                t[0]++;
                t[1] += driver.eventElapsedMs(events.get(2 * i), events.get(2 * i + 1));
            }
            List<Backend.KernelTime> out = new ArrayList<>();
            byName.forEach((n, t) -> out.add(new Backend.KernelTime(n, (int) t[0], t[1])));
            out.sort(Comparator.comparingDouble(Backend.KernelTime::ms).reversed());
            return out;
        } finally {
            RuntimeException first = null;
            for (MemorySegment e : events) {
                try {
                    driver.eventDestroy(e);
                } catch (RuntimeException ex) {
                    if (first == null) first = ex;
                }
            }
            events.clear();
            names.clear();
            if (first != null) throw first;
        }
    }
}
