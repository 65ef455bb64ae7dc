package nanochat4j.train.collective;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Where this process sits in a distributed job, read from torchrun-style environment variables:
 * {@code RANK}, {@code WORLD_SIZE}, {@code LOCAL_RANK}, {@code LOCAL_WORLD_SIZE}, {@code NODE_RANK},
 * {@code MASTER_ADDR}, {@code MASTER_PORT}, plus ours: {@code NANOCHAT4J_NODES} (comma-separated host of every node,
 * in node-rank order; ranks are node-major), {@code NANOCHAT4J_AERON_DIR} (the media driver of this host; when
 * unset, local rank 0 starts one, in {@link #jobBaseDir}: {@code NANOCHAT4J_SHM_DIR} picks that folder, for
 * {@code launch} too) and {@code NANOCHAT4J_DIST_TIMEOUT} (seconds: connecting, and the longest a
 * collective waits on a live but silent peer; default 600, like NCCL's watchdog).
 * A process with no {@code WORLD_SIZE} is a world of one.
 */
public record DistEnv(int rank, int worldSize, int localRank, int localWorldSize, int nodeRank, List<String> nodes,
                      int masterPort, Path aeronDir, boolean ownsDriver, Duration timeout) {

    public static final int DEFAULT_MASTER_PORT = 29500;

    public DistEnv {
        nodes = List.copyOf(nodes);
        if (worldSize < 1) throw new IllegalArgumentException("WORLD_SIZE=" + worldSize + " must be >= 1");
        if (rank < 0 || rank >= worldSize)
            throw new IllegalArgumentException("RANK=" + rank + " outside [0, WORLD_SIZE=" + worldSize + ")");
        if (localWorldSize < 1 || worldSize % localWorldSize != 0)
            throw new IllegalArgumentException("LOCAL_WORLD_SIZE=" + localWorldSize + " does not divide WORLD_SIZE=" + worldSize);
        if (localRank != rank % localWorldSize || nodeRank != rank / localWorldSize)
            throw new IllegalArgumentException("RANK=" + rank + " is not NODE_RANK=" + nodeRank + " * LOCAL_WORLD_SIZE="
                    + localWorldSize + " + LOCAL_RANK=" + localRank + " (ranks are node-major)");
        if (nodes.size() != worldSize / localWorldSize)
            throw new IllegalArgumentException("NANOCHAT4J_NODES lists " + nodes.size() + " hosts " + nodes
                    + " but WORLD_SIZE/LOCAL_WORLD_SIZE = " + worldSize / localWorldSize + " nodes");
        if (masterPort <= 0 || masterPort + worldSize >= 65536)
            throw new IllegalArgumentException("MASTER_PORT=" + masterPort + " leaves no room for " + worldSize + " ports");
    }

    /** A world of one: no communication at all. */
    public static DistEnv single() {
        return new DistEnv(0, 1, 0, 1, 0, List.of("127.0.0.1"), DEFAULT_MASTER_PORT, null, false, Duration.ofSeconds(600));
    }

    public static DistEnv fromEnvironment() {
        return fromEnvironment(System.getenv());
    }

    public static DistEnv fromEnvironment(Map<String, String> env) {
        int world = intVar(env, "WORLD_SIZE", 1);
        if (world == 1 && !env.containsKey("RANK")) return single();
        if (!env.containsKey("RANK")) throw new IllegalArgumentException("WORLD_SIZE=" + world + " is set but RANK is not");
        int rank = intVar(env, "RANK", 0);
        int localWorld = intVar(env, "LOCAL_WORLD_SIZE", world);
        int localRank = intVar(env, "LOCAL_RANK", rank % localWorld);
        int nodeRank = intVar(env, "NODE_RANK", rank / localWorld);
        int port = intVar(env, "MASTER_PORT", DEFAULT_MASTER_PORT);
        String master = env.getOrDefault("MASTER_ADDR", "127.0.0.1");
        List<String> nodes = env.containsKey("NANOCHAT4J_NODES")
                ? Arrays.stream(env.get("NANOCHAT4J_NODES").split(",")).map(String::trim).filter(s -> !s.isEmpty()).toList()
                : (world == localWorld ? List.of(master) : List.of());
        String dir = env.get("NANOCHAT4J_AERON_DIR");
        boolean owns = dir == null || dir.isBlank();
        Path aeronDir = owns ? defaultAeronDir(port, nodeRank) : Path.of(dir);
        Duration timeout = Duration.ofSeconds(intVar(env, "NANOCHAT4J_DIST_TIMEOUT", 600));
        return new DistEnv(rank, world, localRank, localWorld, nodeRank, nodes, port, aeronDir, owns && localRank == 0, timeout);
    }

    /** Node index of a rank (ranks are node-major). */
    public int nodeOf(int r) {
        return r / localWorldSize;
    }

    /**
     * Free space below which /dev/shm is passed over: a job's files there (Aeron's log buffers, and the shared gradient
     * buffers of GPU ranks, the size of the model's gradients per rank) outgrow Docker's default 64 MiB at once.
     */
    static final long SHM_MIN_FREE = 1L << 30;

    /**
     * Where a job's memory-mapped files go (Aeron's log buffers, shared buffers): {@code NANOCHAT4J_SHM_DIR} when set,
     * else shared memory when the OS has it with at least {@link #SHM_MIN_FREE} free, else the temp dir (files in the
     * page cache: slower to set up, the same once mapped).
     */
    static Path jobBaseDir() {
        return jobBaseDir(System.getenv("NANOCHAT4J_SHM_DIR"), Path.of("/dev/shm"), SHM_MIN_FREE);
    }

    static Path jobBaseDir(String override, Path shm, long minFree) {
        if (override != null && !override.isBlank()) return Path.of(override);
        return Files.isDirectory(shm) && Files.isWritable(shm) && usableSpace(shm) >= minFree ? shm : Path.of(System.getProperty("java.io.tmpdir"));
    }

    private static long usableSpace(Path dir) {
        try {
            return Files.getFileStore(dir).getUsableSpace();
        } catch (java.io.IOException | RuntimeException e) {
            return 0;
        }
    }

    private static Path defaultAeronDir(int port, int nodeRank) {
        return jobBaseDir().resolve("nanochat4j-" + System.getProperty("user.name") + "-" + port + "-node" + nodeRank);
    }

    private static int intVar(Map<String, String> env, String name, int dflt) {
        String v = env.get(name);
        if (v == null || v.isBlank()) return dflt;
        try {
            return Integer.parseInt(v.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("environment variable " + name + "=" + v + " is not an integer");
        }
    }
}
