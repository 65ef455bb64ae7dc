package nanochat4j.bench;

import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.autograd.Autograd;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Parallel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench model}: times a GPT training step on random tokens with runcpu.sh's sizing (head dim 64,
 * window pattern L, vocab 32768, width = depth·64). Forward (no tape) and forward+backward, each the median of
 * {@code --iters} runs after {@code --warmup}; tokens/s and achieved GFLOP/s from nanochat's estimate_flops
 * (6·matmul params + attention per token, i.e. forward+backward). Memory: the live heap (after a full GC) right
 * after a recorded forward — the step's peak live set — split into model+gradients and activations, and the heap
 * pools' peak during the timed runs (an upper bound that includes uncollected garbage).
 */
@Command(name = "model", mixinStandardHelpOptions = true,
        description = "Time GPT forward and forward+backward (tokens/s, GFLOP/s).")
public final class ModelBench implements Callable<Integer> {
    @Mixin
    StepBenchOptions s;
    @Option(names = "--head-dim", description = "head dim (default ${DEFAULT-VALUE})")
    int headDim = 64;
    @Option(names = "--aspect-ratio", description = "width = depth·aspect rounded up to head dim (default ${DEFAULT-VALUE})")
    int aspect = 64;
    @Option(names = "--window-pattern", description = "window pattern (default ${DEFAULT-VALUE})")
    String windowPattern = "L";

    PrintStream out = System.out;

    @Override
    public Integer call() {
        s.check();
        int depth = s.depth, batch = s.batch, seq = s.seq, vocab = s.vocab;
        GPTConfig cfg = GPTConfig.fromDepth(depth, aspect, headDim, seq, windowPattern, vocab);
        GPT model = GPT.create(cfg, 42);
        StepBenchOptions.Batch b = s.randomBatch();
        Tensor idx = b.inputs(), targets = b.targets();
        if (!s.json) {
            out.printf(Locale.ROOT, "model d%d (C=%d, H=%d, seq %d, vocab %d, window %s), batch %d, %d threads%n", depth, cfg.nEmbd(),
                    cfg.nHead(), seq, vocab, cfg.windowPattern(), batch, Parallel.threads());
        }
        double fwd = median(() -> {
            try (var g = Autograd.noGrad()) {
                model.loss(idx, targets, Reduction.MEAN).item();
            }
        });
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) p.resetPeakUsage();
        double fwdBwd = median(() -> {
            try (var recycling = Recycler.open()) {   // as base-train: each step writes into the last one's buffers
                model.loss(idx, targets, Reduction.MEAN).backward();
            }
            model.zeroGrad();
        });
        long peak = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) peak += p.getPeakUsage().getUsed();
        }
        // Live memory: heap in use after a full GC, before and right after a recorded forward (the tape then holds
        // every activation the backward pass needs — the step's peak live set, as backward frees them as it goes).
        long base = liveHeap();
        var pending = model.loss(idx, targets, Reduction.MEAN);
        long afterForward = liveHeap();
        pending.backward();
        model.zeroGrad();
        double tokens = (double) batch * seq;
        double tokPerSec = tokens / fwdBwd;
        double gflops = cfg.estimateFlops() * tokens / fwdBwd / 1e9;
        if (s.json) {
            out.printf(Locale.ROOT, "{\"depth\": %d, \"batch\": %d, \"seq\": %d, \"fwd_s\": %.6f, \"fwdbwd_s\": %.6f, "
                    + "\"tok_per_sec\": %.1f, \"gflops\": %.3f, \"live_heap_mb\": %.1f, \"activations_mb\": %.1f, \"peak_heap_mb\": %.1f}%n",
                    depth, batch, seq, fwd, fwdBwd, tokPerSec, gflops, afterForward / 1048576.0, (afterForward - base) / 1048576.0,
                    peak / 1048576.0);
        } else {
            out.printf(Locale.ROOT, "forward          %.3f s  (%.0f tok/s)%n", fwd, tokens / fwd);
            out.printf(Locale.ROOT, "forward+backward %.3f s  (%.0f tok/s, %.2f GFLOP/s at %.4g FLOPs/token)%n", fwdBwd, tokPerSec,
                    gflops, (double) cfg.estimateFlops());
            out.printf(Locale.ROOT, "live heap after forward %.0f MiB (model + grads %.0f MiB, activations %.0f MiB); "
                    + "heap pools' peak %.0f MiB%n", afterForward / 1048576.0, base / 1048576.0, (afterForward - base) / 1048576.0,
                    peak / 1048576.0);
        }
        return 0;
    }

    private static long liveHeap() {
        for (int i = 0; i < 2; i++) System.gc();
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    private double median(Runnable step) {
        for (int i = 0; i < s.warmup; i++) step.run();
        double[] t = new double[s.iters];
        for (int i = 0; i < s.iters; i++) {
            long t0 = System.nanoTime();
            step.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        return StepBenchOptions.median(t);
    }
}
