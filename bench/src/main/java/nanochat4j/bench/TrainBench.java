package nanochat4j.bench;

import static nanochat4j.bench.StepBenchOptions.median;

import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.autograd.OpTimes;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.train.base.BaseTrain;
import nanochat4j.train.base.BaseTrainOptions;
import nanochat4j.train.base.DepthDial;
import nanochat4j.train.optim.MuonAdamW;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

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
    @Mixin
    StepBenchOptions s;

    PrintStream out = System.out;

    @Override
    public Integer call() {
        s.check();
        int depth = s.depth, batch = s.batch, seq = s.seq, vocab = s.vocab, warmup = s.warmup, iters = s.iters;
        // base_train's defaults at runcpu.sh's shape (head dim 64, window pattern L)
        BaseTrainOptions o = CommandLine.populateCommand(new BaseTrainOptions(), "--depth=" + depth, "--head-dim=64",
                "--max-seq-len=" + seq, "--window-pattern=L");
        DepthDial dial = DepthDial.derive(o, vocab);
        GPTConfig cfg = dial.config();
        GPT model = GPT.create(cfg, 42);
        MuonAdamW opt = new MuonAdamW(BaseTrain.paramGroups(model, o, dial));
        StepBenchOptions.Batch b = s.randomBatch();
        Tensor idx = b.inputs(), targets = b.targets();
        if (!s.json) {
            out.printf(Locale.ROOT, "train d%d (C=%d, H=%d, seq %d, vocab %d, window %s), batch %d, %d threads%n", depth, cfg.nEmbd(),
                    cfg.nHead(), seq, vocab, cfg.windowPattern(), batch, Parallel.threads());
        }
        double[][] phases = new double[4][iters]; // forward, backward, optimizer, zero grads
        for (int i = 0; i < warmup; i++) step(model, opt, idx, targets, new double[4][1], 0);
        if (OpTimes.ENABLED) OpTimes.reset();
        double[] t = new double[iters], cpu = new double[iters];
        float loss = 0;
        long deopts;
        String storm;
        try (Deopts jit = Deopts.start()) {
            Deopts.Window w = jit.open();
            for (int i = 0; i < iters; i++) {
                long c0 = processCpuNanos(), t0 = System.nanoTime();
                loss = step(model, opt, idx, targets, phases, i);
                t[i] = (System.nanoTime() - t0) / 1e9;
                cpu[i] = (processCpuNanos() - c0) / 1e9;
            }
            deopts = jit.close(w);
            storm = Deopts.note(w, "the timed steps");
        }
        if (!Float.isFinite(loss)) throw new IllegalStateException("train bench: loss is " + loss + " after " + (warmup + iters) + " steps");
        double stepS = median(t);
        double tokPerSec = (double) batch * seq / stepS;
        PeakMemory mem = PeakMemory.read();
        if (s.json) {
            out.printf(Locale.ROOT, "{\"depth\": %d, \"batch\": %d, \"seq\": %d, \"step_s\": %.6f, \"tok_per_sec\": %.1f, "
                    + "\"cpu_s_per_step\": %.3f, \"peak_rss_gb\": %.3f, \"peak_rss_source\": \"%s\", \"deopts\": %d}%n", depth, batch, seq,
                    stepS, tokPerSec, median(cpu), mem.gb(), mem.source(), deopts);
        } else {
            out.printf(Locale.ROOT, "step %.3f s  (%.0f tok/s), %.3f CPU s, loss %.4f%n", stepS, tokPerSec, median(cpu), loss);
            out.printf(Locale.ROOT, "  forward %.3f s, backward %.3f s, optimizer %.3f s, zero grads %.3f s (medians)%n",
                    median(phases[0]), median(phases[1]), median(phases[2]), median(phases[3]));
            if (OpTimes.ENABLED) out.print(OpTimes.table(iters));
            out.printf(Locale.ROOT, "peak memory %.2f GB (%s)%n", mem.gb(), mem.source());
        }
        if (storm != null) (s.json ? System.err : out).println("JIT: " + storm);
        return 0;
    }

    /**
     * One base-train step with a single micro-batch: forward, backward, optimizer, zero grads; the phases' seconds
     * go to {@code phases[0..3][i]}. Returns the loss.
     */
    private static float step(GPT model, MuonAdamW opt, Tensor idx, Tensor targets, double[][] phases, int i) {
        if (OpTimes.ENABLED) OpTimes.mark();
        long t0 = System.nanoTime(), t1, t2;
        float v;
        try (var recycling = Recycler.open()) {   // as base-train: each step writes into the last one's buffers
            var loss = model.loss(idx, targets, Reduction.MEAN);
            v = loss.item();
            t1 = System.nanoTime();
            loss.backward();
            t2 = System.nanoTime();
        }
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
