package nanochat4j.train.collective;

import io.aeron.driver.MediaDriver;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.IntSupplier;
import java.util.stream.Stream;
import nanochat4j.tensor.cuda.Driver;

/**
 * torchrun for nanochat4j: starts this node's worker processes with the environment {@link DistEnv} reads, runs
 * the host's one Aeron media driver (in this process, in a per-job directory), prefixes every output line with
 * {@code [rank r]}, and when one worker fails stops the others (SIGTERM, then SIGKILL after a grace period) with a
 * message naming the rank and its exit code. On SIGINT/SIGTERM it stops the workers the same way. The job directory
 * is deleted at the end, whatever happened.
 */
public final class Launcher {
    private Launcher() {}

    /** This node's part of a job: nproc workers on node nodeRank of nodes (hosts, in node-rank order). */
    public record Spec(int nproc, List<String> nodes, int nodeRank, int masterPort) {
        public Spec {
            nodes = List.copyOf(nodes);
            if (nproc < 1) throw new IllegalArgumentException("--nproc " + nproc + " must be >= 1");
            if (nodes.isEmpty()) throw new IllegalArgumentException("--nodes must list at least one host");
            if (nodeRank < 0 || nodeRank >= nodes.size())
                throw new IllegalArgumentException("--node-rank " + nodeRank + " outside [0, " + nodes.size() + ") for --nodes " + nodes);
        }

        public static Spec local(int nproc) {
            return new Spec(nproc, List.of("127.0.0.1"), 0, DistEnv.DEFAULT_MASTER_PORT);
        }
    }

    private static final long GRACE_MS = 10_000;

    /**
     * Runs {@code command} (a full command line; the worker's environment gets the rank variables) as spec.nproc
     * workers and waits for all of them. Returns 0 when every worker succeeded, else the exit code of the first that
     * failed.
     */
    public static int run(List<String> command, Spec spec, PrintStream out, PrintStream err) throws IOException {
        Path jobDir = Files.createTempDirectory(DistEnv.jobBaseDir(), "nanochat4j-job-");
        List<Process> workers = new ArrayList<>();
        List<Thread> pumps = new ArrayList<>();
        MediaDriver[] driver = {null};
        AtomicBoolean cleaned = new AtomicBoolean();
        Runnable cleanUp = () -> {
            if (!cleaned.compareAndSet(false, true)) return;
            stopAll(workers, err, null);
            if (driver[0] != null) driver[0].close();
            deleteTree(jobDir);
        };
        // SIGINT/SIGTERM: the JVM runs the hooks and exits, so the hook does the whole clean-up
        Thread hook = new Thread(() -> {
            if (cleaned.get()) return;
            stopping = true;
            stopAll(workers, err, "launcher interrupted or terminated");
            cleanUp.run();
        }, "launch-shutdown");
        try {
            driver[0] = LocalDriver.launch(jobDir.resolve("aeron"));
            Runtime.getRuntime().addShutdownHook(hook);
            int world = spec.nproc() * spec.nodes().size();
            String visible = System.getenv("CUDA_VISIBLE_DEVICES");
            int gpus = visible == null ? gpuCount() : 0; // the launcher's own list, where set, says which GPUs
            for (int local = 0; local < spec.nproc(); local++) {
                int rank = spec.nodeRank() * spec.nproc() + local;
                ProcessBuilder pb = new ProcessBuilder(command);
                Map<String, String> env = pb.environment();
                env.put("RANK", Integer.toString(rank));
                env.put("WORLD_SIZE", Integer.toString(world));
                env.put("LOCAL_RANK", Integer.toString(local));
                env.put("LOCAL_WORLD_SIZE", Integer.toString(spec.nproc()));
                env.put("NODE_RANK", Integer.toString(spec.nodeRank()));
                env.put("MASTER_ADDR", spec.nodes().getFirst());
                env.put("MASTER_PORT", Integer.toString(spec.masterPort()));
                env.put("NANOCHAT4J_NODES", String.join(",", spec.nodes()));
                env.put("NANOCHAT4J_AERON_DIR", jobDir.resolve("aeron").toString());
                String gpu = gpuFor(local, visible, gpus);
                if (gpu != null) env.put("CUDA_VISIBLE_DEVICES", gpu); // the worker's "GPU 0" is its own GPU
                Process p = pb.start();
                p.getOutputStream().close(); // workers read no input
                synchronized (workers) {
                    workers.add(p);
                }
                pumps.add(pump(p.getInputStream(), "[rank " + rank + "] ", out));
                pumps.add(pump(p.getErrorStream(), "[rank " + rank + "] ", err));
            }
            int code = waitAll(workers, spec, err);
            for (Thread t : pumps) t.join();
            return code;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            stopAll(workers, err, "interrupted");
            return 130;
        } finally {
            cleanUp.run();
            try {
                Runtime.getRuntime().removeShutdownHook(hook);
            } catch (IllegalStateException shuttingDown) {
                // the hook is running or has run: nothing to remove
            }
        }
    }

    /** Set when the launcher itself is being stopped: workers dying then is expected, not news. */
    private static volatile boolean stopping;

    /**
     * The CUDA_VISIBLE_DEVICES of local worker {@code local}, as torchrun users set it: the local-th of the GPUs the
     * launcher may use (its own CUDA_VISIBLE_DEVICES list, else the {@code gpus} of this machine), round-robin when
     * there are more workers than GPUs (several workers then share a GPU); null where there is no GPU (CPU runs
     * leave the variable alone) and where the launcher's own variable is set but empty (CUDA then sees no GPU, and
     * neither may the workers).
     */
    static String gpuFor(int local, String visible, int gpus) {
        if (visible != null) {
            if (visible.isBlank()) return null;
            String[] ids = visible.split(",");
            return ids[local % ids.length].trim();
        }
        return gpus > 0 ? Integer.toString(local % gpus) : null;
    }

