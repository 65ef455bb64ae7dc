package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.atomic.AtomicInteger;
import nanochat4j.tensor.cuda.CudaUnavailableException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Which GPU each local worker of {@code launch} gets (CUDA_VISIBLE_DEVICES), decided without a GPU. */
class LauncherGpuTest {
    @Test
    void oneGpuPerWorkerRoundRobinAndTheLaunchersOwnListWins() {
        assertEquals("0", Launcher.gpuFor(0, null, 8));
        assertEquals("7", Launcher.gpuFor(7, null, 8));
        // two workers on one GPU (the multi-process test on a single card)
        assertEquals("0", Launcher.gpuFor(1, null, 1));
        // the launcher was itself given GPUs 4 and 6: workers map onto that list
        assertEquals("4", Launcher.gpuFor(0, "4,6", 8));
        assertEquals("6", Launcher.gpuFor(1, " 4, 6", 8));
        assertEquals("4", Launcher.gpuFor(2, "4,6", 8));
        // no GPU: the variable is left alone (CPU runs as before)
        assertNull(Launcher.gpuFor(0, null, 0));
        assertNull(Launcher.gpuFor(0, "", 0));
    }

    @Test
    void anEmptyListHidesEveryGpuFromTheWorkersToo() {
        // CUDA_VISIBLE_DEVICES="" means "no GPU" to CUDA: the workers inherit it rather than get GPU 0 back
        assertNull(Launcher.gpuFor(0, "", 8));
        assertNull(Launcher.gpuFor(3, " ", 8));
    }

    @Test
    void gpusAreCountedFromProcAndFromTheCudaDriverWhereProcHasNone(@TempDir Path dir) throws IOException {
        Path proc = dir.resolve("gpus");
        AtomicInteger asked = new AtomicInteger();
        Files.createDirectories(proc.resolve("0000:18:00.0"));
        Files.createDirectories(proc.resolve("0000:2a:00.0"));
        assertEquals(2, Launcher.gpuCount(proc, () -> {
            asked.incrementAndGet();
            return 8;
        }));
        assertEquals(0, asked.get(), "the /proc folder answers without loading CUDA in the launcher");
        // containers that do not mount /proc/driver/nvidia: the driver's count (8 workers must not all land on GPU 0)
        assertEquals(8, Launcher.gpuCount(dir.resolve("absent"), () -> 8));
        Files.createDirectories(dir.resolve("empty"));
        assertEquals(4, Launcher.gpuCount(dir.resolve("empty"), () -> 4));
        // neither: no GPU
        assertEquals(0, Launcher.gpuCount(dir.resolve("absent"), () -> {
            throw new CudaUnavailableException("CUDA: no libcuda");
        }));
        assertEquals(0, Launcher.gpuCount(dir.resolve("absent"), () -> {
            throw new UnsatisfiedLinkError("libcuda.so.1");
        }));
    }
}
