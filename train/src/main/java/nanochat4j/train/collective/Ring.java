package nanochat4j.train.collective;

import io.aeron.Aeron;
import io.aeron.ExclusivePublication;
import io.aeron.Image;
import io.aeron.Publication;
import io.aeron.Subscription;
import io.aeron.logbuffer.BufferClaim;
import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.ControlledFragmentHandler.Action;
import io.aeron.logbuffer.Header;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.agrona.DirectBuffer;
import org.agrona.MutableDirectBuffer;
import org.agrona.concurrent.BackoffIdleStrategy;
import org.agrona.concurrent.IdleStrategy;

/**
 * One rank's two links of the ring over Aeron — a publication to rank r+1, a subscription from rank r−1 — and the
 * engine that runs a {@link Schedule} over them. Notable:
 * <ul>
 * <li>A link that crosses hosts is UDP to the receiver's host, port MASTER_PORT + 1 + receiver rank, and carries
 *     everything. A link between ranks of one host is {@code aeron:ipc} (the host's one driver) for control
 *     messages and liveness, and its data goes through a {@link ShmLink} (a frame queue in shared memory that needs
 *     no driver thread); the producer announces the queue's file on the Aeron link when the ring is set up.</li>
 * <li>Every message is one frame (claimed in place: the data is copied straight into the log buffer or queue, and
 *     reduced straight out of it on the other side — no reassembly, no staging copies). A 32-byte header names the sender,
 *     the operation's sequence number, the step and the element offset, so ranks that disagree about which collective
 *     they are in fail with a message instead of mixing data.</li>
 * <li>Fused combine-and-forward: a received chunk whose result the next send step forwards (the reduce-scatter
 *     partial sums, the reduced segment that starts the all-gather, all-gather copies for N &gt; 2) is combined from
 *     the received frame straight into the caller's buffer <em>and</em> the next hop's claimed frame, in one pass
 *     (when that frame is next in its step and the link has room; otherwise it is sent from the buffer later).</li>
 * <li>Steps interleave on a link: frames of one step go in order, but a forward may go out before this rank's own
 *     data (send step 0) is all sent; the own data leads the forwarding by at most {@link #LEAD_CHUNKS} frames,
 *     which keeps room in the window for fused forwards. Interleaving is safe because a value is only ever
 *     overwritten after this rank's contribution from it has been sent (the overwrite depends on it).</li>
 * <li>Receiving never blocks on sending (arriving data is combined into the caller's buffer), and sends go out in
 *     order as soon as their input has arrived, so a ring of back-pressured links cannot deadlock.</li>
 * <li>Back-pressure and waiting go through a backoff idle strategy (spin, yield, then park ≤ 100 µs).</li>
 * <li>Failures: a neighbour that dies is noticed through the driver (its link closes, within a few seconds) and the
 *     detecting rank sends an ABORT naming it around the ring, so every rank throws a {@link CollectiveException}
 *     naming the dead rank; a live but silent peer is given up on after the job's timeout.</li>
 * </ul>
 */
final class Ring implements AutoCloseable {
    static final int HEADER = 32;
    private static final int DATA = 1, HELLO = 2, ABORT = 3, LINK = 4;
    // header layout (native order): type, sender, sequence (long), step, offset, count, element bytes
    private static final int T_TYPE = 0, T_SENDER = 4, T_SEQ = 8, T_STEP = 16, T_OFFSET = 20, T_COUNT = 24, T_ELEM = 28;
    private static final int STREAM_BASE = 1000;
    // IPC links carry control messages only (the data has its ShmLink); the terms are sparse files
    private static final int IPC_TERM = 2 << 20;
    private static final int IPC_MTU = 65504; // the largest frame Aeron allows (multiple of 32)
    private static final int UDP_TERM = 16 << 20;
    private static final int UDP_MTU = 8192;
    // shared-memory links (ranks of one host): 16 frames of 64 KB in flight, the ring within one core's L2. Larger
    // rings or frames gain nothing, smaller frames lose (docs/BENCHMARKS.md)
    private static final int SHM_RING = 1 << 20;
    private static final int SHM_FRAME = 64 << 10;
    private static final int DONE = -1;
    /** Frames of its own data a rank may send ahead of what it forwards (leaves window for fused forwards). */
    private static final int LEAD_CHUNKS = 4;
    private static final long CHECK_EVERY_NS = TimeUnit.MILLISECONDS.toNanos(20);

