package nanochat4j.train.collective;

import io.aeron.logbuffer.ControlledFragmentHandler;
import io.aeron.logbuffer.ControlledFragmentHandler.Action;
import java.io.File;
import java.io.IOException;
import java.nio.MappedByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.agrona.IoUtil;
import org.agrona.concurrent.UnsafeBuffer;

/**
 * The data path of a ring link whose two ranks share a host: a one-way queue of frames in a memory-mapped file,
 * written by one process and read by the other, over an Agrona {@link UnsafeBuffer}.
 * <p>Why not the Aeron IPC publication the link's control messages use: an IPC publication's window only moves when
 * the media driver's thread runs (it reads the subscriber's position and raises the publisher's limit), and the
 * driver cleans every term behind the reader. On a host with few cores that third busy thread competes with both
 * ranks, and a large all-reduce spends much of its time waiting (docs/BENCHMARKS.md). Here the producer reads the consumer's
 * position itself, nothing is cleaned, and the queue is small enough to stay in cache between the two cores.
 * <p>Layout: the producer's position (bytes ever written) and the consumer's position each on their own cache lines,
 * a check word, then a power-of-two ring of records. A record is a 4-byte frame length ({@link #PADDING} to skip to
 * the end of the ring) and the frame {@link #RECORD_HEADER} bytes later; records start on 64-byte boundaries, so
 * a frame's payload after the ring's 32-byte frame header is cache-line aligned. Positions are published with
 * release stores and read with acquire loads: a frame is complete before its position is visible.
 * <p>The producer creates the file (in the host's Aeron directory, deleted with it) and announces its path on the
 * link's Aeron publication; the consumer maps it and deletes the name, so nothing is left behind once both are
 * mapped. Liveness stays with Aeron: a dead neighbour is noticed through its closed Aeron link.
 */
final class ShmLink {
    /** Bytes before a frame in its record (the length word, padded so payloads stay aligned). */
    static final int RECORD_HEADER = 32;
    private static final int ALIGN = 64;
    private static final int PADDING = -1;
    private static final int PRODUCED = 0, CONSUMED = 128, CHECK = 256, RING = 384;
    private static final int MAGIC = 0x6e633473; // "nc4s"

    private final UnsafeBuffer buf; // holds the mapped buffer: the mapping lives as long as this link (the GC unmaps it)
    private final int capacity;
    private final Path file;
    /** Producer side: position after the claimed record; last consumer position read. Consumer side: its position. */
    private long produced, consumedSeen, consumed;
    private int claimed = -1;

    private ShmLink(MappedByteBuffer mapped, int capacity, Path file) {
        this.buf = new UnsafeBuffer(mapped);
        this.capacity = capacity;
        this.file = file;
    }

    /** The producer's end: a new queue of {@code capacity} bytes (a power of two) in a new file. */
    static ShmLink create(Path file, int capacity) {
        if (Integer.bitCount(capacity) != 1) throw new IllegalArgumentException("capacity " + capacity + " is not a power of two");
        MappedByteBuffer m;
        try {
            m = IoUtil.mapNewFile(file.toFile(), RING + capacity, true);
        } catch (RuntimeException e) {
            throw new CollectiveException("cannot create the shared-memory link " + file + ": " + e.getMessage(), e);
        }
        ShmLink link = new ShmLink(m, capacity, file);
        link.buf.putInt(CHECK, MAGIC);
        link.buf.putIntRelease(CHECK + 4, capacity);
        return link;
    }

    /** The consumer's end of the queue the producer announced; the file's name is deleted once mapped. */
    static ShmLink open(Path file) {
        File f = file.toFile();
        long size = f.length();
        if (size <= RING || size - RING > Integer.MAX_VALUE)
            throw new CollectiveException("shared-memory link " + file + " has " + size + " bytes: not a link file");
        MappedByteBuffer m;
        try {
            m = IoUtil.mapExistingFile(f, "ring link");
        } catch (RuntimeException e) {
            throw new CollectiveException("cannot map the shared-memory link " + file + ": " + e.getMessage(), e);
        }
        int capacity = (int) (size - RING);
        ShmLink link = new ShmLink(m, capacity, file);
        if (link.buf.getInt(CHECK) != MAGIC || link.buf.getIntAcquire(CHECK + 4) != capacity || Integer.bitCount(capacity) != 1)
            throw new CollectiveException("shared-memory link " + file + " is not a link file (bad header)");
        try {
            Files.deleteIfExists(file);
        } catch (IOException e) {
            // the media driver deletes its directory on close: at worst the name stays until then
        }
        return link;
    }

    Path file() {
        return file;
    }

    /** The whole mapped file: frames are written and read at the offsets {@link #tryClaim} and polls give. */
    UnsafeBuffer buffer() {
        return buf;
    }

    /** Largest frame a record can hold: a quarter of the ring, so several are in flight. */
    int maxFrameLength() {
        return capacity / 4 - RECORD_HEADER;
    }

    /**
     * Producer: room for a frame of {@code length} bytes; returns the frame's offset in {@link #buffer()}, or −1 when
     * the consumer has not yet freed enough (back-pressure: try again later). {@link #commit()} publishes it.
     */
    int tryClaim(int length) {
        if (length > maxFrameLength() || length < 0)
            throw new IllegalArgumentException("frame of " + length + " bytes; at most " + maxFrameLength());
        int record = align(RECORD_HEADER + length);
        int index = (int) (produced & (capacity - 1));
        int toEnd = capacity - index;
        int needed = record <= toEnd ? record : toEnd + record;
        if (produced + needed - consumedSeen > capacity) {
            consumedSeen = buf.getLongAcquire(CONSUMED);
            if (produced + needed - consumedSeen > capacity) return -1;
        }
        if (record > toEnd) { // does not fit before the end: pad to it, start over at 0
            buf.putInt(RING + index, PADDING);
            produced += toEnd;
            index = 0;
        }
        buf.putInt(RING + index, length);
        claimed = record;
        return RING + index + RECORD_HEADER;
    }

    /** Producer: publishes the frame last claimed (and any padding before it). */
    void commit() {
        produced += claimed;
        claimed = -1;
        buf.putLongRelease(PRODUCED, produced);
    }

    /**
     * Consumer: hands up to {@code limit} frames to the handler in order, frees each one it accepts; stops at the
     * first it rejects ({@link Action#ABORT}: that frame is offered again next time). Returns the frames accepted.
     * The handler gets this buffer, the frame's offset and length, and no Aeron header.
     */
    int poll(ControlledFragmentHandler handler, int limit) {
        long available = buf.getLongAcquire(PRODUCED);
        int frames = 0;
        while (consumed < available && frames < limit) {
            int index = (int) (consumed & (capacity - 1));
            int length = buf.getInt(RING + index);
            if (length == PADDING) {
                consumed += capacity - index;
                continue;
            }
            if (handler.onFragment(buf, RING + index + RECORD_HEADER, length, null) == Action.ABORT) break;
            consumed += align(RECORD_HEADER + length);
            buf.putLongRelease(CONSUMED, consumed); // free it at once: the producer may be waiting for room
            frames++;
        }
        return frames;
    }

    private static int align(int n) {
        return (n + ALIGN - 1) & -ALIGN;
    }
}
