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
import nanochat4j.train.dist.Collective;
import nanochat4j.train.dist.Launcher;
import nanochat4j.train.dist.ReduceOp;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench allreduce --nproc N --size MB [--json]}: fp32 ring all-reduce over N worker processes of
 * this host (Aeron IPC), for sizes 1 KB … --size MB, with nccl-tests' definitions: algbw = size / time, busbw =
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

    /** Per size: wall seconds, and CPU seconds of the calling thread, of one all-reduce and of one memcpy. */
    private record Row(long bytes, double seconds, double memcpySeconds, double cpuSeconds, double memcpyCpuSeconds,
                       int nproc) {
        double algbw() {
            return bytes / seconds / 1e9;
        }

        double busbw() {
            return algbw() * 2.0 * (nproc - 1) / nproc;
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
                    Double.parseDouble(f[3]), Double.parseDouble(f[4]), nproc));
        }
        if (json) {
            for (Row r : rows) {
                System.out.printf(Locale.ROOT, "{\"nproc\": %d, \"size_mb\": %s, \"time_us\": %.2f, \"algbw_gbps\": %.3f, "
                                + "\"bus_gbps\": %.3f, \"memcpy_gbps\": %.3f, \"bus_over_memcpy_cpu\": %.3f}%n", nproc, sizeMb(r.bytes),
                        r.seconds * 1e6, r.algbw(), r.busbw(), r.memcpy(), r.cpuRatio());
            }
            System.out.printf(Locale.ROOT, "{\"nproc\": %d, \"size_bytes\": 8, \"latency_us\": %.2f}%n", nproc, latency * 1e6);
            return;
        }
        System.out.printf(Locale.ROOT, "fp32 ring all-reduce, %d processes on one host: shared-memory links, Aeron for control (GB/s = 1e9 bytes/s)%n", nproc);
        System.out.printf(Locale.ROOT, "%12s %12s %11s %11s %12s %11s %11s%n", "size", "time (us)", "algbw", "busbw",
                "memcpy", "bus/memcpy", "(CPU time)");
        for (Row r : rows) {
            System.out.printf(Locale.ROOT, "%12s %12.1f %11.2f %11.2f %12.2f %10.0f%% %10.0f%%%n", human(r.bytes),
                    r.seconds * 1e6, r.algbw(), r.busbw(), r.memcpy(), 100 * r.busbw() / r.memcpy(), 100 * r.cpuRatio());
        }
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
            float[] copy = c.rank() == 0 ? new float[buf.length] : null;
            float[] time = new float[1];
            for (long bytes = 1024; bytes <= maxBytes; bytes *= 2) {
                int n = (int) (bytes / 4);
                int iters = (int) Math.max(3, Math.min(1000, (256L << 20) / bytes));
                for (int i = 0; i < Math.min(iters, 20); i++) c.allReduce(buf, 0, n, ReduceOp.SUM); // warm-up
                double best = Double.MAX_VALUE, bestMemcpy = Double.MAX_VALUE;
                float[] cpu = new float[1];
                double bestCpu = Double.MAX_VALUE, bestMemcpyCpu = Double.MAX_VALUE;
                for (int round = 0; round < ROUNDS; round++) { // best of rounds: the machine may be shared
                    c.barrier();
                    long t0 = System.nanoTime(), c0 = THREADS.getCurrentThreadCpuTime();
                    for (int i = 0; i < iters; i++) c.allReduce(buf, 0, n, ReduceOp.SUM);
                    time[0] = (float) ((System.nanoTime() - t0) / 1e9 / iters);
                    cpu[0] = (float) ((THREADS.getCurrentThreadCpuTime() - c0) / 1e9 / iters);
                    c.allReduce(time, 0, 1, ReduceOp.MAX); // the slowest rank's time
                    c.allReduce(cpu, 0, 1, ReduceOp.MAX);
                    best = Math.min(best, time[0]);
                    bestCpu = Math.min(bestCpu, cpu[0]);
                    if (c.rank() == 0) {
                        long m0 = System.nanoTime(), mc0 = THREADS.getCurrentThreadCpuTime();
                        memcpy(buf, copy, n, iters);
                        bestMemcpy = Math.min(bestMemcpy, (System.nanoTime() - m0) / 1e9 / iters);
                        bestMemcpyCpu = Math.min(bestMemcpyCpu, (THREADS.getCurrentThreadCpuTime() - mc0) / 1e9 / iters);
                    }
                }
                c.barrier();
                out.append(bytes).append(' ').append(best).append(' ').append(bestMemcpy).append(' ').append(bestCpu)
                        .append(' ').append(bestMemcpyCpu).append('\n');
            }
            float[] tiny = new float[2];
            for (int i = 0; i < 200; i++) c.allReduce(tiny, 0, 2, ReduceOp.SUM);
            double latency = Double.MAX_VALUE;
            for (int round = 0; round < ROUNDS; round++) {
                c.barrier();
                int iters = 1000;
                long t0 = System.nanoTime();
                for (int i = 0; i < iters; i++) c.allReduce(tiny, 0, 2, ReduceOp.SUM);
                time[0] = (float) ((System.nanoTime() - t0) / 1e9 / iters);
                c.allReduce(time, 0, 1, ReduceOp.MAX);
                latency = Math.min(latency, time[0]);
            }
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

    private static void memcpy(float[] src, float[] dst, int n, int iters) {
        for (int i = 0; i < iters; i++) System.arraycopy(src, 0, dst, 0, n);
    }
}
