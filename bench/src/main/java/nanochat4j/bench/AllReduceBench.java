package nanochat4j.bench;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.Launcher;
import nanochat4j.train.collective.ReduceOp;
import nanochat4j.train.collective.SharedFloats;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench allreduce --nproc N --size MB [--json]}: fp32 all-reduce over N worker processes of this
 * host, for sizes 1 KB … --size MB, of a {@link SharedFloats} buffer (the ranks read each other's buffers: what
 * training reduces its Muon stacks in) and of a heap array (the ring over shared-memory queues: what the AdamW
 * gradients go through), with nccl-tests' definitions: algbw = size / time, busbw =
 * algbw · 2(N−1)/N (the per-link traffic, comparable across N); time = the slowest rank's mean over a round of
 * iterations, best of 5 rounds (the machine may be shared). Between rounds, rank 0 measures single-process memcpy
 * bandwidth (System.arraycopy of the same size, bytes / time, best of the same rounds) while the others wait; then
 * the latency of an 8-byte all-reduce. The workers are started with {@link Launcher};
 * rank 0 writes its results to a file this process prints.
 */
@Command(name = "allreduce", mixinStandardHelpOptions = true,
        description = "Ring all-reduce bus bandwidth (nccl-tests' definition) and latency, against memcpy bandwidth.")
public final class AllReduceBench implements Callable<Integer> {

    @Option(names = "--nproc", description = "Worker processes (default: ${DEFAULT-VALUE}).")
    int nproc = 2;

    @Option(names = "--size", description = "Largest size in MB (default: ${DEFAULT-VALUE}); sizes double from 1 KB.")
    double sizeMb = 256;

    @Option(names = "--json", description = "One JSON object per line: per size {nproc, size_mb, bus_gbps, memcpy_gbps, …}, then {nproc, latency_us}.")
    boolean json;

    @Option(names = "--worker-out", hidden = true, description = "Set by the parent: where rank 0 writes its results.")
    Path workerOut;

    private static final int ROUNDS = 5;

    /**
     * Per size: wall seconds, and CPU seconds of the calling thread, of one all-reduce of the shared buffer and of one
     * memcpy; wall seconds of one all-reduce of the heap array.
     */
    private record Row(long bytes, double seconds, double memcpySeconds, double cpuSeconds, double memcpyCpuSeconds,
                       double heapSeconds, int nproc) {
        double algbw() {
            return bytes / seconds / 1e9;
        }

        double busbw() {
            return algbw() * 2.0 * (nproc - 1) / nproc;
        }

        double heapBusbw() {
            return bytes / heapSeconds / 1e9 * 2.0 * (nproc - 1) / nproc;
        }

        double memcpy() {
            return bytes / memcpySeconds / 1e9;
        }

        /** Bus bandwidth per CPU-second over memcpy bytes per CPU-second: the efficiency when cores are shared. */
        double cpuRatio() {
            return (bytes / cpuSeconds * 2.0 * (nproc - 1) / nproc) / (bytes / memcpyCpuSeconds);
        }
    }

    @Override
    public Integer call() throws Exception {
        if (System.getenv("RANK") != null) return worker();
        if (nproc < 1) throw new IllegalArgumentException("--nproc " + nproc + " must be >= 1");
        if (sizeMb * (1 << 20) < 1024) throw new IllegalArgumentException("--size " + sizeMb + " MB is below the smallest size, 1 KB");
        Path results = Files.createTempFile("nanochat4j-allreduce-", ".txt");
        try {
            List<String> cmd = new ArrayList<>(Launcher.thisJvmCommand());
            cmd.addAll(List.of("bench", "allreduce", "--size", Double.toString(sizeMb), "--worker-out", results.toString()));
            int code = Launcher.run(cmd, Launcher.Spec.local(nproc), System.err, System.err);
            if (code != 0) return code;
            print(Files.readAllLines(results, StandardCharsets.UTF_8));
            return 0;
        } finally {
            Files.deleteIfExists(results);
        }
    }

    private void print(List<String> lines) {
        double latency = 0;
        List<Row> rows = new ArrayList<>();
        for (String l : lines) {
            String[] f = l.trim().split(" ");
            if (f[0].equals("latency")) latency = Double.parseDouble(f[1]);
            else rows.add(new Row(Long.parseLong(f[0]), Double.parseDouble(f[1]), Double.parseDouble(f[2]),
                    Double.parseDouble(f[3]), Double.parseDouble(f[4]), Double.parseDouble(f[5]), nproc));
        }
        if (json) {
            for (Row r : rows) {
                System.out.printf(Locale.ROOT, "{\"nproc\": %d, \"size_mb\": %s, \"time_us\": %.2f, \"algbw_gbps\": %.3f, "
                                + "\"bus_gbps\": %.3f, \"memcpy_gbps\": %.3f, \"bus_over_memcpy_cpu\": %.3f, "
                                + "\"heap_time_us\": %.2f, \"heap_bus_gbps\": %.3f}%n", nproc, sizeMb(r.bytes),
                        r.seconds * 1e6, r.algbw(), r.busbw(), r.memcpy(), r.cpuRatio(), r.heapSeconds * 1e6, r.heapBusbw());
            }
            System.out.printf(Locale.ROOT, "{\"nproc\": %d, \"size_bytes\": 8, \"latency_us\": %.2f}%n", nproc, latency * 1e6);
            return;
        }
        System.out.printf(Locale.ROOT, "fp32 all-reduce, %d processes on one host (GB/s = 1e9 bytes/s)%n", nproc);
        System.out.printf(Locale.ROOT, "%12s %12s %11s %11s %12s %11s %11s %11s %11s%n", "size", "time (us)", "algbw", "busbw",
                "memcpy", "bus/memcpy", "(CPU time)", "heap busbw", "heap/memcpy");
        for (Row r : rows) {
            System.out.printf(Locale.ROOT, "%12s %12.1f %11.2f %11.2f %12.2f %10.0f%% %10.0f%% %11.2f %10.0f%%%n", human(r.bytes),
                    r.seconds * 1e6, r.algbw(), r.busbw(), r.memcpy(), 100 * r.busbw() / r.memcpy(), 100 * r.cpuRatio(),
                    r.heapBusbw(), 100 * r.heapBusbw() / r.memcpy());
        }
        System.out.println("busbw: a shared buffer (ranks read each other's); heap: a float[] (ring over shared-memory queues)");
        System.out.println("(CPU time): the same ratio from the CPU seconds the rank and the copy used, which shared cores do not distort");
        System.out.printf(Locale.ROOT, "latency of an 8-byte all-reduce: %.1f us%n", latency * 1e6);
    }