    final int rank, world, prev, next;
    private final Aeron aeron;
    private final ExclusivePublication out;
    private final Subscription in;
    private final long timeoutNs;
    private final BufferClaim claim = new BufferClaim();
    /** Data paths of the links within this host (null for a link to or from another host: its data goes over Aeron). */
    private final ShmLink shmOut, shmIn;
    /** Where {@link #claimData} put the frame to write. */
    private MutableDirectBuffer frame;
    private int frameAt;
    private final IdleStrategy idle = new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
            TimeUnit.MICROSECONDS.toNanos(100));
    private Image upstream;
    private long sequence;

    // state of the running schedule, read by the fragment handler
    private Schedule schedule;
    private Payload payload;
    private float divisor;
    private int maxElements, throttled, sendsLeft, recvsLeft, sendFirst, recvFirst, fused;
    /** Per step: elements sent / received so far, or {@link #DONE}; per receive step, the send step forwarding it. */
    private int[] sendPos = new int[0], recvPos = new int[0], forward = new int[0];
    private String failure;
    private final ControlledFragmentHandler onData = this::onData;
    private final io.aeron.logbuffer.FragmentHandler onControl = this::onControl;
    private final io.aeron.logbuffer.FragmentHandler onRunControl = this::onRunControl;

    Ring(Aeron aeron, DistEnv env) {
        this.aeron = aeron;
        this.rank = env.rank();
        this.world = env.worldSize();
        this.prev = Math.floorMod(rank - 1, world);
        this.next = (rank + 1) % world;
        this.timeoutNs = env.timeout().toNanos();
        this.in = aeron.addSubscription(subscribeChannel(env), STREAM_BASE + rank);
        this.out = aeron.addExclusivePublication(publishChannel(env), STREAM_BASE + next);
        connect(env);
        shmOut = env.nodeOf(next) == env.nodeOf(rank) ? announceShmLink(env) : null;
        shmIn = env.nodeOf(prev) == env.nodeOf(rank) ? ShmLink.open(Path.of(receiveControl(LINK, "the link setup").text)) : null;
    }

    /** Creates the shared-memory data path to the next rank (same host) and tells it where the file is. */
    private ShmLink announceShmLink(DistEnv env) {
        Path file = env.aeronDir().resolve("ring-" + rank + "-to-" + next + "-" + Long.toHexString(System.nanoTime()) + ".shm");
        ShmLink link = ShmLink.create(file, SHM_RING);
        sendControl(LINK, rank, file.toAbsolutePath().toString().getBytes(StandardCharsets.UTF_8));
        return link;
    }

    private String subscribeChannel(DistEnv env) {
        return env.nodeOf(prev) == env.nodeOf(rank) ? "aeron:ipc"
                : "aeron:udp?endpoint=0.0.0.0:" + (env.masterPort() + 1 + rank);
    }

    private String publishChannel(DistEnv env) {
        if (env.nodeOf(next) == env.nodeOf(rank)) return "aeron:ipc?term-length=" + IPC_TERM + "|mtu=" + IPC_MTU;
        return "aeron:udp?endpoint=" + env.nodes().get(env.nodeOf(next)) + ":" + (env.masterPort() + 1 + next)
                + "|term-length=" + UDP_TERM + "|mtu=" + UDP_MTU + "|so-sndbuf=2m|so-rcvbuf=2m|rcv-wnd=2m";
    }

    private void connect(DistEnv env) {
        long deadline = System.nanoTime() + timeoutNs;
        while (!out.isConnected() || in.imageCount() == 0) {
            if (System.nanoTime() > deadline) {
                String who = !out.isConnected() ? "rank " + next + " (next in the ring) has no subscription on our link"
                        : "rank " + prev + " (previous in the ring) has not connected to us";
                throw new CollectiveException("rank " + rank + ": " + who + " after " + env.timeout().toSeconds()
                        + " s — is it running, with WORLD_SIZE=" + world + " and MASTER_PORT=" + env.masterPort()
                        + ", on the same media driver (" + env.aeronDir() + ")?");
            }
            sleepMillis(1);
        }
        upstream = in.imageAtIndex(0);
    }

    /** Largest number of elements of the given size that fit in one frame, a multiple of 16 (whole vectors). */
    int chunkElements(int elementBytes) {
        int frameBytes = shmOut != null ? Math.min(SHM_FRAME, shmOut.maxFrameLength()) : out.maxPayloadLength();
        return (frameBytes - HEADER) / elementBytes / 16 * 16;
    }

    /**
     * Handshake at the first collective: every rank's "world size + byte order + config fingerprint" goes around the
     * ring; any difference from ours aborts the job on every rank with a message naming both sides.
     */
    void hello(String fingerprint) {
        String mine = "WORLD_SIZE=" + world + ", " + java.nio.ByteOrder.nativeOrder() + ", config=" + fingerprint;
        byte[] bytes = mine.getBytes(StandardCharsets.UTF_8);
        if (bytes.length > out.maxPayloadLength() - HEADER - 4)
            throw new IllegalArgumentException("config fingerprint of " + bytes.length + " bytes is too long for the handshake");
        sendControl(HELLO, rank, bytes);
        for (int i = 1; i < world; i++) {
            ControlMessage m = receiveControl(HELLO, "the handshake");
            if (!m.text.equals(mine)) {
                String why = "ranks " + m.origin + " and " + rank + " disagree on " + differences(m.text, mine) + ": rank " + m.origin
                        + " runs with [" + m.text + "] but rank " + rank + " with [" + mine
                        + "]: every rank must use the same world size and model config (and device)";
                abort(why);
                throw new CollectiveException(why);
            }
            if (i < world - 1) sendControl(HELLO, m.origin, m.text.getBytes(StandardCharsets.UTF_8));
        }
    }

    /**
     * The fields of two handshakes that differ, "theirs vs mine" ("device=CPU vs device=CUDA"): handshakes and
     * fingerprints are lists of fields separated by ", " or "; ".
     */
    static String differences(String theirs, String mine) {
        String[] a = theirs.split("[,;] "), b = mine.split("[,;] ");
        List<String> diff = new ArrayList<>();
        for (int i = 0; i < Math.max(a.length, b.length); i++) {
            String x = i < a.length ? a[i] : "(nothing)", y = i < b.length ? b[i] : "(nothing)";
            if (!x.equals(y)) diff.add(x + " vs " + y);
        }
        return String.join(", ", diff);
    }

    private record ControlMessage(int type, int origin, String text) {}

    private ControlMessage received;

    /** Waits for the next control message from the previous rank, which must be of the given type. */
    private ControlMessage receiveControl(int type, String during) {
        received = null;
        long lastProgress = System.nanoTime(), lastCheck = lastProgress;
        while (received == null) {
            int work = in.poll(onControl, 1);
            if (failure != null) throw fail(failure);
            if (work > 0) continue;
            idle.idle();
            long now = System.nanoTime();
            if (now - lastCheck > CHECK_EVERY_NS) {
                lastCheck = now;
                checkLinks(now, lastProgress, during, true, true);
            }
        }
        idle.reset();
        if (received.type != type)
            throw fail("rank " + rank + ": rank " + prev + " sent " + (received.type == LINK ? "a link setup" : "a handshake")
                    + " during " + during + ": ranks run different versions or called different collectives");
        return received;
    }

    private void onControl(DirectBuffer buf, int offset, int length, Header header) {
        if (failure != null) return;
        int type = buf.getInt(offset + T_TYPE);
        if (!checkSender(buf, offset)) return;
        if (type == ABORT) {
            onAbort(buf, offset, length);
            return;
        }
        if (type != HELLO && type != LINK) {
            failure = "rank " + rank + ": rank " + prev + " sent data (operation #" + buf.getLong(offset + T_SEQ)
                    + ") before finishing the handshake: ranks called different collectives";
            return;
        }
        int origin = buf.getInt(offset + HEADER);
        received = new ControlMessage(type, origin, buf.getStringWithoutLengthUtf8(offset + HEADER + 4, length - HEADER - 4));
    }

    /** Runs one collective. On return this rank's part of the schedule is complete. */
    void run(Schedule s, Payload p, float divisor) {
        long seq = ++sequence;
        int nSend = s.sends(), nRecv = s.receives();
        this.schedule = s;
        this.payload = p;
        this.divisor = divisor;
        this.maxElements = chunkElements(p.elementBytes());
        this.fused = 0;
        sendPos = reuse(sendPos, nSend);
        recvPos = reuse(recvPos, nRecv);
        forward = reuse(forward, nRecv);
        Arrays.fill(sendPos, 0, nSend, 0);
        Arrays.fill(recvPos, 0, nRecv, 0);
        Arrays.fill(forward, 0, nRecv, -1);
        for (int k = 0; k < nSend; k++) if (s.sendDep()[k] >= 0) forward[s.sendDep()[k]] = k;
        // the own data (send step 0, when it depends on nothing) may lead step 1's forwarding by LEAD_CHUNKS frames
        throttled = nSend > 1 && s.sendDep()[0] < 0 && s.sendDep()[1] >= 0 ? 1 : -1;
        sendsLeft = nSend;
        recvsLeft = nRecv;
        sendFirst = 0;
        recvFirst = 0;
        long lastProgress = System.nanoTime(), lastCheck = lastProgress;
        try {
            while (sendsLeft > 0 || recvsLeft > 0) {
                int work = sendReady(seq);
                if (recvsLeft > 0) {
                    work += pollData();
                    if (failure != null) throw fail(failure);
                }
                long now = 0;
                if (work > 0) {
                    idle.reset();
                    lastProgress = now = System.nanoTime();
                } else {
                    idle.idle();
                    now = System.nanoTime();
                }
                if (now - lastCheck > CHECK_EVERY_NS) {
                    lastCheck = now;
                    checkLinks(now, lastProgress, "operation #" + seq, recvsLeft > 0, sendsLeft > 0);
                }
            }
        } finally {
            this.schedule = null;
            this.payload = null;
        }
    }

    /** Frames sent by the last {@link #run} straight from a received frame (fused combine-and-forward). */
    int fusedFrames() {
        return fused;
    }

    private static int[] reuse(int[] a, int n) {
        return a.length >= n ? a : new int[Math.max(n, 2 * a.length)];
    }

    /** Sends whatever is ready and fits, every unfinished step in order; returns the number of frames sent. */
    private int sendReady(long seq) {
        Schedule s = schedule;
        int work = 0;
        for (int k = sendFirst; k < s.sends(); k++) {
            while (sendPos[k] != DONE) {
                int len = s.sendLen()[k], dep = s.sendDep()[k], pos = sendPos[k];
                int ready = dep < 0 || recvPos[dep] == DONE ? len : recvPos[dep];
                if (k == 0 && throttled > 0 && sendPos[throttled] != DONE)
                    ready = (int) Math.min(ready, sendPos[throttled] + (long) LEAD_CHUNKS * maxElements);
                int n = Math.min(maxElements, ready - pos);
                boolean depDone = dep < 0 || recvPos[dep] == DONE;
                if (len == 0 ? !depDone : n <= 0) break;
                if (!claimData(HEADER + n * payload.elementBytes())) return work; // back-pressured: no step can go
                writeDataHeader(frame, frameAt, seq, k, pos, n);
                if (n > 0) payload.store(s.sendOff()[k] + pos, n, wire(frame, frameAt + HEADER, n * payload.elementBytes()));
                commitData();
                work++;
                sent(k, pos + n);
            }
        }
        return work;
    }

    private void writeDataHeader(MutableDirectBuffer b, int o, long seq, int step, int at, int n) {
        b.putInt(o + T_TYPE, DATA);
        b.putInt(o + T_SENDER, rank);
        b.putLong(o + T_SEQ, seq);
        b.putInt(o + T_STEP, step);
        b.putInt(o + T_OFFSET, at);
        b.putInt(o + T_COUNT, n);
        b.putInt(o + T_ELEM, payload.elementBytes());
    }

    private void sent(int k, int pos) {
        if (pos < schedule.sendLen()[k]) {
            sendPos[k] = pos;
            return;
        }
        sendPos[k] = DONE;
        sendsLeft--;
        while (sendFirst < schedule.sends() && sendPos[sendFirst] == DONE) sendFirst++;
    }

    private void received(int j, int pos) {
        if (pos < schedule.recvLen()[j]) {
            recvPos[j] = pos;
            return;
        }
        recvPos[j] = DONE;
        recvsLeft--;
        while (recvFirst < schedule.receives() && recvPos[recvFirst] == DONE) recvFirst++;
    }

    private Action onData(DirectBuffer buf, int offset, int length, Header header) {
        // a fast neighbour may already be sending the next operation: leave its messages in the log for that one
        if (failure != null || recvsLeft == 0) return Action.ABORT;
        if (!checkSender(buf, offset)) return Action.ABORT;
        int type = buf.getInt(offset + T_TYPE);
        if (type == ABORT) {
            onAbort(buf, offset, length);
            return Action.CONTINUE;
        }
        Schedule s = schedule;
        int eb = payload.elementBytes();
        long seq = buf.getLong(offset + T_SEQ);
        int step = buf.getInt(offset + T_STEP), at = buf.getInt(offset + T_OFFSET), n = buf.getInt(offset + T_COUNT);
        int frameEb = buf.getInt(offset + T_ELEM);
        int len = step >= 0 && step < s.receives() ? s.recvLen()[step] : -1;
        if (type != DATA || seq != sequence || len < 0 || recvPos[step] == DONE || at != recvPos[step] || frameEb != eb
                || n < 0 || at + n > len || length != HEADER + n * eb) {
            int first = recvFirst;
            failure = "rank " + rank + ": out of step with rank " + prev + ": expected operation #" + sequence + " step "
                    + first + " at element " + recvPos[first] + " of " + s.recvLen()[first] + " (" + eb
                    + "-byte elements), got " + (type == HELLO ? "a handshake" : "operation #" + seq + " step " + step
                    + " at element " + at + " (" + n + " of " + frameEb + "-byte elements)")
                    + ": ranks called different collectives or sizes";
            return Action.ABORT;
        }
        if (n > 0) {
            MemorySegment data = wire(buf, offset + HEADER, n * eb);
            int action = s.recvAction()[step], to = s.recvOff()[step] + at;
            int k = forward[step];
            // fused: when this chunk is the next thing its forwarding step sends, combine straight into that frame
            if (k >= 0 && sendPos[k] == at && n <= maxElements && tryClaimData(HEADER + n * eb)) {
                writeDataHeader(frame, frameAt, sequence, k, at, n);
                payload.loadForward(action, to, n, data, wire(frame, frameAt + HEADER, n * eb), divisor);
                commitData();
                fused++;
                received(step, at + n);
                sent(k, at + n);
                return Action.CONTINUE;
            }
            payload.load(action, to, n, data, divisor);
        }
        received(step, at + n);
        return Action.CONTINUE;
    }

    private boolean checkSender(DirectBuffer buf, int offset) {
        int sender = buf.getInt(offset + T_SENDER);
        if (sender == prev) return true;
        failure = "rank " + rank + ": received a message from rank " + sender + " on the link from rank " + prev
                + ": ranks disagree about the world size (this rank has WORLD_SIZE=" + world + ")";
        return false;
    }

    private void onAbort(DirectBuffer buf, int offset, int length) {
        onAbort(buf.getInt(offset + HEADER), buf.getStringWithoutLengthUtf8(offset + HEADER + 4, length - HEADER - 4));
    }

    private void onAbort(int origin, String why) {
        if (origin != rank) trySendControl(ABORT, origin, why.getBytes(StandardCharsets.UTF_8));
        failure = why;
        aborted = true;
    }

    private boolean aborted;

    /** Fails the collective: tells the rest of the ring (unless this failure came from it) and makes the exception. */
    private CollectiveException fail(String why) {
        if (!aborted) abort(why);
        return new CollectiveException(why);
    }

    /**
     * A neighbour's link closed. A rank that gives up sends its reason (ABORT) before leaving, so look for one among
     * the messages still unread: "rank 1: config mismatch …" explains more than "rank 1 left".
     */
    private CollectiveException linkFailure(String why) {
        if (failure == null) {
            for (int i = 0; i < 1000 && failure == null && in.poll(seekAbort, 16) > 0; i++) {
                // skip data, stop at an ABORT
            }
        }
        return fail(failure != null ? failure : why);
    }

    private final io.aeron.logbuffer.FragmentHandler seekAbort = (buf, offset, length, header) -> {
        if (failure == null && buf.getInt(offset + T_TYPE) == ABORT) onAbort(buf, offset, length);
    };

    /** Best effort: tells the next rank (and through it the whole ring) why this rank gives up; once. */
    void abort(String why) {
        if (aborted) return;
        aborted = true;
        trySendControl(ABORT, rank, why.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * Another thread aborts this rank while an operation runs (and then interrupts it): the operation fails with
     * {@code why} and sends it around the ring, rather than "interrupted".
     */
    void abortRequested(String why) {
        abortRequested = why;
    }

    private volatile String abortRequested;

    /** Links are checked only while this rank still needs them: a neighbour that finished may already be gone. */
    private void checkLinks(long now, long lastProgress, String what, boolean needIn, boolean needOut) {
        if (Thread.currentThread().isInterrupted())
            throw fail(abortRequested != null ? abortRequested : "rank " + rank + ": interrupted during " + what);
        if (aeron.isClosed())
            throw fail("rank " + rank + ": lost its Aeron media driver (the launcher died?) during " + what);
        if (needIn && (upstream.isClosed() || in.imageCount() == 0))
            throw linkFailure("rank " + rank + ": rank " + prev + " died or left the job (its link closed) during " + what);
        if (needOut && !out.isConnected())
            throw linkFailure("rank " + rank + ": rank " + next + " died or left the job (its link closed) during " + what);
        if (now - lastProgress > timeoutNs)
            throw fail("rank " + rank + ": nothing from rank " + prev + " for " + TimeUnit.NANOSECONDS.toSeconds(timeoutNs)
                    + " s during " + what + " (NANOCHAT4J_DIST_TIMEOUT): a rank is stuck");
    }

    /**
     * For waits outside {@link #run} (shared-buffer collectives: all ranks on one host, so the Aeron links carry only
     * control messages): fails on an ABORT from the ring, a dead neighbour, or no progress for the job's timeout.
     */
    void checkAlive(long lastProgress, String what) {
        in.poll(onControl, 16);
        if (failure != null) throw fail(failure);
        checkLinks(System.nanoTime(), lastProgress, what, true, true);
    }

    /** Data arriving from the previous rank, handed to {@link #onData}; on a shared-memory link, also an ABORT. */
    private int pollData() {
        if (shmIn == null) return in.controlledPoll(onData, 8);
        // An ABORT travels apart from the data, so it takes effect only when the queue holds nothing more: whatever
        // the previous rank sent before it (e.g. the rest of an operation it finished) is visible once it is read.
        int work = abortAfterData == null ? in.poll(onRunControl, 1) : 0;
        int frames = shmIn.poll(onData, 8);
        if (frames == 0 && abortAfterData != null && failure == null) {
            onAbort(abortAfterData.origin, abortAfterData.text);
            abortAfterData = null;
        }
        return work + frames;
    }

    private ControlMessage abortAfterData;

    /** A control message during an operation on a shared-memory link: only an ABORT may come. */
    private void onRunControl(DirectBuffer buf, int offset, int length, Header header) {
        if (failure != null || !checkSender(buf, offset)) return;
        if (buf.getInt(offset + T_TYPE) == ABORT) {
            abortAfterData = new ControlMessage(ABORT, buf.getInt(offset + HEADER),
                    buf.getStringWithoutLengthUtf8(offset + HEADER + 4, length - HEADER - 4));
            return;
        }
        failure = "rank " + rank + ": rank " + prev + " sent a handshake during operation #" + sequence
                + ": ranks called different collectives";
    }

    /** Claims a data frame to the next rank at {@link #frame}/{@link #frameAt}; false when back-pressured. */
    private boolean claimData(int bytes) {
        if (shmOut != null) return tryClaimData(bytes);
        if (!claim(bytes)) return false;
        frame = claim.buffer();
        frameAt = claim.offset();
        return true;
    }

    /** {@link #claimData} that never throws (a dead link is noticed by the link checks instead). */
    private boolean tryClaimData(int bytes) {
        if (shmOut != null) {
            frame = shmOut.buffer();
            frameAt = shmOut.tryClaim(bytes);
            return frameAt >= 0;
        }
        if (out.tryClaim(bytes, claim) <= 0) return false;
        frame = claim.buffer();
        frameAt = claim.offset();
        return true;
    }

    private void commitData() {
        if (shmOut != null) shmOut.commit();
        else claim.commit();
    }

    /** One tryClaim; false when back-pressured (the caller does other work and comes back). */
    private boolean claim(int bytes) {
        long r = out.tryClaim(bytes, claim);
        if (r > 0) return true;
        if (r == Publication.BACK_PRESSURED || r == Publication.ADMIN_ACTION) return false;
        if (r == Publication.NOT_CONNECTED)
            throw linkFailure("rank " + rank + ": rank " + next + " died or left the job (its link closed)");
        throw fail("rank " + rank + ": the link to rank " + next + " failed (" + Publication.errorString(r) + ")");
    }

    private void sendControl(int type, int origin, byte[] text) {
        long deadline = System.nanoTime() + timeoutNs;
        while (!claim(HEADER + 4 + text.length)) {
            if (System.nanoTime() > deadline)
                throw fail("rank " + rank + ": rank " + next + " accepts nothing for " + TimeUnit.NANOSECONDS.toSeconds(timeoutNs) + " s");
            idle.idle();
        }
        idle.reset();
        writeControl(type, origin, text);
    }

    private void trySendControl(int type, int origin, byte[] text) {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(200);
        while (System.nanoTime() < deadline) {
            long r = out.tryClaim(HEADER + 4 + text.length, claim);
            if (r > 0) {
                writeControl(type, origin, text);
                return;
            }
            if (r != Publication.BACK_PRESSURED && r != Publication.ADMIN_ACTION) return;
            sleepMillis(1);
        }
    }

    private void writeControl(int type, int origin, byte[] text) {
        MutableDirectBuffer b = claim.buffer();
        int o = claim.offset();
        b.putInt(o + T_TYPE, type);
        b.putInt(o + T_SENDER, rank);
        b.putLong(o + T_SEQ, sequence);
        b.putInt(o + HEADER, origin);
        b.putBytes(o + HEADER + 4, text);
        claim.commit();
    }

    private static MemorySegment wire(DirectBuffer b, int offset, int bytes) {
        return MemorySegment.ofAddress(b.addressOffset() + offset).reinterpret(bytes);
    }

    private static void sleepMillis(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CollectiveException("interrupted while waiting for the ring", e);
        }
    }

    @Override
    public void close() {
        out.close();
        in.close();
        if (shmOut != null) deleteQuietly(shmOut.file()); // gone already when the next rank opened it
    }

    private static void deleteQuietly(Path file) {
        try {
            java.nio.file.Files.deleteIfExists(file);
        } catch (java.io.IOException e) {
            // the media driver deletes its directory on close
        }
    }
}