    /** GPUs on this machine: {@link #gpuCount(Path, IntSupplier)} of the driver's /proc folder and the CUDA driver. */
    static int gpuCount() {
        return gpuCount(Path.of("/proc/driver/nvidia/gpus"), Launcher::cudaDeviceCount);
    }

    /**
     * GPUs the NVIDIA driver exposes: one folder each under {@code procGpus} (no CUDA call in the launcher); where that
     * folder is absent or empty (containers that do not mount it), the CUDA driver's device count; 0 without either.
     */
    static int gpuCount(Path procGpus, IntSupplier cudaCount) {
        try (var s = Files.list(procGpus)) {
            int n = (int) s.count();
            if (n > 0) return n;
        } catch (IOException | RuntimeException e) {
            // no /proc entry: ask CUDA
        }
        try {
            return Math.max(0, cudaCount.getAsInt());
        } catch (RuntimeException | LinkageError e) {
            return 0;
        }
    }

    /** cuDeviceGetCount (throws where there is no usable driver). */
    private static int cudaDeviceCount() {
        Driver d = Driver.load();
        d.init();
        return d.deviceCount();
    }

    /** Waits for every worker; on the first failure stops the rest. Returns the job's exit code. */
    private static int waitAll(List<Process> workers, Spec spec, PrintStream err) throws InterruptedException {
        var exited = new LinkedBlockingQueue<Integer>();
        for (int i = 0; i < workers.size(); i++) {
            int local = i;
            workers.get(i).onExit().thenRun(() -> exited.add(local));
        }
        int firstFailure = 0;
        for (int done = 0; done < workers.size(); done++) {
            int local = exited.take();
            int code = workers.get(local).exitValue();
            if (code != 0 && firstFailure == 0 && stopping) firstFailure = code;
            if (code != 0 && firstFailure == 0) {
                firstFailure = code;
                int rank = spec.nodeRank() * spec.nproc() + local;
                List<Integer> others = new ArrayList<>();
                for (int j = 0; j < workers.size(); j++)
                    if (workers.get(j).isAlive()) others.add(spec.nodeRank() * spec.nproc() + j);
                err.println("nanochat4j launch: rank " + rank + " exited with code " + code + describe(code)
                        + (others.isEmpty() ? "" : "; stopping rank" + (others.size() > 1 ? "s " : " ") + others));
                stopAll(workers, err, null);
            }
        }
        return firstFailure;
    }

    private static String describe(int code) {
        if (code <= 128 || code > 128 + 64) return "";
        String[] names = {"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE", "SIGKILL",
                "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM"};
        int sig = code - 128;
        return " (killed by " + (sig < names.length ? names[sig] : "signal " + sig) + ")";
    }

    /** SIGTERM to every live worker, then SIGKILL to those still alive after the grace period. */
    private static void stopAll(List<Process> workers, PrintStream err, String why) {
        List<Process> live;
        synchronized (workers) {
            live = workers.stream().filter(Process::isAlive).toList();
        }
        if (live.isEmpty()) return;
        if (why != null) err.println("nanochat4j launch: " + why + "; stopping " + live.size() + " worker(s)");
        for (Process p : live) p.destroy();
        long deadline = System.currentTimeMillis() + GRACE_MS;
        for (Process p : live) {
            try {
                if (!p.waitFor(Math.max(1, deadline - System.currentTimeMillis()), TimeUnit.MILLISECONDS)) {
                    p.destroyForcibly();
                    p.waitFor(5, TimeUnit.SECONDS);
                }
            } catch (InterruptedException e) {
                p.destroyForcibly();
            }
        }
    }

    private static Thread pump(InputStream in, String prefix, PrintStream to) {
        Thread t = new Thread(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
                for (String line; (line = r.readLine()) != null; ) to.println(prefix + line);
            } catch (IOException e) {
                to.println(prefix + "(output lost: " + e.getMessage() + ")");
            }
        }, "launch-pump");
        t.setDaemon(true);
        t.start();
        return t;
    }

    /**
     * The command line that starts a JVM like this one (same java, same JVM flags, same jar or classpath and main
     * class), to which the caller appends the nanochat4j sub-command and its arguments.
     */
    public static List<String> thisJvmCommand() {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String a : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (a.startsWith("-agentlib:jdwp") || a.startsWith("-Xrunjdwp")) continue; // one debugger port per JVM
            cmd.add(a);
        }
        String launched = System.getProperty("sun.java.command", "").trim();
        String first = launched.isEmpty() ? "" : launched.split(" ")[0];
        if (first.endsWith(".jar")) {
            cmd.add("-jar");
            cmd.add(first);
        } else {
            cmd.add("-cp");
            cmd.add(System.getProperty("java.class.path"));
            cmd.add(first.isEmpty() ? "nanochat4j.bench.Main" : first);
        }
        return cmd;
    }

    static void deleteTree(Path p) {
        if (!Files.exists(p)) return;
        try (Stream<Path> s = Files.walk(p)) {
            for (Path q : s.sorted(Comparator.reverseOrder()).toList()) Files.deleteIfExists(q);
        } catch (IOException e) {
            System.err.println("nanochat4j launch: could not delete " + p + ": " + e.getMessage());
        }
    }
}
