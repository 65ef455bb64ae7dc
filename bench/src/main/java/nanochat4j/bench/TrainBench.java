package nanochat4j.bench;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import nanochat4j.autograd.OpTimes;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.train.base.DepthDial;
import nanochat4j.train.optim.MuonAdamW;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench train}: one full base-train step on random tokens — forward, backward, MuonAdamW step,
 * zero grads — with runcpu.sh's sizing (head dim 64, window pattern L, vocab 32768, width = depth·64) and
 * base_train's default LRs scaled for that depth by the depth dial (Power-Lines batch, sqrt(B/B_REF) LR scale,
 * T_epoch weight decay). The step time is the median of {@code --iters} steps after {@code --warmup}.
 * Peak memory is the process's peak resident set ({@code VmHWM} in /proc/self/status) on Linux; elsewhere the
 * JVM's committed heap + non-heap, flagged as such. {@code cpu_s_per_step} is the median process CPU time of a step
 * (all threads), which tells a change in work apart from a loaded machine. The human output splits the step into forward, backward,
 * optimizer and zero grads; with {@code -Dnanochat4j.opTimes=true} it adds the tape's per-op profile.
 */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Time a full training step (forward, backward, MuonAdamW) in tokens/s, with peak memory.")
public final class TrainBench implements Callable<Integer> {
    @Option(names = "--depth", description = "model depth (default ${DEFAULT-VALUE})")
    int depth = 4;
    @Option(names = "--batch", description = "sequences per step (default ${DEFAULT-VALUE})")
    int batch = 8;
    @Option(names = "--seq", description = "sequence length (default ${DEFAULT-VALUE})")
    int seq = 512;
    @Option(names = "--vocab", description = "vocab size (default ${DEFAULT-VALUE})")
    int vocab = 32768;
    @Option(names = "--warmup", description = "untimed steps first (default ${DEFAULT-VALUE})")
    int warmup = 2;
    @Option(names = "--iters", description = "timed steps, median reported (default ${DEFAULT-VALUE})")
    int iters = 5;
    @Option(names = "--json", description = "one JSON object per line")
    boolean json;

    PrintStream out = System.out;

    @Override
    public Integer call() {
        if (warmup < 0 || iters < 1) throw new IllegalArgumentException("--warmup must be >= 0 and --iters >= 1");
        // base_train's defaults: aspect 64, ratio 12, derived total batch, wd 0.28; runcpu's head dim 64 and window L
        DepthDial dial = DepthDial.derive(depth, 64, 64, seq, "L", vocab, 12, -1, -1, -1, 0.28);
        GPTConfig cfg = dial.config();
        GPT model = GPT.create(cfg, 42);
        double s = dial.batchLrScale();
        MuonAdamW opt = new MuonAdamW(model.paramGroups(0.008 * s, 0.3 * s, 0.02 * s, dial.weightDecay(), 0.5 * s));
        SplittableRandom r = new SplittableRandom(1);
        int[] x = new int[batch * seq], y = new int[batch * seq];
        for (int i = 0; i < x.length; i++) {
            x[i] = r.nextInt(vocab);
            y[i] = r.nextInt(vocab);
        }
        Tensor idx = Tensor.ofInts(x, batch, seq), targets = Tensor.ofInts(y, batch, seq);
        if (!json) {
            out.printf(Locale.ROOT, "train d%d (C=%d, H=%d, seq %d, vocab %d, window %s), batch %d, %d threads%n", depth, cfg.nEmbd(),
                    cfg.nHead(), seq, vocab, cfg.windowPattern(), batch, Parallel.threads());
        }
        double[][] phases = new double[4][iters]; // forward, backward, optimizer, zero grads
        for (int i = 0; i < warmup; i++) step(model, opt, idx, targets, new double[4][1], 0);
        if (OpTimes.ENABLED) OpTimes.reset();
        double[] t = new double[iters], cpu = new double[iters];
        float loss = 0;
        for (int i = 0; i < iters; i++) {
            long c0 = processCpuNanos(), t0 = System.nanoTime();
            loss = step(model, opt, idx, targets, phases, i);
            t[i] = (System.nanoTime() - t0) / 1e9;
            cpu[i] = (processCpuNanos() - c0) / 1e9;
        }
        if (!Float.isFinite(loss)) throw new IllegalStateException("train bench: loss is " + loss + " after " + (warmup + iters) + " steps");
        double stepS = median(t);
        double tokPerSec = (double) batch * seq / stepS;
        PeakMemory mem = PeakMemory.read();
        if (json) {
            out.printf(Locale.ROOT, "{\"depth\": %d, \"batch\": %d, \"seq\": %d, \"step_s\": %.6f, \"tok_per_sec\": %.1f, "
                    + "\"cpu_s_per_step\": %.3f, \"peak_rss_gb\": %.3f, \"peak_rss_source\": \"%s\"}%n", depth, batch, seq, stepS,
                    tokPerSec, median(cpu), mem.gb(), mem.source());
        } else {
            out.printf(Locale.ROOT, "step %.3f s  (%.0f tok/s), %.3f CPU s, loss %.4f%n", stepS, tokPerSec, median(cpu), loss);
            out.printf(Locale.ROOT, "  forward %.3f s, backward %.3f s, optimizer %.3f s, zero grads %.3f s (medians)%n",
                    median(phases[0]), median(phases[1]), median(phases[2]), median(phases[3]));
            if (OpTimes.ENABLED) out.print(OpTimes.table(iters));
            out.printf(Locale.ROOT, "peak memory %.2f GB (%s)%n", mem.gb(), mem.source());
        }
        return 0;
    }

