package nanochat4j.tensor.cuda;

import java.lang.foreign.MemorySegment;

/**
 * Device time of work queued on a stream, between two CUDA events. Closing destroys both events; in a
 * try-with-resources a failure of that (after a kernel fault every driver call fails) is added to the fault as
 * suppressed instead of replacing it, so the error still names the call that faulted.
 */
public final class StreamTimer implements AutoCloseable {
    private final Driver drv;
    private final MemorySegment stream, start, end;

    public StreamTimer(Driver drv, MemorySegment stream) {
        this.drv = drv;
        this.stream = stream;
        this.start = drv.eventCreate();
        MemorySegment e;
        try {
            e = drv.eventCreate();
        } catch (RuntimeException failed) {
            destroy(start, failed);
            throw failed;
        }
        this.end = e;
    }

    /** Marks the start of the timed work. */
    public void start() {
        drv.eventRecord(start, stream);
    }

    /** Marks its end, waits for it, and returns the milliseconds since {@link #start()}. */
    public float stopMs() {
        drv.eventRecord(end, stream);
        drv.eventSynchronize(end);
        return drv.eventElapsedMs(start, end);
    }

    /** Milliseconds of the work {@code body} queues. */
    public float ms(Runnable body) {
        start();
        body.run();
        return stopMs();
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (MemorySegment ev : new MemorySegment[] {start, end}) {
            try {
                drv.eventDestroy(ev);
            } catch (RuntimeException e) {
                if (first == null) first = e;
                else first.addSuppressed(e);
            }
        }
        if (first != null) throw first;
    }

    private void destroy(MemorySegment ev, RuntimeException cause) {
        try {
            drv.eventDestroy(ev);
        } catch (RuntimeException e) {
            cause.addSuppressed(e);
        }
    }
}
