package nanochat4j.train.collective;

import io.aeron.driver.MediaDriver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * Test harness: N ranks as threads of this JVM, each with its own Aeron client, over IPC through one media driver
 * (or one driver per "node" to exercise UDP between nodes on the loopback interface).
 */
public final class InProcessRing {
    private InProcessRing() {}

    public interface Body<T> {
        T run(Collective c) throws Exception;
    }

    private static int nextPort = 31000 + (int) (ProcessHandle.current().pid() % 1000) * 20;

    /** Runs body on every rank (one node, IPC); returns each rank's result, or throws the first failure. */
    public static <T> List<T> run(int world, String fingerprint, Body<T> body) throws Exception {
        return run(world, 1, i -> fingerprint, Duration.ofSeconds(60), body);
    }

    public interface Fingerprints {
        String of(int rank);
    }

    interface WorldOf {
        int of(int rank);
    }

    public static <T> List<Object> runCollecting(int world, int nodes, Fingerprints fp, Duration timeout, Body<T> body)
            throws Exception {
        return runCollecting(world, nodes, fp, timeout, r -> world, body);
    }

    /** Results or exceptions of every rank: element r is rank r's result or its Throwable. */
    static <T> List<Object> runCollecting(int world, int nodes, Fingerprints fp, Duration timeout, WorldOf worldOf,
            Body<T> body) throws Exception {
        int localWorld = world / nodes;
        List<Path> dirs = new ArrayList<>();
        List<MediaDriver> drivers = new ArrayList<>();
        int port;
        synchronized (InProcessRing.class) {
            port = nextPort;
            nextPort += world + 2;
        }
        ExecutorService pool = Executors.newFixedThreadPool(world);
        try {
            for (int n = 0; n < nodes; n++) {
                Path dir = Files.createTempDirectory(DistEnv.jobBaseDir(), "nanochat4j-test-");
                dirs.add(dir);
                drivers.add(LocalDriver.launch(dir.resolve("aeron")));
            }
            List<String> hosts = Collections.nCopies(nodes, "127.0.0.1");
            List<Future<Object>> futures = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                int rank = r;
                int w = worldOf.of(rank), lw = w / nodes;
                DistEnv env = new DistEnv(rank, w, rank % lw, lw, rank / lw, hosts, port,
                        dirs.get(rank / localWorld).resolve("aeron"), false, timeout);
                futures.add(pool.submit(() -> {
                    try (Collective c = Collective.create(env, fp.of(rank))) {
                        return (Object) body.run(c);
                    } catch (Throwable t) {
                        return t;
                    }
                }));
            }
            List<Object> out = new ArrayList<>();
            for (Future<Object> f : futures) out.add(f.get(120, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
            for (MediaDriver d : drivers) d.close();
            for (Path d : dirs) deleteTree(d);
        }
    }

    @SuppressWarnings("unchecked")
    static <T> List<T> run(int world, int nodes, Fingerprints fp, Duration timeout, Body<T> body) throws Exception {
        List<Object> all = runCollecting(world, nodes, fp, timeout, body);
        for (int r = 0; r < all.size(); r++) {
            if (all.get(r) instanceof Throwable t) throw new AssertionError("rank " + r + " failed: " + t, t);
        }
        return (List<T>) all;
    }

    static void deleteTree(Path p) throws java.io.IOException {
        if (!Files.exists(p)) return;
        try (var s = Files.walk(p)) {
            for (Path q : s.sorted(java.util.Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        }
    }
}
