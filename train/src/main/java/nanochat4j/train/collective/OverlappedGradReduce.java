package nanochat4j.train.collective;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Parameter;
import nanochat4j.tensor.Tensor;

/**
 * The data-parallel gradient all-reduce (average) overlapped with the backward pass. The parameters are cut into
 * buckets of about {@code bucketFloats} gradient values, in the order the backward pass finishes them (the reverse
 * of the model's order: lm_head and the last blocks first). While the last micro-step's backward runs
 * ({@link #duringBackward}), autograd reports each parameter whose gradient is final; when a bucket is complete, a
 * reducer thread copies its gradients down (device → host buffer; on the CPU, the heap arrays), all-reduces them
 * over the ring and copies the average back into the gradients — while the main thread goes on with the backward.
 * {@link #await} (before the optimizer step) starts what the pass did not report, waits for the rest and records
 * the wait: the share of the step spent on the reduce that the backward could not hide.
 *
 * <p>The buckets are reduced in the order they complete, which is the tape's order and so the same on every rank;
 * one reducer thread keeps the ring's operations in that order. The averages are those of one all-reduce after the
 * backward pass, bit for bit (every element is reduced by the same operation either way). After {@link #await}
 * every rank holds the same averaged gradients, so the optimizer runs unsharded on each rank (as a world of one).
 */
public final class OverlappedGradReduce implements AutoCloseable {
    /** About 25 MB of fp32 gradients a bucket, as PyTorch DDP's default bucket. */
    public static final int DEFAULT_BUCKET_FLOATS = 25 << 18;

    private static final class Bucket {
        final List<Parameter> params = new ArrayList<>();
        final SharedFloats buf;
        final int length;
        int remaining;
        Future<?> inFlight;

        Bucket(List<Parameter> ps, Collective comm) {
            params.addAll(ps);
            int n = 0;
            for (Parameter p : ps) n = Math.addExact(n, p.numel());
            length = n;
            buf = comm.sharedFloats(n);
        }
    }

    private final Collective comm;
    private final List<Bucket> buckets = new ArrayList<>();
    private final Map<Parameter, Bucket> bucketOf = new IdentityHashMap<>();
    private final ExecutorService reducer;
    private long waitNanos, reduces, startedDuringBackward;

    /**
     * Buckets over {@code params} (every rank passes the same list, in the model's order) for the ranks of
     * {@code comm}. Allocates the buckets' shared buffers: a collective call, made by every rank together.
     */
    public OverlappedGradReduce(List<Parameter> params, Collective comm, int bucketFloats) {
        if (bucketFloats < 1) throw new IllegalArgumentException("bucket size " + bucketFloats + " must be positive");
        this.comm = comm;
        List<Parameter> current = new ArrayList<>();
        long size = 0;
        for (int i = params.size() - 1; i >= 0; i--) { // the backward pass finishes the last parameters first
            Parameter p = params.get(i);
            if (bucketOf.containsKey(p)) throw new IllegalArgumentException("parameter " + p.name() + " is listed twice");
            bucketOf.put(p, null);
            current.add(p);
            size += p.numel();
            if (size >= bucketFloats || i == 0) {
                buckets.add(new Bucket(current, comm));
                current = new ArrayList<>();
                size = 0;
            }
        }
        for (Bucket b : buckets) for (Parameter p : b.params) bucketOf.put(p, b);
        reducer = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "grad-reduce-rank" + comm.rank());
            t.setDaemon(true);
            return t;
        });
    }

    /** Number of buckets (the tests and the log). */
    public int bucketCount() {
        return buckets.size();
    }

    /**
     * Listens to this thread's backward passes until closed: wrap the last micro-step's {@code loss.backward(…)}
     * in it (earlier micro-steps only accumulate). Buckets start reducing as soon as the pass completes them.
     */
    public Autograd.GradReadyScope duringBackward() {
        for (Bucket b : buckets) {
            if (b.inFlight != null) throw new IllegalStateException("a reduction is still in flight: call await() after each step's backward");
            b.remaining = b.params.size();
        }
        return Autograd.onGradReady(this::ready);
    }

    private void ready(Parameter p) {
        Bucket b = bucketOf.get(p);
        if (b != null && b.inFlight == null && --b.remaining == 0) {
            start(b);
            startedDuringBackward++;
        }
    }

    private void start(Bucket b) {
        b.inFlight = reducer.submit(() -> reduce(b));
    }

    /** On the reducer thread: gradients down into the bucket's buffer, the ring average, and back up. */
    private void reduce(Bucket b) {
        int at = 0;
        for (Parameter p : b.params) {
            Tensor g = p.grad();
            int n = g.numel();
            if (g.isOnDevice()) g.deviceStorage().copyToHost((long) g.offset() * Float.BYTES, slice(b.buf, at, n), (long) n * Float.BYTES);
            else b.buf.copyFrom(g.floats(), g.offset(), at, n);
            at += n;
        }
        comm.allReduce(b.buf, 0, b.length, ReduceOp.AVG);
        at = 0;
        for (Parameter p : b.params) {
            Tensor g = p.grad();
            int n = g.numel();
            if (g.isOnDevice()) g.deviceStorage().copyFromHost(slice(b.buf, at, n), (long) g.offset() * Float.BYTES, (long) n * Float.BYTES);
            else b.buf.copyTo(at, g.floats(), g.offset(), n);
            at += n;
        }
    }

    private static MemorySegment slice(SharedFloats buf, int at, int n) {
        return buf.segment().asSlice((long) at * Float.BYTES, (long) n * Float.BYTES);
    }

    /**
     * Starts the buckets the backward pass did not complete (parameters it never reached), in bucket order, and
     * waits for every reduction: afterwards each gradient holds the average over the ranks. Returns the seconds
     * this call waited (the reduce time the backward pass did not hide).
     */
    public double await() {
        long t0 = System.nanoTime();
        for (Bucket b : buckets) if (b.inFlight == null) start(b);
        RuntimeException failure = null;
        for (Bucket b : buckets) {
            try {
                b.inFlight.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                failure = new CollectiveException("interrupted while waiting for the gradient all-reduce", e);
            } catch (ExecutionException e) {
                if (failure == null) {
                    failure = e.getCause() instanceof RuntimeException re ? re
                            : new CollectiveException("gradient all-reduce failed on rank " + comm.rank() + ": " + e.getCause(), e.getCause());
                }
            } finally {
                b.inFlight = null;
            }
        }
        if (failure != null) throw failure;
        long waited = System.nanoTime() - t0;
        waitNanos += waited;
        reduces++;
        return waited / 1e9;
    }

    /** Total seconds {@link #await} has waited, and how many steps; buckets started while the backward ran. */
    public double totalWaitSeconds() {
        return waitNanos / 1e9;
    }

    public long steps() {
        return reduces;
    }

    public long bucketsStartedDuringBackward() {
        return startedDuringBackward;
    }

    @Override
    public void close() {
        reducer.shutdownNow();
    }
}
