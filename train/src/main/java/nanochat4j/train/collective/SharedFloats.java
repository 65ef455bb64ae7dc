package nanochat4j.train.collective;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Objects;

/**
 * An fp32 buffer that every rank of a job allocates together ({@link Collective#sharedFloats}) for collectives
 * without copies: when all ranks share a host, each rank's buffer lives in a memory-mapped file that the others map
 * too, so a reduction reads the peers' values where they are instead of copying them through a queue (see
 * {@link PeerReduce}). On a job across hosts (or of one rank) it is a plain off-heap buffer reduced over the ring.
 * Training uses it for the buffers it reduces in bulk (the Muon gradient stacks).
 */
public final class SharedFloats {
    /** Bytes before the data in each rank's file: its counters and its current operation (see {@link PeerReduce}). */
    static final int CONTROL_BYTES = 4096;

    private final int length;
    /** Index of this rank's buffer in {@link #data}. */
    final int own;
    /** Every rank's control area and data (index = rank), or only this rank's data (no control areas). */
    final MemorySegment[] control, data;

    SharedFloats(int length, int own, MemorySegment[] control, MemorySegment[] data) {
        this.length = length;
        this.own = own;
        this.control = control;
        this.data = data;
    }

    /** A buffer of this process only (a world of one, or ranks on several hosts: reduced over the ring). */
    static SharedFloats local(int length) {
        MemorySegment d = Arena.ofAuto().allocate((long) length * Float.BYTES, 64);
        return new SharedFloats(length, 0, null, new MemorySegment[] {d});
    }

    /** A new zeroed file for one rank's buffer: the control area, then the data. */
    static MemorySegment create(Path file, int length) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ,
                StandardOpenOption.WRITE)) {
            // write the zeros now: a full file system (a small /dev/shm) fails here with ENOSPC, not later with SIGBUS
            ByteBuffer zeros = ByteBuffer.allocateDirect(1 << 20);
            long size = bytes(length);
            for (long at = 0; at < size; ) {
                zeros.clear().limit((int) Math.min(zeros.capacity(), size - at));
                at += ch.write(zeros, at);
            }
            return ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes(length), Arena.ofAuto());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create " + file + " (" + bytes(length) + " bytes; "
                    + usableSpace(file) + "): give its file system more room (e.g. docker --shm-size) or set "
                    + "NANOCHAT4J_SHM_DIR to a folder on a larger one", e);
        }
    }

    private static String usableSpace(Path file) {
        try {
            return Files.getFileStore(file.getParent()).getUsableSpace() + " bytes free there";
        } catch (IOException | RuntimeException e) {
            return "free space unknown";
        }
    }

    /** Another rank's buffer file, which must hold {@code length} floats. */
    static MemorySegment map(Path file, int length) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            if (ch.size() != bytes(length))
                throw new CollectiveException("shared buffer " + file + " has " + ch.size() + " bytes where " + length
                        + " floats need " + bytes(length) + ": ranks allocated shared buffers of different sizes");
            return ch.map(FileChannel.MapMode.READ_WRITE, 0, bytes(length), Arena.ofAuto());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot map " + file, e);
        }
    }

    /** The buffer over every rank's mapped file (index = rank). */
    static SharedFloats of(MemorySegment[] files, int own, int length) {
        MemorySegment[] control = new MemorySegment[files.length], data = new MemorySegment[files.length];
        for (int p = 0; p < files.length; p++) {
            control[p] = files[p].asSlice(0, CONTROL_BYTES);
            data[p] = files[p].asSlice(CONTROL_BYTES, (long) length * Float.BYTES);
        }
        return new SharedFloats(length, own, control, data);
    }

    private static long bytes(int length) {
        return CONTROL_BYTES + (long) length * Float.BYTES;
    }

    /** Whether the other ranks' buffers are mapped here (all ranks on this host). */
    boolean peersMapped() {
        return control != null;
    }

    /** This rank's data, {@code length} floats in native order. */
    public MemorySegment segment() {
        return data[own];
    }

    public int length() {
        return length;
    }

    /** this[at, at+n) = src[srcOff, srcOff+n). */
    public void copyFrom(float[] src, int srcOff, int at, int n) {
        Objects.checkFromIndexSize(at, n, length);
        MemorySegment.copy(src, srcOff, segment(), ValueLayout.JAVA_FLOAT, (long) at * Float.BYTES, n);
    }

    /** dst[dstOff, dstOff+n) = this[at, at+n). */
    public void copyTo(int at, float[] dst, int dstOff, int n) {
        Objects.checkFromIndexSize(at, n, length);
        MemorySegment.copy(segment(), ValueLayout.JAVA_FLOAT, (long) at * Float.BYTES, dst, dstOff, n);
    }

    /** this[from, to) = v. */
    public void fill(int from, int to, float v) {
        Objects.checkFromToIndex(from, to, length);
        if (v == 0f) segment().asSlice((long) from * Float.BYTES, (long) (to - from) * Float.BYTES).fill((byte) 0);
        else for (int i = from; i < to; i++) segment().setAtIndex(ValueLayout.JAVA_FLOAT, i, v);
    }
}