    /**
     * One base-train step with a single micro-batch: forward, backward, optimizer, zero grads; the phases' seconds
     * go to {@code phases[0..3][i]}. Returns the loss.
     */
    private static float step(GPT model, MuonAdamW opt, Tensor idx, Tensor targets, double[][] phases, int i) {
        if (OpTimes.ENABLED) OpTimes.mark();
        long t0 = System.nanoTime();
        var loss = model.loss(idx, targets, Reduction.MEAN);
        float v = loss.item();
        long t1 = System.nanoTime();
        loss.backward();
        long t2 = System.nanoTime();
        opt.step();
        long t3 = System.nanoTime();
        opt.zeroGrad();
        long t4 = System.nanoTime();
        phases[0][i] = (t1 - t0) / 1e9;
        phases[1][i] = (t2 - t1) / 1e9;
        phases[2][i] = (t3 - t2) / 1e9;
        phases[3][i] = (t4 - t3) / 1e9;
        return v;
    }

    /**
     * CPU time of the whole process (all threads, GC and JIT included) in ns, or 0 where the JVM cannot tell. On a
     * machine shared with other work it shows a change in the step's work where wall-clock time is too noisy.
     */
    private static long processCpuNanos() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os
                ? Math.max(0, os.getProcessCpuTime()) : 0;
    }

    private static double median(double[] a) {
        double[] t = a.clone();
        Arrays.sort(t);
        int n = t.length;
        return n % 2 == 1 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
    }

    /** The process's peak memory in GB and where the figure comes from. */
    record PeakMemory(double gb, String source) {
        static PeakMemory read() {
            Path status = Path.of("/proc/self/status");
            if (Files.isReadable(status)) {
                try {
                    for (String line : Files.readAllLines(status)) {
                        if (line.startsWith("VmHWM:")) { // "VmHWM:   123456 kB"
                            long kb = Long.parseLong(line.substring(6).trim().split("\\s+")[0]);
                            return new PeakMemory(kb * 1024 / 1e9, "VmHWM");
                        }
                    }
                } catch (IOException | RuntimeException e) {
                    // fall through to the JVM's view
                }
            }
            var mx = ManagementFactory.getMemoryMXBean();
            long committed = mx.getHeapMemoryUsage().getCommitted() + mx.getNonHeapMemoryUsage().getCommitted();
            return new PeakMemory(committed / 1e9, "JVM committed heap+non-heap (no /proc/self/status)");
        }
    }
}