    private static String sizeMb(long bytes) {
        double mb = bytes / (double) (1 << 20);
        return mb == Math.rint(mb) ? Long.toString((long) mb) : Double.toString(mb);
    }

    private static String human(long b) {
        return b >= 1 << 20 ? b / (1 << 20) + " MB" : b >= 1024 ? b / 1024 + " KB" : b + " B";
    }

    private int worker() throws Exception {
        long maxBytes = Math.max(1024, (long) (sizeMb * (1 << 20)) / 4 * 4);
        if (maxBytes / 4 > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("--size " + sizeMb + " MB is too large");
        StringBuilder out = new StringBuilder();
        try (Collective c = Collective.fromEnvironment("bench-allreduce")) {
            float[] buf = new float[(int) (maxBytes / 4)];
            SharedFloats shared = c.sharedFloats(buf.length);
            float[] copy = c.rank() == 0 ? new float[buf.length] : null;
            for (long bytes = 1024; bytes <= maxBytes; bytes *= 2) {
                int n = (int) (bytes / 4);
                int iters = (int) Math.max(3, Math.min(1000, (256L << 20) / bytes));
                for (int i = 0; i < Math.min(iters, 20); i++) { // warm-up
                    c.allReduce(shared, 0, n, ReduceOp.SUM);
                    c.allReduce(buf, 0, n, ReduceOp.SUM);
                }
                double[] best = {Double.MAX_VALUE, Double.MAX_VALUE, Double.MAX_VALUE}; // shared wall, CPU; heap wall
                double bestMemcpy = Double.MAX_VALUE, bestMemcpyCpu = Double.MAX_VALUE;
                for (int round = 0; round < ROUNDS; round++) { // best of rounds: the machine may be shared
                    double[] sharedTime = slowestRank(c, iters, () -> c.allReduce(shared, 0, n, ReduceOp.SUM));
                    double[] heapTime = slowestRank(c, iters, () -> c.allReduce(buf, 0, n, ReduceOp.SUM));
                    best[0] = Math.min(best[0], sharedTime[0]);
                    best[1] = Math.min(best[1], sharedTime[1]);
                    best[2] = Math.min(best[2], heapTime[0]);
                    if (c.rank() == 0) {
                        long m0 = System.nanoTime(), mc0 = THREADS.getCurrentThreadCpuTime();
                        memcpy(buf, copy, n, iters);
                        bestMemcpy = Math.min(bestMemcpy, (System.nanoTime() - m0) / 1e9 / iters);
                        bestMemcpyCpu = Math.min(bestMemcpyCpu, (THREADS.getCurrentThreadCpuTime() - mc0) / 1e9 / iters);
                    }
                }
                c.barrier();
                out.append(bytes).append(' ').append(best[0]).append(' ').append(bestMemcpy).append(' ').append(best[1])
                        .append(' ').append(bestMemcpyCpu).append(' ').append(best[2]).append('\n');
            }
            float[] tiny = new float[2];
            for (int i = 0; i < 200; i++) c.allReduce(tiny, 0, 2, ReduceOp.SUM);
            double latency = Double.MAX_VALUE;
            for (int round = 0; round < ROUNDS; round++)
                latency = Math.min(latency, slowestRank(c, 1000, () -> c.allReduce(tiny, 0, 2, ReduceOp.SUM))[0]);
            out.append("latency ").append(latency).append('\n');
            if (c.rank() == 0 && workerOut != null) Files.writeString(workerOut, out, StandardCharsets.UTF_8);
            else if (c.rank() == 0) { // started by `nanochat4j launch`: rank 0 reports
                nproc = c.worldSize();
                print(List.of(out.toString().split("\n")));
            }
        }
        return 0;
    }

    private static final ThreadMXBean THREADS = ManagementFactory.getThreadMXBean();

    /** Wall and CPU seconds of one call of {@code allReduce}, means over iters calls, of the slowest rank. */
    private static double[] slowestRank(Collective c, int iters, Runnable allReduce) {
        float[] time = new float[2];
        c.barrier();
        long t0 = System.nanoTime(), c0 = THREADS.getCurrentThreadCpuTime();
        for (int i = 0; i < iters; i++) allReduce.run();
        time[0] = (float) ((System.nanoTime() - t0) / 1e9 / iters);
        time[1] = (float) ((THREADS.getCurrentThreadCpuTime() - c0) / 1e9 / iters);
        c.allReduce(time, 0, 2, ReduceOp.MAX);
        return new double[] {time[0], time[1]};
    }

    private static void memcpy(float[] src, float[] dst, int n, int iters) {
        for (int i = 0; i < iters; i++) System.arraycopy(src, 0, dst, 0, n);
    }
}
