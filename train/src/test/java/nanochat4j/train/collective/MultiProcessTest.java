package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.driver.MediaDriver;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The collective and the launcher with real worker JVMs (test classpath, main class {@link DistTestWorker}):
 * correctness across processes, a worker killed mid-collective, and the launcher's output prefixes and fail-fast.
 */
@Timeout(120)
class MultiProcessTest {

    private static List<String> workerCommand(String mode) {
        List<String> cmd = new ArrayList<>(Launcher.thisJvmCommand());
        int main = cmd.indexOf("-cp") >= 0 ? cmd.indexOf("-cp") : cmd.indexOf("-jar");
        cmd.subList(main, cmd.size()).clear();
        cmd.addAll(List.of("-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", System.getProperty("java.class.path"),
                DistTestWorker.class.getName(), mode));
        return cmd;
    }

    /** Starts world worker JVMs on a driver owned by this test, as the launcher would but without its fail-fast. */
    private static List<Process> startWorkers(int world, String mode, Path aeronDir, Path logs) throws Exception {
        List<Process> ps = new ArrayList<>();
        for (int r = 0; r < world; r++) {
            ProcessBuilder pb = new ProcessBuilder(workerCommand(mode)).redirectErrorStream(true)
                    .redirectOutput(logs.resolve("rank" + r + ".log").toFile());
            pb.environment().putAll(java.util.Map.of("RANK", "" + r, "WORLD_SIZE", "" + world, "LOCAL_RANK", "" + r,
                    "NANOCHAT4J_AERON_DIR", aeronDir.toString(), "NANOCHAT4J_DIST_TIMEOUT", "60"));
            ps.add(pb.start());
        }
        return ps;
    }

    private static String log(Path logs, int r) throws Exception {
        return Files.readString(logs.resolve("rank" + r + ".log"));
    }

    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {2, 3})
    void collectivesInSeparateProcessesEqualTheSerialReference(int world) throws Exception {
        Path job = Files.createTempDirectory(DistEnv.jobBaseDir(), "nanochat4j-test-");
        try (MediaDriver d = LocalDriver.launch(job.resolve("aeron"))) {
            List<Process> ps = startWorkers(world, "check", job.resolve("aeron"), job);
            for (int r = 0; r < world; r++) {
                assertTrue(ps.get(r).waitFor(100, TimeUnit.SECONDS), "rank " + r + " did not finish");
                assertEquals(0, ps.get(r).exitValue(), log(job, r));
                assertTrue(log(job, r).contains("rank " + r + " ok after"), log(job, r));
            }
        } finally {
            InProcessRing.deleteTree(job);
        }
    }

    @Test
    void aWorkerKilledMidCollectiveMakesTheOthersFailNamingItWithin30Seconds() throws Exception {
        Path job = Files.createTempDirectory(DistEnv.jobBaseDir(), "nanochat4j-test-");
        List<Process> ps = List.of();
        try (MediaDriver d = LocalDriver.launch(job.resolve("aeron"))) {
            // 4 ranks: 0 and 2 are rank 1's neighbours and see its links close; 3 learns it from the ABORT sent round the ring
            ps = startWorkers(4, "loop", job.resolve("aeron"), job);
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            for (int r = 0; r < 4; r++) {
                while (!log(job, r).contains("looping")) {
                    assertTrue(System.nanoTime() < until && ps.get(r).isAlive(), "rank " + r + " never looped: " + log(job, r));
                    Thread.sleep(50);
                }
            }
            ps.get(1).destroyForcibly(); // SIGKILL: no chance to say goodbye
            long killed = System.nanoTime();
            for (int r : new int[] {0, 2, 3}) {
                assertTrue(ps.get(r).waitFor(30, TimeUnit.SECONDS), "rank " + r + " still running 30 s after rank 1 died");
                String out = log(job, r);
                assertEquals(3, ps.get(r).exitValue(), out);
                assertTrue(out.contains("rank 1 died"), "rank " + r + " does not name rank 1: " + out);
                System.out.println(out.lines().filter(l -> l.contains("stopped")).findFirst().orElse(""));
            }
            System.out.printf("others stopped %.1f s after rank 1 was killed%n", (System.nanoTime() - killed) / 1e9);
        } finally {
            for (Process p : ps) p.destroyForcibly();
            InProcessRing.deleteTree(job);
        }
    }

    @Test
    void theLauncherPrefixesEveryLineWithTheRankAndSetsTheEnvironment() throws Exception {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        int code = Launcher.run(workerCommand("echo"), Launcher.Spec.local(2),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        String o = out.toString(StandardCharsets.UTF_8), e = err.toString(StandardCharsets.UTF_8);
        assertEquals(0, code, o + e);
        for (int r = 0; r < 2; r++) {
            assertTrue(o.contains("[rank " + r + "] hello from " + r + "\n"), o);
            assertTrue(o.contains("[rank " + r + "] world size 2 local rank " + r + "\n"), o);
            assertTrue(e.contains("[rank " + r + "] stderr of " + r + "\n"), e);
        }
        for (String line : o.split("\n")) assertTrue(line.startsWith("[rank "), line);
        assertNoJobDirectoriesLeft();
    }

    @Test
    void theLauncherStopsEveryWorkerWhenOneDiesAndNamesIt() throws Exception {
        var out = new ByteArrayOutputStream();
        var err = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        int code = Launcher.run(workerCommand("die"), Launcher.Spec.local(3),
                new PrintStream(out, true, StandardCharsets.UTF_8), new PrintStream(err, true, StandardCharsets.UTF_8));
        double seconds = (System.nanoTime() - t0) / 1e9;
        String e = err.toString(StandardCharsets.UTF_8);
        assertEquals(7, code);
        assertTrue(e.contains("rank 1 exited with code 7; stopping ranks [0, 2]"), e);
        assertTrue(seconds < 30, "the others were not stopped promptly: " + seconds + " s");
        assertNoJobDirectoriesLeft();
    }

    private static void assertNoJobDirectoriesLeft() throws Exception {
        try (Stream<Path> s = Files.list(DistEnv.jobBaseDir())) {
            List<Path> left = s.filter(p -> p.getFileName().toString().startsWith("nanochat4j-job-")).toList();
            // other test runs on this machine may be running; ours are gone when none is older than this JVM's
            for (Path p : left) {
                assertFalse(Files.getLastModifiedTime(p).toMillis() > ProcessHandle.current().info().startInstant()
                        .map(java.time.Instant::toEpochMilli).orElse(0L), "job directory left behind: " + p);
            }
        }
    }
}
