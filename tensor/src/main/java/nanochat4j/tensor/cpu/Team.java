package nanochat4j.tensor.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * A help-first, spinning split of a loop over chunks, for latency-bound work made of many short parallel phases
 * (a KV-cache decode step is ~30 phases of 10–300 µs each, where {@link Parallel}'s queue hand-off and thread wake-up
 * would cost as much as the phase).
 * <ul>
 *   <li>{@link #run} publishes the phase and the calling thread claims chunks itself until none is left; helpers that
 *       are awake claim chunks too. The caller only ever waits for chunks a running helper already claimed, so a
 *       helper that is asleep, descheduled or busy with another caller's phase never holds anything up, and
 *       concurrent or nested callers are safe (a newer phase simply takes the helpers over).</li>
 *   <li>Helpers ({@link Parallel#threads()} − 1 daemon threads) spin for {@link #SPIN_NANOS} after their last chunk,
 *       so the next phase of a decode step (or the next token) finds them awake, then park until a phase is published.</li>
 * </ul>
 */
public final class Team {
    private Team() {}

    /** How long an idle helper keeps spinning before it parks (covers the gap between two decoded tokens). */
    static final long SPIN_NANOS = 2_000_000;

    /** One published phase: chunks [0, n) claimed through {@code next}; {@code done} counts finished ones. */
    private static final class Phase {
        final long id = IDS.incrementAndGet();
        final int n;
        final Parallel.RangeBody body;
        final AtomicInteger next = new AtomicInteger(), done = new AtomicInteger();
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Phase(int n, Parallel.RangeBody body) {
            this.n = n;
            this.body = body;
        }

        /** Claims and runs chunks until none is left. */
        void work() {
            for (int i = next.getAndIncrement(); i < n; i = next.getAndIncrement()) {
                try {
                    body.run(i, i + 1);
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                } finally {
                    done.incrementAndGet();
                }
            }
        }
    }

    private static final AtomicReference<Phase> CURRENT = new AtomicReference<>();
    private static final AtomicLong IDS = new AtomicLong();
    private static final Helper[] HELPERS = new Helper[Parallel.threads() - 1];

    static {
        for (int i = 0; i < HELPERS.length; i++) {
            HELPERS[i] = new Helper();
            Thread t = new Thread(HELPERS[i], "nanochat4j-team-" + (i + 1));
            t.setDaemon(true);
            HELPERS[i].thread = t;
            t.start();
        }
    }

    private static final class Helper implements Runnable {
        Thread thread;
        volatile boolean parked;

        @Override
        public void run() {
            long seen = 0;                              // id of the last phase worked on (ids, not the phase: nothing kept alive)
            long idleSince = System.nanoTime();
            while (true) {
                Phase p = CURRENT.get();
                if (p != null && p.id != seen) {
                    seen = p.id;
                    p.work();
                    idleSince = System.nanoTime();
                } else if (System.nanoTime() - idleSince < SPIN_NANOS) {
                    Thread.onSpinWait();
                } else {
                    parked = true;                      // publish first, then re-check: run() writes current, then reads parked
                    Phase q = CURRENT.get();
                    if (q == null || q.id == seen) LockSupport.park(this);
                    parked = false;
                    idleSince = System.nanoTime();
                }
            }
        }
    }

    /** Number of threads a phase can use (the caller plus the helpers). */
    public static int threads() {
        return HELPERS.length + 1;
    }

    /**
     * Runs {@code body(i, i + 1)} for every chunk i in [0, n) on the caller and any awake helpers; returns when all
     * are done, rethrowing the first failure. Chunks must be independent.
     */
    public static void run(int n, Parallel.RangeBody body) {
        if (n <= 0) return;
        if (n == 1 || HELPERS.length == 0) {
            for (int i = 0; i < n; i++) body.run(i, i + 1);
            return;
        }
        Phase p = new Phase(n, body);
        CURRENT.set(p);
        for (Helper h : HELPERS) if (h.parked) LockSupport.unpark(h.thread);
        p.work();
        while (p.done.get() < n) Thread.onSpinWait();   // only chunks a running helper claimed are left
        CURRENT.compareAndSet(p, null);                 // drop the body (and what it holds) unless a newer phase came
        Throwable t = p.failure.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error er) throw er;
        if (t != null) throw new IllegalStateException(t);
    }
}
