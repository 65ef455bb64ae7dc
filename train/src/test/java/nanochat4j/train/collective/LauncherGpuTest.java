package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

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
}
