package nanochat4j.serve.web;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import nanochat4j.model.engine.Engine;

/**
 * nanochat's worker pool: one model + {@link Engine} per worker, each serving one request at a time. A request takes
 * a free worker or waits for one, first come first served; at most {@code queueLimit} may wait, the next is refused
 * at once (429) rather than piling up. A worker goes back to the pool as soon as its request ends for any reason —
 * finished, timed out, or its client gone.
 */
final class WorkerPool {
    /** One model replica; {@code busy} and the counters feed {@code /health}. */
    static final class Worker {
        final int id;
        final Engine engine;
        volatile boolean busy;
        final AtomicLong served = new AtomicLong();
        /** Tokens generated, cancelled replies included. */
        final AtomicLong tokens = new AtomicLong();

        Worker(int id, Engine engine) {
            this.id = id;
            this.engine = engine;
        }
    }

    private final List<Worker> all = new ArrayList<>();
    private final ArrayBlockingQueue<Worker> free;
    private final AtomicInteger waiting = new AtomicInteger();
    private final int queueLimit;

    WorkerPool(List<Engine> engines, int queueLimit) {
        if (engines.isEmpty()) throw new IllegalArgumentException("a worker pool needs at least one engine");
        free = new ArrayBlockingQueue<>(engines.size(), true);   // fair: waiting requests are served in arrival order
        for (int i = 0; i < engines.size(); i++) {
            Worker w = new Worker(i, engines.get(i));
            all.add(w);
            free.add(w);
        }
        this.queueLimit = queueLimit;
    }

    /**
     * A free worker, waiting at most {@code timeoutNanos}; refuses with 429 when {@code queueLimit} requests already
     * wait, and with 503 when the wait runs out.
     */
    Worker acquire(long timeoutNanos) throws ApiError, InterruptedException {
        Worker w = free.poll();
        if (w == null) {
            if (waiting.incrementAndGet() > queueLimit) {
                waiting.decrementAndGet();
                throw new ApiError(429, "rate_limit_exceeded", "queue_full", null, "all " + all.size() + " workers are busy and "
                        + queueLimit + " requests are already queued; retry later", retryAfterSeconds());
            }
            try {
                w = free.poll(Math.max(0, timeoutNanos), TimeUnit.NANOSECONDS);
            } finally {
                waiting.decrementAndGet();
            }
            if (w == null) {
                throw new ApiError(503, "server_error", "timeout_waiting_for_worker", null,
                        "no worker became free within the request timeout; retry later", retryAfterSeconds());
            }
        }
        w.busy = true;
        return w;
    }

    void release(Worker w) {
        w.busy = false;
        w.served.incrementAndGet();
        free.add(w);
    }

    /** A hint for Retry-After: one second per queued request per worker, at least one. */
    private int retryAfterSeconds() {
        return Math.max(1, (waiting.get() + all.size()) / all.size());
    }

    List<Worker> workers() {
        return all;
    }

    int available() {
        return free.size();
    }

    int waiting() {
        return waiting.get();
    }

    int queueLimit() {
        return queueLimit;
    }
}
