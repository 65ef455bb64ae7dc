package nanochat4j.bench;

import java.io.PrintStream;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import jdk.incubator.vector.FloatVector;
import nanochat4j.model.engine.Sampler;
import nanochat4j.model.gpt.DecodeWeights;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.Gemv;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cpu.Vec;
import nanochat4j.train.cli.PrecisionOption;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench infer}: KV-cache inference speed with runcpu.sh's sizing (head dim 64, window L,
 * vocab 32768): prefill of a 16-token prompt, greedy decode of 128 tokens at batch 1, and the same with 8 sample
 * rows. Batch-1 decode is bound by reading the weights, so it also reports the weight bytes streamed per second next
 * to this machine's memory read bandwidth, measured in the same run. {@code --weights bf16} decodes with a bf16 copy
 * of the matrices (half the bytes; prefills of more than 32 tokens still run on the fp32 weights). {@code --device cuda}
 * runs the same timings through {@link GPT#forwardCached} with the model, its KV cache and every activation on the GPU,
 * the linear layers at {@code --precision} (bf16 by default, as nanochat's engine under autocast: each weight's bf16
 * copy made once and kept); the logits come down once per step, and greedy picks on the host as {@code chat} does.
 * There each cache's decode steps are recorded once and replayed (a CUDA graph per step); batch 1 is timed also with
 * every kernel launched one by one, and the difference per step is what launching costs; one more such run with each
 * kernel timed by CUDA events says where a step's device time goes ({@code decode_kernels}, the longest first).
 */
@Command(name = "infer", mixinStandardHelpOptions = true,
        description = "Time KV-cache prefill and decode (tokens/s, weight GB/s vs memory bandwidth).")
public final class InferBench implements Callable<Integer> {
    @Option(names = "--depth", description = "model depth (default ${DEFAULT-VALUE})")
    int depth = 4;
    @Option(names = "--seq", description = "model context length (default ${DEFAULT-VALUE})")
    int seq = 512;
    @Option(names = "--vocab", description = "vocab size (default ${DEFAULT-VALUE})")
    int vocab = 32768;
    @Option(names = "--prompt-tokens", description = "prompt length (default ${DEFAULT-VALUE})")
    int promptTokens = 16;
    @Option(names = "--decode-tokens", description = "tokens decoded per run (default ${DEFAULT-VALUE})")
    int decodeTokens = 128;
    @Option(names = "--iters", description = "timed runs, median reported (default ${DEFAULT-VALUE})")
    int iters = 5;
    @Option(names = "--bandwidth-mb", description = "array size of the memory bandwidth probe (default ${DEFAULT-VALUE})")
    int bandwidthMb = 1024;
    @Option(names = "--weights", defaultValue = "fp32",
            description = "weights the decode streams: ${COMPLETION-CANDIDATES} (default ${DEFAULT-VALUE})")
    DecodeWeights weights;
    @Option(names = "--json", description = "one JSON object")
    boolean json;
    @Option(names = "--device", defaultValue = "cpu", description = "cpu (default) or cuda: weights, KV cache and activations on the GPU")
    String device;
    @Option(names = "--head-dim", description = "head dim (default ${DEFAULT-VALUE}; nanochat's GPU models use 128)")
    int headDim = 64;
    @Mixin
    PrecisionOption precision = new PrecisionOption();

    PrintStream out = System.out;

    @Override
    public Integer call() {
        if (iters < 1 || promptTokens < 1 || decodeTokens < 1) throw new IllegalArgumentException("--iters, --prompt-tokens and --decode-tokens must be >= 1");
        if (promptTokens + decodeTokens > seq) throw new IllegalArgumentException("prompt + decode tokens exceed --seq " + seq);
        if (!device.equals("cpu") && !device.equals("cuda")) throw new IllegalArgumentException("--device: '" + device + "' is not cpu or cuda");
        boolean cuda = device.equals("cuda");
        if (cuda && weights != DecodeWeights.FP32) {
            throw new IllegalArgumentException("--weights " + weights + " is a CPU decoder option; on --device cuda the linear layers compute at --precision");
        }
        return cuda ? precision.get().during(Backend.forDevice(Device.CUDA), () -> measure(true)) : measure(false);
    }

    private int measure(boolean cuda) {
        GPTConfig cfg = GPTConfig.fromDepth(depth, 64, headDim, seq, "L", vocab);
        GPT model = GPT.create(cfg, 42, cuda ? Device.CUDA : Device.CPU);   // on CUDA: the weights go up once, here
        model.decodeWeights(weights);
        int[] prompt = new SplittableRandom(1).ints(promptTokens, 0, vocab).toArray();
        double memBw = cuda ? Double.NaN : memoryBandwidth(bandwidthMb);
        double prefill = median(() -> {
            try (KVCache c = new KVCache(model, 1, promptTokens)) {
                model.forwardCachedLast(Tensor.ofInts(prompt, 1, promptTokens), c);
            }
        });
        double tps1, tps8;
        long deopts;
        String storm;
        try (Deopts jit = Deopts.start()) {
            Deopts.Window w = jit.open();
            tps1 = decodeTokens / median(() -> decode(model, prompt, 1));
            deopts = jit.close(w);
            storm = Deopts.note(w, "the batch-1 decode");
            tps8 = 8.0 * decodeTokens / median(() -> decode(model, prompt, 8));
        }
        if (cuda) {
            // the same batch-1 decode with each step's kernels launched one by one: the difference is what launching
            // them costs the host per step, which the recorded steps (CUDA graphs) save
            model.recordDecodeSteps(false);
            double issued = decodeTokens / median(() -> decode(model, prompt, 1));
            // once more, each kernel timed (CUDA events): where a decode step's device time goes
            List<Backend.KernelTime> kernels = List.of();
            if (model.backend().startProfile()) {
                try {
                    decode(model, prompt, 1);
                } finally {
                    kernels = model.backend().stopProfile();
                }
            }
            model.recordDecodeSteps(true);
            reportCuda(model, prefill, tps1, issued, tps8, kernels);
            return 0;
        }
        // Bytes a decode step reads: every streamed matrix at its dtype (+ embedding rows) plus the KV cache at mid-decode.
        double weightBytes = model.decodeWeightBytes();
        double kvBytes = cfg.kvBytesReadPerDecodeStep(promptTokens + decodeTokens / 2, 4);
        double weightsGbs = (weightBytes + kvBytes) * tps1 / 1e9;
        if (json) {
            out.printf(Locale.ROOT, "{\"depth\": %d, \"weights\": \"%s\", \"prefill_ms\": %.3f, \"decode_tok_per_sec\": %.1f, "
                    + "\"batch8_tok_per_sec\": %.1f, \"weights_gb_per_s\": %.2f, \"mem_bw_gb_per_s\": %.2f, \"path\": \"%s\", "
                    + "\"decode_deopts\": %d}%n", depth, weights, prefill * 1e3, tps1, tps8, weightsGbs, memBw, Gemv.describe(), deopts);
        } else {
            out.printf(Locale.ROOT, "model d%d (C=%d, %d layers, vocab %d), %d threads, %.1f MB of %s weights per token%n", depth, cfg.nEmbd(),
                    cfg.nLayer(), vocab, Parallel.threads(), weightBytes / 1e6, weights);
            out.println("path: " + Gemv.describe());
            out.printf(Locale.ROOT, "prefill %d tokens   %8.2f ms%n", promptTokens, prefill * 1e3);
            out.printf(Locale.ROOT, "decode batch 1      %8.1f tok/s (%d tokens)%n", tps1, decodeTokens);
            out.printf(Locale.ROOT, "decode batch 8      %8.1f tok/s%n", tps8);
            out.printf(Locale.ROOT, "weights streamed    %8.2f GB/s   (memory read bandwidth %.2f GB/s: %.0f%%)%n", weightsGbs, memBw,
                    100 * weightsGbs / memBw);
        }
        if (storm != null) (json ? System.err : out).println("JIT: " + storm);
        return 0;
    }

    /** Kernels of the profiled decode run reported, the longest first. */
    static final int TOP_KERNELS = 12;

    /**
     * The GPU's figures: weights, KV cache and activations stay on the device; each step sends B ids up and B·vocab
     * logits down. Batch-1 decode twice: replayed from a recording (the default) and issued kernel by kernel;
     * {@code kernels} is the device time of one more batch-1 run issued so (its prompt's prefill and
     * {@link #decodeTokens} steps), reported per decode step.
     */
    private void reportCuda(GPT model, double prefill, double tps1, double issued, double tps8, List<Backend.KernelTime> kernels) {
        GPTConfig cfg = model.config();
        String gpu = model.backend().describe();
        double launchMs = 1e3 / issued - 1e3 / tps1;
        List<Backend.KernelTime> top = kernels.subList(0, Math.min(TOP_KERNELS, kernels.size()));
        double busy = Backend.KernelTime.totalMs(kernels) / decodeTokens;
        if (json) {
            StringBuilder k = new StringBuilder();
            for (Backend.KernelTime t : top) {
                k.append(k.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "{\"name\": \"%s\", \"calls_per_step\": %.2f, \"ms_per_step\": %.4f}",
                        t.name(), (double) t.calls() / decodeTokens, t.ms() / decodeTokens));
            }
            out.printf(Locale.ROOT, "{\"device\": \"cuda\", \"gpu\": \"%s\", \"precision\": \"%s\", \"depth\": %d, \"head_dim\": %d, "
                    + "\"prefill_ms\": %.3f, \"decode_tok_per_sec\": %.1f, \"batch8_tok_per_sec\": %.1f, \"ms_per_step\": %.3f, "
                    + "\"issued_tok_per_sec\": %.1f, \"issued_ms_per_step\": %.3f, \"launch_ms_per_step\": %.3f, \"device_busy_ms_per_step\": %s, "
                    + "\"decode_kernels\": [%s]}%n", gpu, precision.get().flag(), depth, headDim, prefill * 1e3, tps1, tps8, 1e3 / tps1, issued,
                    1e3 / issued, launchMs, kernels.isEmpty() ? "null" : String.format(Locale.ROOT, "%.4f", busy), k);
        } else {
            out.printf(Locale.ROOT, "model d%d (C=%d, %d layers, head dim %d, vocab %d) on %s, linear layers in %s%n", depth, cfg.nEmbd(),
                    cfg.nLayer(), headDim, vocab, gpu, precision.get().flag());
            out.printf(Locale.ROOT, "prefill %d tokens   %8.2f ms%n", promptTokens, prefill * 1e3);
            out.printf(Locale.ROOT, "decode batch 1      %8.1f tok/s (%.3f ms per step, each step one CUDA graph)%n", tps1, 1e3 / tps1);
            out.printf(Locale.ROOT, "  kernel by kernel  %8.1f tok/s (%.3f ms per step: launching costs %.3f ms a step)%n", issued, 1e3 / issued, launchMs);
            out.printf(Locale.ROOT, "decode batch 8      %8.1f tok/s%n", tps8);
            if (!kernels.isEmpty()) {
                out.printf(Locale.ROOT, "device time of a batch-1 decode step, kernel by kernel (CUDA events): %.3f ms busy%n", busy);
                for (Backend.KernelTime t : top) {
                    out.printf(Locale.ROOT, "  %8.4f ms %6.2f calls  %s%n", t.ms() / decodeTokens, (double) t.calls() / decodeTokens, t.name());
                }
            }
        }
    }

    /** Prefill at batch 1, copy into {@code rows} rows, then greedy-decode {@code decodeTokens} columns. */
    private void decode(GPT model, int[] prompt, int rows) {
        GPTConfig cfg = model.config();
        try (KVCache cache = new KVCache(model, rows, prompt.length + decodeTokens)) {
            float[] logits;
            try (KVCache single = new KVCache(model, 1, prompt.length)) {
                logits = model.forwardCachedLast(Tensor.ofInts(prompt, 1, prompt.length), single).toFloatArray();
                cache.copyFrom(single);
            }
            int v = cfg.vocabSize();
            int[] column = new int[rows];
            Arrays.fill(column, Sampler.argmax(logits, 0, v));
            for (int s = 1; s < decodeTokens; s++) {
                logits = model.forwardCached(Tensor.ofInts(column, rows, 1), cache).toFloatArray();
                for (int r = 0; r < rows; r++) column[r] = Sampler.argmax(logits, r * v, v);
            }
        }
    }

    private double median(Runnable r) {
        r.run(); // warm-up (JIT; kernel compilation on the GPU)
        double[] t = new double[iters];
        for (int i = 0; i < iters; i++) {
            long t0 = System.nanoTime();
            r.run();
            t[i] = (System.nanoTime() - t0) / 1e9;
        }
        Arrays.sort(t);
        return t[iters / 2];
    }

    /**
     * Read bandwidth (GB/s) of summing an array much larger than the caches, on all kernel threads; best of 3 after 2
     * that warm the JIT up. The lane sums live in a small array, not in vectors carried around the loop: C2 boxed those
     * on every iteration when the reduction after the loop was devirtualized late (2.5 GB of boxes in one probe, which
     * then read low).
     */
    static double memoryBandwidth(int mb) {
        float[] a = new float[mb * 256 * 1024];
        Arrays.fill(a, 1f);
        double best = 0;
        float[] sink = new float[Parallel.threads()];
        int lanes = Vec.LANES;
        for (int rep = 0; rep < 5; rep++) {
            long t0 = System.nanoTime();
            Parallel.forRange(a.length, lanes * 1024, (s, e) -> {
                float[] acc = new float[2 * lanes];
                int i = s;
                for (; i + 2 * lanes <= e; i += 2 * lanes) {
                    FloatVector.fromArray(Vec.F, acc, 0).add(FloatVector.fromArray(Vec.F, a, i)).intoArray(acc, 0);
                    FloatVector.fromArray(Vec.F, acc, lanes).add(FloatVector.fromArray(Vec.F, a, i + lanes)).intoArray(acc, lanes);
                }
                float x = 0f;
                for (float v : acc) x += v;
                for (; i < e; i++) x += a[i];
                sink[(int) ((long) s * sink.length / a.length)] += x;
            });
            double secs = (System.nanoTime() - t0) / 1e9;
            if (rep >= 2) best = Math.max(best, 4.0 * a.length / secs / 1e9);
        }
        if (sink[0] < 0) throw new AssertionError(); // keeps the sums alive
        return best;
    }
}
