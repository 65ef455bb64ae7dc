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
    void touchingFreshMemoryGrowsTheResidentSetByItsBytes() {
        assumeTrue(Files.exists(Path.of("/proc/self/statm")), "no /proc/self/statm (not Linux): PageFaults reports -1 here");
        long before = PageFaults.resident();
        assertTrue(before > 1 << 20, "a running JVM is resident already, got " + before + " bytes");
        // 64 MiB of fresh native memory touched once per 4 KiB: resident by its bytes whatever the page size, where
        // the fault count alone reads 32 faults with huge pages and 16,384 without
        ByteBuffer fresh = ByteBuffer.allocateDirect(64 << 20);
        for (int i = 0; i < fresh.capacity(); i += 4096) fresh.put(i, (byte) 1);
        long growth = PageFaults.resident() - before;
        assertTrue(growth >= 48L << 20, "64 MiB of fresh pages touched, but the resident set grew by " + growth + " bytes");
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
