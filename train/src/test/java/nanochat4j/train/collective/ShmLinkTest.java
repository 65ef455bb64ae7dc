package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.logbuffer.ControlledFragmentHandler.Action;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The shared-memory frame queue: order, content, wrap-around, back-pressure, re-offered frames, bad files. */
class ShmLinkTest {
    private static final int CAPACITY = 4096; // frames up to 992 bytes: a few hundred frames wrap it many times

    @TempDir
    Path dir;

    @Test
    void framesArriveInOrderAndIntactAcrossThreadsThroughManyWrapArounds() throws Exception {
        Path file = dir.resolve("link.shm");
        ShmLink producer = ShmLink.create(file, CAPACITY);
        ShmLink consumer = ShmLink.open(file);
        int frames = 5000;
        long seed = 42;
        CompletableFuture<Void> writer = CompletableFuture.runAsync(() -> {
            SplittableRandom rnd = new SplittableRandom(seed);
            for (int f = 0; f < frames; f++) {
                int length = frameLength(rnd);
                int at;
                while ((at = producer.tryClaim(length)) < 0) Thread.onSpinWait(); // back-pressured: the ring is full
                for (int i = 0; i < length; i++) producer.buffer().putByte(at + i, content(f, i));
                producer.commit();
            }
        });
        SplittableRandom rnd = new SplittableRandom(seed);
        int[] received = {0};
        List<String> errors = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (received[0] < frames && System.nanoTime() < deadline) {
            consumer.poll((buf, offset, length, header) -> {
                int f = received[0]++;
                int expected = frameLength(rnd);
                if (length != expected) errors.add("frame " + f + ": " + length + " bytes, expected " + expected);
                for (int i = 0; i < length; i++)
                    if (buf.getByte(offset + i) != content(f, i)) {
                        errors.add("frame " + f + " byte " + i);
                        break;
                    }
                if (offset % 64 != ShmLink.RECORD_HEADER % 64) errors.add("frame " + f + " at unaligned offset " + offset);
                return Action.CONTINUE;
            }, 3);
        }
        writer.get(30, TimeUnit.SECONDS);
        assertEquals(frames, received[0]);
        assertEquals(List.of(), errors.subList(0, Math.min(5, errors.size())));
    }

    @Test
    void aFullRingRefusesUntilTheConsumerFreesAFrame() {
        Path file = dir.resolve("full.shm");
        ShmLink producer = ShmLink.create(file, CAPACITY);
        ShmLink consumer = ShmLink.open(file);
        int length = producer.maxFrameLength(); // records of exactly a quarter of the ring
        for (int i = 0; i < 4; i++) {
            assertTrue(producer.tryClaim(length) >= 0, "frame " + i + " fits");
            producer.commit();
        }
        assertEquals(-1, producer.tryClaim(1), "the ring is full");
        assertEquals(1, consumer.poll((b, o, l, h) -> Action.CONTINUE, 1));
        assertTrue(producer.tryClaim(length) >= 0, "a freed quarter takes a frame again");
    }

    @Test
    void aRejectedFrameIsOfferedAgainByTheNextPoll() {
        Path file = dir.resolve("abort.shm");
        ShmLink producer = ShmLink.create(file, CAPACITY);
        ShmLink consumer = ShmLink.open(file);
        for (int v = 1; v <= 2; v++) {
            int at = producer.tryClaim(8);
            producer.buffer().putLong(at, v);
            producer.commit();
        }
        List<Long> seen = new ArrayList<>();
        assertEquals(0, consumer.poll((b, o, l, h) -> {
            seen.add(b.getLong(o));
            return Action.ABORT; // e.g. the next operation's data: leave it for later
        }, 8));
        assertEquals(2, consumer.poll((b, o, l, h) -> {
            seen.add(b.getLong(o));
            return Action.CONTINUE;
        }, 8));
        assertEquals(List.of(1L, 1L, 2L), seen);
        assertEquals(0, consumer.poll((b, o, l, h) -> Action.CONTINUE, 8), "nothing left");
    }

    @Test
    void theConsumerDeletesTheFileNameOnceMapped() {
        Path file = dir.resolve("named.shm");
        ShmLink.create(file, CAPACITY);
        assertTrue(Files.exists(file));
        ShmLink.open(file);
        assertFalse(Files.exists(file), "the mapping outlives the name: nothing to clean up later");
    }

    @Test
    void aFileThatIsNotALinkIsRefusedWithItsPath() throws Exception {
        Path file = dir.resolve("stray.shm");
        Files.write(file, new byte[384 + 4096]);
        CollectiveException e = assertThrows(CollectiveException.class, () -> ShmLink.open(file));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("not a link file"), e.getMessage());
        Path tiny = dir.resolve("tiny.shm");
        Files.write(tiny, new byte[10]);
        e = assertThrows(CollectiveException.class, () -> ShmLink.open(tiny));
        assertTrue(e.getMessage().contains(tiny.toString()), e.getMessage());
    }

    @Test
    void anOversizedFrameIsABug() {
        ShmLink producer = ShmLink.create(dir.resolve("big.shm"), CAPACITY);
        assertThrows(IllegalArgumentException.class, () -> producer.tryClaim(producer.maxFrameLength() + 1));
        assertThrows(IllegalArgumentException.class, () -> ShmLink.create(dir.resolve("odd.shm"), 3000));
    }

    private static int frameLength(SplittableRandom rnd) {
        return rnd.nextInt(8) == 0 ? 0 : 1 + rnd.nextInt(992); // empty frames too, and every alignment
    }

    private static byte content(int frame, int i) {
        return (byte) (frame * 31 + i * 7);
    }
}
