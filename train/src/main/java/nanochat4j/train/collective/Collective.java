package nanochat4j.train.collective;

import io.aeron.Aeron;
import io.aeron.driver.MediaDriver;
import io.aeron.exceptions.AeronException;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The collective operations of a data-parallel job over flat fp32 buffers ({@code float[]} ranges) as a
 * bandwidth-optimal ring over Aeron (see {@link Schedule} for the algorithms, {@link Ring} for the transport); and over {@link SharedFloats}, which the ranks of one host read from
 * each other directly, without the ring's copies ({@link PeerReduce}; across hosts they go over the ring too), with
 * the same segments and bit-identical results. All operations are in place on {@code buf[off, off+len)}:
 * <ul>
 * <li>{@code allReduce}: every rank ends with the reduction over all ranks (bit-identical on every rank).</li>
 * <li>{@code reduceScatter}: rank r's shard {@code [shardStart(len, r), shardStart(len, r+1))} (relative to off) ends
 *     with the reduction; the rest of the range is scratch afterwards (partial sums).</li>
 * <li>{@code allGather}: every rank contributes its own shard (already in place) and ends with all of them.</li>
 * </ul>
 * Shards are as even as possible and may be empty: shard i = [i·len/N, (i+1)·len/N).
 * Every rank must call the same operations in the same order with the same sizes (checked: a mismatch fails with a
 * message). The first operation performs a handshake comparing world size and the caller's config fingerprint.
 * {@code …Async} variants run on one communication thread, in call order, and return a {@link Pending}; the caller
 * must leave the buffer alone until {@link Pending#await()}. A synchronous call first waits for pending ones. Not
 * thread-safe: one thread per rank drives it. A world of one does no communication (AVG divides by 1).
 */
public final class Collective implements AutoCloseable {
    private final DistEnv env;
    private final String fingerprint;
    private final MediaDriver driver;
    private final Aeron aeron;
    private final Ring ring;
    private final PeerReduce peers;
    private boolean greeted;
    private volatile RuntimeException broken;
    private ExecutorService comm;
    /** Held by the thread running an operation on the ring (the communication thread, or a synchronous caller). */
    private final ReentrantLock onRing = new ReentrantLock();
    private volatile Thread runner;
    private CompletableFuture<Void> last = CompletableFuture.completedFuture(null);

    /** This process's collective, from torchrun-style environment variables (see {@link DistEnv}). */
    public static Collective fromEnvironment(String fingerprint) {
        return create(DistEnv.fromEnvironment(), fingerprint);
    }

    /**
     * Joins the ring described by {@code env}; blocks until both neighbours are connected (at most the env's timeout).
     * {@code fingerprint} is compared across ranks at the first operation: pass e.g. the model config.
     */
    public static Collective create(DistEnv env, String fingerprint) {
        return new Collective(env, fingerprint);
    }

    private Collective(DistEnv env, String fingerprint) {
        this.env = env;
        this.fingerprint = fingerprint;
        if (env.worldSize() == 1) {
            driver = null;
            aeron = null;
            ring = null;
            peers = null;
            return;
        }
        driver = env.ownsDriver() ? LocalDriver.launch(env.aeronDir()) : null;
        Aeron a = null;
        Ring r;
        try {
            a = connect(env);
            r = new Ring(a, env);
        } catch (RuntimeException e) {
            if (a != null) a.close();
            if (driver != null) driver.close();
            throw e;
        }
        aeron = a;
        ring = r;
        peers = new PeerReduce(r, env.rank(), env.worldSize());
    }

    private static Aeron connect(DistEnv env) {
        long deadline = System.nanoTime() + env.timeout().toNanos();
        while (true) {
            try {
                return Aeron.connect(new Aeron.Context().aeronDirectoryName(env.aeronDir().toString())
                        .driverTimeoutMs(10_000).errorHandler(e -> {}));
            } catch (AeronException | IllegalStateException e) {
                if (System.nanoTime() > deadline)
                    throw new CollectiveException("rank " + env.rank() + ": no Aeron media driver at " + env.aeronDir()
                            + " after " + env.timeout().toSeconds() + " s (start the job with ./nanochat4j launch)", e);
                try {
                    Thread.sleep(100);
                } catch (InterruptedException ie) {
                    Thread.currentThread().interrupt();
                    throw new CollectiveException("interrupted while connecting to the media driver", ie);
                }
            }
        }
    }

    public int rank() {
        return env.rank();
    }

    public int worldSize() {
        return env.worldSize();
    }

    /** First element of rank's shard of a range of len elements (shard i = [i·len/N, (i+1)·len/N)). */
    public static int shardStart(int len, int rank, int world) {
        return Schedule.segmentStart(len, rank, world);
    }

    // ---- synchronous operations

    public void allReduce(float[] buf, int off, int len, ReduceOp op) {
        await(allReduceAsync(buf, off, len, op, false));
    }

    public void allGather(float[] buf, int off, int len) {
        await(allGatherAsync(buf, off, len, false));
    }

    public void allReduce(SharedFloats buf, int off, int len, ReduceOp op) {
        await(allReduceAsync(buf, off, len, op, false));
    }

    /**
     * A buffer of {@code length} floats (zeros) for collectives without copies: every rank must call this with the same
     * length, in the same order among its collectives. When all ranks share this host, each rank's buffer is a
     * memory-mapped file that the others map too, and operations on it read the peers' buffers directly
     * ({@link PeerReduce}); on several hosts they run over the ring like those on arrays.
     */
    public SharedFloats sharedFloats(int length) {
        if (length < 0) throw new IllegalArgumentException("negative length " + length);
        if (ring == null || env.localWorldSize() != env.worldSize()) return SharedFloats.local(length);
        long id = java.util.concurrent.ThreadLocalRandom.current().nextLong() >>> 12; // < 2^52: exact as a double
        Path own = sharedFile(rank(), id);
        MemorySegment[] files = new MemorySegment[worldSize()];
        try {
            files[rank()] = SharedFloats.create(own, length);
            double[] ids = allGatherDoubles(id); // also a barrier: every rank's file exists after it
            for (int p = 0; p < worldSize(); p++)
                if (p != rank()) files[p] = SharedFloats.map(sharedFile(p, (long) ids[p]), length);
        } catch (CollectiveException e) {
            throw e;
        } catch (RuntimeException e) {
            String why = "rank " + rank() + ": cannot set up a shared buffer of " + length + " floats: " + e.getMessage();
            abort(why);
            throw new CollectiveException(why, e);
        }
        barrier(); // every rank has mapped every file: the names can go
        try {
            Files.deleteIfExists(own);
        } catch (IOException e) {
            // the media driver deletes its directory on close
        }
        return SharedFloats.of(files, rank(), length);
    }

    private Path sharedFile(int rank, long id) {
        return env.aeronDir().resolve("shared-" + rank + "-" + Long.toHexString(id) + ".f32");
    }

    /**
     * Every rank's values, rank-major ({@code worldSize × values.length}), identical on every rank and exact (each
     * double travels as four 16-bit pieces): for small metadata such as eval sums or data-loader positions.
     * Every rank must pass the same number of values.
     */
    public double[] allGatherDoubles(double... values) {
        int k = values.length, w = worldSize();
        float[] buf = new float[w * k * 4];
        for (int i = 0; i < k; i++) {
            long bits = Double.doubleToRawLongBits(values[i]);
            for (int j = 0; j < 4; j++) buf[(rank() * k + i) * 4 + j] = (float) ((bits >>> (16 * j)) & 0xffff);
        }
        allGather(buf, 0, buf.length);
        double[] out = new double[w * k];
        for (int i = 0; i < w * k; i++) {
            long bits = 0;
            for (int j = 0; j < 4; j++) bits |= ((long) buf[i * 4 + j]) << (16 * j);
            out[i] = Double.longBitsToDouble(bits);
        }
        return out;
    }

    /**
     * This rank gives up (e.g. its training step threw): the other ranks' current or next collective fails with
     * {@code why}, instead of waiting for this rank, and this collective becomes unusable.
     */
    public void abort(String why) {
        ExecutorService comm;
        synchronized (this) {
            if (ring == null || broken != null) return;
            broken = new CollectiveException(why);
            comm = this.comm;
        }
        // stop an operation in flight first, on whichever thread runs it (the communication thread, or the caller of a
        // synchronous one, such as the overlapped gradient reduce's): the ring's links have one writer
        ring.abortRequested(why);
        if (comm != null) comm.shutdownNow();
        Thread r = runner;
        if (r != null && r != Thread.currentThread()) r.interrupt();
        try {
            if (!onRing.tryLock(5, TimeUnit.SECONDS)) return; // still running: it fails on its own and tells the ring
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return;
        }
        try {
            ring.abort(why);
        } finally {
            onRing.unlock();
        }
    }

    /** Returns once every rank has called barrier. */
    public void barrier() {
        allReduce(new float[0], 0, 0, ReduceOp.SUM);
    }

    // ---- asynchronous operations (run in call order on the communication thread)

    public Pending allReduceAsync(float[] buf, int off, int len, ReduceOp op) {
        return allReduceAsync(buf, off, len, op, true);
    }

    public Pending reduceScatterAsync(float[] buf, int off, int len, ReduceOp op) {
        return reduceScatterAsync(buf, off, len, op, true);
    }

    public Pending reduceScatterAsync(SharedFloats buf, int off, int len, ReduceOp op) {
        return reduceScatterAsync(buf, off, len, op, true);
    }

    public Pending allGatherAsync(SharedFloats buf, int off, int len) {
        return allGatherAsync(buf, off, len, true);
    }

    public Pending allGatherAsync(float[] buf, int off, int len) {
        return allGatherAsync(buf, off, len, true);
    }

    private Pending allReduceAsync(Object buf, int off, int len, ReduceOp op, boolean async) {
        checkRange(length(buf), off, len);
        if (buf instanceof SharedFloats b && b.peersMapped())
            return submit(() -> peers.run(PeerReduce.ALL_REDUCE, b, off, len, op), async);
        return submitRing(() -> Schedule.allReduce(off, len, rank(), worldSize(), op),
                payload(buf), worldSize(), async);
    }

    private Pending reduceScatterAsync(Object buf, int off, int len, ReduceOp op, boolean async) {
        checkRange(length(buf), off, len);
        if (buf instanceof SharedFloats b && b.peersMapped())
            return submit(() -> peers.run(PeerReduce.REDUCE_SCATTER, b, off, len, op), async);
        return submitRing(() -> Schedule.reduceScatter(off, len, rank(), worldSize(), op),
                payload(buf), worldSize(), async);
    }

    private Pending allGatherAsync(Object buf, int off, int len, boolean async) {
        checkRange(length(buf), off, len);
        if (buf instanceof SharedFloats b && b.peersMapped())
            return submit(() -> peers.run(PeerReduce.ALL_GATHER, b, off, len, null), async);
        return submitRing(() -> Schedule.allGather(off, len, rank(), worldSize()),
                payload(buf), 1, async);
    }

    /** An operation started with an {@code …Async} call. */
    public static final class Pending {
        private final CompletableFuture<Void> done;

        private Pending(CompletableFuture<Void> done) {
            this.done = done;
        }

        /** Waits until the operation is complete on this rank; rethrows its failure. */
        public void await() {
            try {
                done.get();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CollectiveException("interrupted while waiting for a collective", e);
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException re) throw re;
                throw new CollectiveException(String.valueOf(e.getCause()), e.getCause());
            }
        }

        public boolean isDone() {
            return done.isDone();
        }
    }

    private interface ScheduleMaker {
        Schedule make();
    }

    private Pending submitRing(ScheduleMaker schedule, Payload payload, int divisor, boolean async) {
        if (ring == null) return submit(() -> {}, async);
        Schedule s = schedule.make();
        return submit(() -> ring.run(s, payload, divisor), async);
    }

    private Pending submit(Runnable collective, boolean async) {
        Runnable op = () -> execute(collective);
        Pending before;
        synchronized (this) {
            if (broken != null) throw new CollectiveException("collective unusable after an earlier failure: "
                    + broken.getMessage(), broken);
            if (ring == null) return new Pending(CompletableFuture.completedFuture(null)); // a world of one: nothing to do
            if (async) {
                if (comm == null) comm = Executors.newSingleThreadExecutor(r -> {
                    Thread t = new Thread(r, "nanochat4j-collective-rank" + rank());
                    t.setDaemon(true);
                    return t;
                });
                last = CompletableFuture.runAsync(op, comm);
                return new Pending(last);
            }
            before = new Pending(last);
        }
        await(before); // everything submitted before runs first
        op.run();      // on the calling thread: no hand-over to the communication thread (an 8-byte all-reduce in µs)
        return new Pending(CompletableFuture.completedFuture(null));
    }

    private void execute(Runnable collective) {
        onRing.lock();
        try {
            runner = Thread.currentThread();
            if (broken != null) throw new CollectiveException("collective unusable after an earlier failure: "
                    + broken.getMessage(), broken);
            if (!greeted) {
                ring.hello(fingerprint);
                greeted = true;
            }
            collective.run();
        } catch (RuntimeException e) {
            if (broken == null) broken = e;
            throw e;
        } finally {
            runner = null;
            onRing.unlock();
        }
    }

    private static void await(Pending p) {
        p.await();
    }

    private static Payload payload(Object buf) {
        return switch (buf) {
            case float[] f -> new Payload.F32(f);
            case SharedFloats b -> new Payload.F32Segment(b.segment());
            default -> throw new IllegalArgumentException("not a collective buffer: " + buf);
        };
    }

    private static int length(Object buf) {
        return switch (buf) {
            case float[] f -> f.length;
            case SharedFloats b -> b.length();
            default -> throw new IllegalArgumentException("not a collective buffer: " + buf);
        };
    }

    private static void checkRange(int arrayLength, int off, int len) {
        if (off < 0 || len < 0 || off > arrayLength - len)
            throw new IndexOutOfBoundsException("range [" + off + ", " + off + "+" + len + ") of a buffer of " + arrayLength);
    }

    /** Frames the last operation forwarded straight from a received frame (fused combine-and-forward); for tests. */
    int fusedFrames() {
        return ring == null ? 0 : ring.fusedFrames();
    }

    /**
     * After a failure this rank has sent an ABORT; its links stay up a while so the next rank can read it, and so
     * that when this rank's successor died, the ABORT naming it (sent by the successor's successor, whose link from
     * the dead rank closes a little later) reaches the ranks after it before they see this rank leave.
     */
    private static void lingerForAbortToArrive() {
        try {
            Thread.sleep(3000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /**
     * Leaves the job: when healthy, a barrier first (no rank tears down links another still reads), then closes
     * the links, the Aeron client and the driver this rank started (deleting its directory).
     */
    @Override
    public void close() {
        if (ring == null) return;
        try {
            if (broken == null) barrier();
            else lingerForAbortToArrive();
        } finally {
            if (comm != null) comm.shutdownNow();
            ring.close();
            aeron.close();
            if (driver != null) driver.close();
        }
    }
}
