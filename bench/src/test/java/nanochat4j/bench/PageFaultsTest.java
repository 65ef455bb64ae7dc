package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class PageFaultsTest {

    @Test
    void touchingFreshMemoryCountsMinorFaults() {
        assumeTrue(Files.exists(Path.of("/proc/self/stat")), "no /proc/self/stat (not Linux): PageFaults reports -1 here");
        long before = PageFaults.minor();
        assertTrue(before > 0, "a running JVM has faulted pages in already, got " + before);
        // 64 MiB of fresh native memory, one write per 4 KiB page: at least one fault per 2 MiB even with huge pages
        ByteBuffer fresh = ByteBuffer.allocateDirect(64 << 20);
        for (int i = 0; i < fresh.capacity(); i += 4096) fresh.put(i, (byte) 1);
        long faults = PageFaults.minor() - before;
        assertTrue(faults >= 32, "64 MiB of fresh pages touched, but only " + faults + " minor faults counted");
    }

    @Test
    void quietCodeFaultsLittle() {
        assumeTrue(Files.exists(Path.of("/proc/self/stat")), "no /proc/self/stat (not Linux)");
        float[] warm = new float[1 << 20];
        for (int r = 0; r < 3; r++) java.util.Arrays.fill(warm, r);   // fault it in first
        long before = PageFaults.minor();
        for (int r = 0; r < 10; r++) java.util.Arrays.fill(warm, r);
        long faults = PageFaults.minor() - before;
        assertTrue(faults < 256, "rewriting 4 MiB already touched should not fault it in again, got " + faults + " faults");
    }
}
