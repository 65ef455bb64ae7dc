package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Reading the torchrun-style environment. */
class DistEnvTest {

    @Test
    void noWorldSizeMeansASingleProcessWorld() {
        DistEnv e = DistEnv.fromEnvironment(Map.of());
        assertEquals(1, e.worldSize());
        assertEquals(0, e.rank());
    }

    @Test
    void launcherVariablesAreReadNodeMajor() {
        DistEnv e = DistEnv.fromEnvironment(Map.of("RANK", "3", "WORLD_SIZE", "4", "LOCAL_RANK", "1",
                "LOCAL_WORLD_SIZE", "2", "NODE_RANK", "1", "MASTER_ADDR", "10.0.0.1", "MASTER_PORT", "4000",
                "NANOCHAT4J_NODES", "10.0.0.1, 10.0.0.2", "NANOCHAT4J_AERON_DIR", "/tmp/job/aeron"));
        assertEquals(List.of("10.0.0.1", "10.0.0.2"), e.nodes());
        assertEquals(1, e.nodeOf(3));
        assertEquals(0, e.nodeOf(1));
        assertEquals(Path.of("/tmp/job/aeron"), e.aeronDir());
        assertFalse(e.ownsDriver());
        assertEquals(4000, e.masterPort());
    }

    /** NANOCHAT4J_SHM_DIR first; shared memory only with room for a job's files (not Docker's 64 MiB), else the temp dir. */
    @Test
    void jobFilesGoWhereThereIsRoom(@org.junit.jupiter.api.io.TempDir Path dir) {
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        long min = DistEnv.SHM_MIN_FREE;
        assertEquals(dir.resolve("x"), DistEnv.jobBaseDir(dir.resolve("x").toString(), Path.of("/dev/shm"), min));
        assertEquals(tmp, DistEnv.jobBaseDir(null, dir.resolve("no-such-shm"), min));
        assertEquals(tmp, DistEnv.jobBaseDir(" ", dir.resolve("no-such-shm"), min));
        // an existing, writable folder: taken with room to spare, passed over without
        assertEquals(dir, DistEnv.jobBaseDir(null, dir, 1));
        assertEquals(tmp, DistEnv.jobBaseDir(null, dir, Long.MAX_VALUE));
    }

    @Test
    void withoutALauncherLocalRankZeroStartsTheDriver() {
        DistEnv r0 = DistEnv.fromEnvironment(Map.of("RANK", "0", "WORLD_SIZE", "2", "MASTER_PORT", "4100"));
        DistEnv r1 = DistEnv.fromEnvironment(Map.of("RANK", "1", "WORLD_SIZE", "2", "MASTER_PORT", "4100"));
        assertTrue(r0.ownsDriver());
        assertFalse(r1.ownsDriver());
        assertEquals(r0.aeronDir(), r1.aeronDir());
    }

    @Test
    void inconsistentVariablesAreRefusedNamingThem() {
        var e = assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(Map.of("RANK", "2", "WORLD_SIZE", "2")));
        assertTrue(e.getMessage().contains("RANK=2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(Map.of("WORLD_SIZE", "2")));
        assertTrue(e.getMessage().contains("RANK is not"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(Map.of("RANK", "x", "WORLD_SIZE", "2")));
        assertTrue(e.getMessage().contains("RANK=x"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> DistEnv.fromEnvironment(Map.of("RANK", "0", "WORLD_SIZE", "4",
                "LOCAL_WORLD_SIZE", "2", "NANOCHAT4J_NODES", "a,b,c")));
        assertTrue(e.getMessage().contains("NANOCHAT4J_NODES lists 3 hosts"), e.getMessage());
    }
}
