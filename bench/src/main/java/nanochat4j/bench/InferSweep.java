package nanochat4j.bench;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.DecodeWeights;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.KVCache;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.cpu.FmaPeak;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.GpuPeaks;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.chat.ChatModels;
import nanochat4j.train.cli.BaseDirOption;
import nanochat4j.train.cli.CheckpointChoice;
import nanochat4j.train.cli.PrecisionOption;
import nanochat4j.train.report.Report;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j infer-bench}: nanochat's scripts/infer_bench on a trained checkpoint — what the model costs to run,
 * next to what CORE says it knows. Through the {@link Engine} that {@code chat} and {@code serve} use: a batch-1 prefill
 * of a natural-language prompt, its KV cache copied into each of B rows, then B rows decoded together; swept over the
 * decode batch size, from the bandwidth-bound end (batch 1 re-reads every weight for one token a row) to the
 * compute-bound one.
 * <ul>
 *   <li>A card first: the model, the device's peaks, the weight and KV-cache bytes, the batch-1 ceiling (peak
 *       bandwidth over the bytes a step must read) and how many full-context rows fit in memory.</li>
 *   <li>Prefill at batch 1: tokens/s and MFU. Then per batch size: TTFT (prefill, cache copy and first token), TPOT
 *       (median decode step), tokens/s, MBU (bytes a step must read over the peak bandwidth), MFU and peak memory.</li>
 *   <li>The last line of stdout is one JSON document with all of it, with nanochat's keys.</li>
 * </ul>
 * The peaks: on a GPU nanochat's datasheet table ({@link GpuPeaks}); on the CPU the machine's own, measured at the
 * start (memory read bandwidth and fp32 FMA peak, as {@code bench infer} and base-train's MFU). The bytes a step reads
 * are what the decode streams ({@link GPTConfig#decodeWeightBytes}: one embedding row, not the whole table, which
 * nanochat counts) plus the KV cache, kept in fp32 here. Memory: on a GPU the device pool's peak (tensors), on the CPU
 * the heap pools' peak after a full GC (an upper bound: it includes garbage not yet collected).
 */
@Command(name = "infer-bench", mixinStandardHelpOptions = true,
        description = "Inference cost of a trained checkpoint (nanochat's infer_bench): prefill, then decode swept over batch"
                + " sizes (TTFT, TPOT, tokens/s, MBU, MFU, peak memory); the last line is JSON.")
public final class InferSweep implements Callable<Integer> {
    @Option(names = {"-i", "--source"}, defaultValue = "base", description = "Checkpoint source: base, sft or rl (default: ${DEFAULT-VALUE}).")
    String source;

    @Mixin
    CheckpointChoice checkpoint;

    @Option(names = "--prompt-tokens", defaultValue = "2048",
            description = "Prompt length of the prefill, clamped so prompt + decode fits the model's context (default: ${DEFAULT-VALUE}).")
    int promptTokens;

    @Option(names = "--decode-tokens", defaultValue = "256", description = "Tokens generated per row (default: ${DEFAULT-VALUE}).")
    int decodeTokens;

    @Option(names = "--batch-sizes", defaultValue = "1,8,32,128", split = ",", description = "Decode batch sizes, comma-separated (default: ${DEFAULT-VALUE}).")
    int[] batchSizes;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.0", description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = "--device", defaultValue = "auto", description = "auto (the GPU when CUDA is usable, else the CPU), cpu or cuda (default: ${DEFAULT-VALUE}).")
    InferenceDevice device;

    @Mixin
    PrecisionOption precision;

    @Option(names = "--weights", defaultValue = "fp32", description = "Weights the CPU decode steps read: fp32 or bf16 (default: ${DEFAULT-VALUE}).")
    DecodeWeights weights;

    @Option(names = "--bandwidth-mb", defaultValue = "1024", description = "On the CPU, the array size of the memory bandwidth probe (default: ${DEFAULT-VALUE}).")
    int bandwidthMb;

    @Mixin
    BaseDirOption baseDir;

    PrintStream out = System.out;

    /** The seed of sampled runs (temperature > 0): each run samples the same tokens. */
    static final long SEED = 42;
    /**
     * Seconds of warm-up before each measurement ({@link #warmUp}): the JIT compiles a decode step's loops after
     * thousands of iterations, the GPU its kernels on their first launch. One short run, as nanochat's warm-up (8
     * tokens), left our batch-1 decode at a sixth of its speed.
     */
    @Option(names = "--warmup-seconds", defaultValue = "1.0",
            description = "Warm-up before each measurement: at least one run and this long, then on while the runs still get faster, at most ten times it (the JIT compiles the decode path as it runs; default: ${DEFAULT-VALUE}).")
    double warmupSeconds;

    /** Prefill runs timed; the median is reported. */
    static final int PREFILL_RUNS = 5;

    @Override
    public Integer call() throws IOException {
        if (promptTokens < 1) throw new IllegalArgumentException("--prompt-tokens " + promptTokens + " must be >= 1");
        if (decodeTokens < 2) throw new IllegalArgumentException("--decode-tokens " + decodeTokens + " must be >= 2 (a first token, then decode steps)");
        for (int b : batchSizes) if (b < 1) throw new IllegalArgumentException("--batch-sizes: " + b + " is not a batch size");
        if (!(temperature >= 0)) throw new IllegalArgumentException("--temperature " + temperature + " must be >= 0");
        if (!(warmupSeconds >= 0)) throw new IllegalArgumentException("--warmup-seconds " + warmupSeconds + " must be >= 0");
        Device where = device.resolve();   // before the slow load: a bad --device fails at once
        if (where == Device.CUDA && weights != DecodeWeights.FP32) {
            throw new IllegalArgumentException("--weights " + weights + " is a CPU decoder option; on a GPU the linear layers compute at --precision");
        }
        return precision.get().during(Backend.forDevice(where), () -> run(where));
    }

    /** A device's name, its peaks (NaN where unknown), the memory its KV caches share with the weights (-1: unknown). */
    record Peaks(String name, double bandwidth, String bandwidthFrom, double flops, String flopsFrom, long totalMemory) {}

    /** One generation's timings: time to the first token, each decode step after it, and the peak memory (-1: unknown). */
    record Timed(double ttft, double[] steps, long peakBytes) {}

    /**
     * What the architecture implies before anything is measured: parameters as stored, the bytes a decode step reads
     * (weights, then KV cache per row at the context mid-decode), the batch-1 ceiling and the full-context rows that
     * fit beside the weights (-1: unknown).
     */
    record Costs(long numParams, long storedBytes, Map<String, Long> dtypes, long stepWeights, long kvStore, int contextMid,
                 long kvRead, double ceilingBs1, long maxRows) {}

    private int run(Device where) throws IOException {
        ModelSource src = ModelSource.parse(source);
        ModelSource.Loaded m = ChatModels.load(src, baseDir.get(), checkpoint.tag, checkpoint.step);
        GPT model = InferenceDevice.place(m.model(), where);
        model.decodeWeights(weights);
        GPTConfig cfg = model.config();
        Engine engine = new Engine(model, m.tokenizer());
        boolean gpu = where == Device.CUDA;

        int maxPrompt = cfg.sequenceLen() - decodeTokens;
        if (maxPrompt < 1) {
            throw new IllegalArgumentException("--decode-tokens " + decodeTokens + " leaves no room for a prompt in the model's context of "
                    + cfg.sequenceLen() + " tokens");
        }
        int promptLen = Math.min(promptTokens, maxPrompt);
        if (promptLen < promptTokens) {
            out.printf(Locale.ROOT, "note: clamping prompt to %d tokens so prompt+decode fits sequence_len=%d%n", promptLen, cfg.sequenceLen());
        }
        int[] prompt = prompt(m.tokenizer(), promptLen);
        Peaks peaks = gpu ? gpuPeaks(model.backend()) : cpuPeaks(bandwidthMb);
        Costs costs = costs(model, gpu, promptLen + decodeTokens / 2, peaks);
        String mem = gpu ? "VRAM" : "heap";
        printCard(src, m, cfg, gpu, peaks, costs, mem);
        Map<String, Object> json = cardJson(src, m, cfg, gpu, peaks, costs, promptLen);
        json.put("prefill", prefill(engine, prompt, cfg, peaks));

        // The sweep: MBU binds at small batch (every step re-reads the weights), MFU at large.
        String header = String.format(Locale.ROOT, "%6s %9s %9s %10s %7s %7s %9s %6s", "batch", "TTFT ms", "TPOT ms", "tok/s", "MBU %", "MFU %", mem + " GiB", "steps");
        out.println(header);
        out.println("-".repeat(header.length()));
        List<Map<String, Object>> sweep = new ArrayList<>();
        for (int b : batchSizes) {
            Map<String, Object> row = batch(engine, prompt, b, cfg, gpu, peaks, costs);
            if (row != null) sweep.add(row);
        }
        json.put("sweep", sweep);
        out.println("-".repeat(header.length()));
        out.println(new ObjectMapper().writeValueAsString(json));   // the last line: the whole run for scripts
        return 0;
    }

    private Costs costs(GPT model, boolean gpu, int contextMid, Peaks peaks) {
        GPTConfig cfg = model.config();
        long numParams = 0, storedBytes = 0;
        Map<String, Long> dtypes = new TreeMap<>();
        for (Parameter p : model.parameters()) {
            long n = p.tensor().numel();
            numParams += n;
            storedBytes += n * p.tensor().dtype().bytes();
            dtypes.merge(p.tensor().dtype().name().toLowerCase(Locale.ROOT), n, Long::sum);
        }
        long stepWeights = gpu ? cfg.decodeWeightBytes(precision.get() == MatmulPrecision.BF16 ? 2 : 4) : model.decodeWeightBytes();
        long kvStore = cfg.kvBytesPerToken(KVCache.ELEMENT_BYTES);
        long kvRead = cfg.kvBytesReadPerDecodeStep(contextMid, KVCache.ELEMENT_BYTES);
        long maxRows = peaks.totalMemory() < 0 ? -1 : Math.max(0, (peaks.totalMemory() - storedBytes) / (kvStore * cfg.sequenceLen()));
        return new Costs(numParams, storedBytes, dtypes, stepWeights, kvStore, contextMid, kvRead, peaks.bandwidth() / (stepWeights + kvRead), maxRows);
    }

    private void printCard(ModelSource src, ModelSource.Loaded m, GPTConfig cfg, boolean gpu, Peaks peaks, Costs c, String mem) {
        String rule = "=".repeat(100);
        out.println(rule);
        out.printf(Locale.ROOT, "Model: %s %s (step %d) | depth %d, dim %d, heads %d, kv heads %d (GQA)%n", src.name().toLowerCase(Locale.ROOT),
                m.dir().getFileName(), m.step(), cfg.nLayer(), cfg.nEmbd(), cfg.nHead(), cfg.nKvHead());
        out.printf(Locale.ROOT, "%s: %s | peak bandwidth %s (%s) | peak compute %s (%s) | %s %s%n", gpu ? "GPU" : "CPU", peaks.name(),
                rate(peaks.bandwidth(), "B/s"), peaks.bandwidthFrom(), rate(peaks.flops(), "FLOP/s"), peaks.flopsFrom(), mem,
                peaks.totalMemory() < 0 ? "unknown" : String.format(Locale.ROOT, "%.1f GiB", peaks.totalMemory() / GIB));
        out.printf(Locale.ROOT, "Linear layers: %s%n", gpu ? precision.get().flag() + " (--precision)" : weights + " weights (--weights), fp32 compute, "
                + Parallel.threads() + " threads");
        out.println("-".repeat(100));
        StringBuilder d = new StringBuilder();
        c.dtypes().forEach((k, v) -> d.append(d.isEmpty() ? "" : ", ").append(String.format(Locale.ROOT, "%,d %s", v, k)));
        out.printf(Locale.ROOT, "Parameters: %,d (%s) | weight bytes as stored: %.1f MiB | read per decode step: %.1f MiB%n", c.numParams(), d,
                c.storedBytes() / MIB, c.stepWeights() / MIB);
        out.printf(Locale.ROOT, "KV cache: %,d bytes/token stored | %,d bytes read/step at context %d (window pattern %s)%n", c.kvStore(), c.kvRead(),
                c.contextMid(), cfg.windowPattern());
        out.printf(Locale.ROOT, "Theoretical decode ceiling at batch 1: %s tok/s | max ~%s full-context rows in %s%n",
                Double.isNaN(c.ceilingBs1()) ? "unknown" : String.format(Locale.ROOT, "%,.0f", c.ceilingBs1()),
                c.maxRows() < 0 ? "unknown" : String.format(Locale.ROOT, "%,d", c.maxRows()), mem);
        out.println(rule);
    }

    /** The card in the JSON line, with nanochat's keys (and ours beside them). */
    private Map<String, Object> cardJson(ModelSource src, ModelSource.Loaded m, GPTConfig cfg, boolean gpu, Peaks peaks, Costs c, int promptLen) {
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("source", src.name().toLowerCase(Locale.ROOT));
        json.put("model_tag", m.dir().getFileName().toString());
        json.put("step", m.step());
        json.put("model_config", cfg.toJsonMap());
        json.put("device", gpu ? "cuda" : "cpu");
        json.put("device_name", peaks.name());
        json.put("gpu", gpu ? peaks.name() : null);
        json.put("peak_bandwidth_bytes_per_sec", orNull(peaks.bandwidth()));
        json.put("peak_bandwidth_source", peaks.bandwidthFrom());
        json.put("total_vram_bytes", gpu && peaks.totalMemory() >= 0 ? peaks.totalMemory() : null);
        json.put("total_memory_bytes", peaks.totalMemory() >= 0 ? peaks.totalMemory() : null);
        json.put("num_params", c.numParams());
        json.put("param_dtypes", c.dtypes());
        json.put("weight_bytes", c.storedBytes());
        json.put("weight_bytes_read_per_step", c.stepWeights());
        json.put(gpu ? "precision" : "weights", gpu ? precision.get().flag() : weights.toString());
        json.put("kv_bytes_per_token", c.kvStore());
        json.put("kv_read_bytes_per_step", c.kvRead());
        json.put("context_mid", c.contextMid());
        json.put("peak_flops_per_sec", orNull(peaks.flops()));
        json.put("peak_flops_source", peaks.flopsFrom());
        json.put("decode_flops_per_token", cfg.decodeFlops(c.contextMid()));
        json.put("ceiling_bs1_tok_per_sec", orNull(round(c.ceilingBs1(), 1)));
        json.put("max_full_context_rows", c.maxRows() >= 0 ? c.maxRows() : null);
        json.put("prompt_tokens", promptLen);
        json.put("decode_tokens", decodeTokens);
        json.put("temperature", temperature);
        return json;
    }

    /**
     * Prefill: batch 1 and one decode step, so TTFT is the prefill (the median of a few, each after a GC as the sweep's
     * runs). It is compute-bound: MFU is its roofline.
     */
    private Map<String, Object> prefill(Engine engine, int[] prompt, GPTConfig cfg, Peaks peaks) {
        warmUp(engine, prompt, 1, 2);
        double[] times = new double[PREFILL_RUNS];
        for (int i = 0; i < PREFILL_RUNS; i++) times[i] = time(engine, prompt, 1, 2).ttft();
        Arrays.sort(times);
        double t = times[PREFILL_RUNS / 2];
        double mfu = 100 * cfg.prefillFlops(prompt.length) / t / peaks.flops();
        out.printf(Locale.ROOT, "Prefill (batch 1, %d tokens): %,.0f tok/s | MFU %s%n", prompt.length, prompt.length / t, percent(mfu, 1));
        Map<String, Object> p = new LinkedHashMap<>();
        p.put("tok_per_sec", round(prompt.length / t, 1));
        p.put("mfu_percent", orNull(round(mfu, 2)));
        p.put("time_sec", round(t, 6));
        return p;
    }

    /** One batch size: warmed up, timed, printed as a table row; its JSON entry, or null when no step was left to time. */
    private Map<String, Object> batch(Engine engine, int[] prompt, int b, GPTConfig cfg, boolean gpu, Peaks peaks, Costs c) {
        warmUp(engine, prompt, b, decodeTokens);
        Timed t = time(engine, prompt, b, decodeTokens);
        int steps = t.steps().length;
        if (steps == 0) {
            out.printf(Locale.ROOT, "%6d  every row ended with its first token: nothing to time%n", b);
            return null;
        }
        double[] sorted = t.steps().clone();
        Arrays.sort(sorted);
        double tpot = sorted[steps / 2];
        double tokPerSec = b * steps / Arrays.stream(t.steps()).sum();
        double mbu = 100 * ((c.stepWeights() + (double) b * c.kvRead()) / tpot) / peaks.bandwidth();
        double mfu = 100 * ((double) b * cfg.decodeFlops(c.contextMid()) / tpot) / peaks.flops();
        String note = steps == decodeTokens - 1 ? "" : " (early stop @ " + steps + ")";
        out.printf(Locale.ROOT, "%6d %9.1f %9.2f %,10.0f %7s %7s %9s %6d%s%n", b, t.ttft() * 1e3, tpot * 1e3, tokPerSec, percent(mbu, 1),
                percent(mfu, 2), t.peakBytes() < 0 ? "—" : String.format(Locale.ROOT, "%.2f", t.peakBytes() / GIB), steps, note);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("batch_size", b);
        r.put("ttft_sec", round(t.ttft(), 6));
        r.put("tpot_sec", round(tpot, 6));
        r.put("tok_per_sec", round(tokPerSec, 1));
        r.put("mbu_percent", orNull(round(mbu, 2)));
        r.put("mfu_percent", orNull(round(mfu, 4)));   // tiny at small batch: keep the signal
        r.put(gpu ? "peak_vram_bytes" : "peak_heap_bytes", t.peakBytes() >= 0 ? t.peakBytes() : null);
        r.put("decode_steps", steps);
        return r;
    }

    /**
     * Generates until the runs stop getting faster: at least once and for {@code --warmup-seconds}, then on until
     * half that long has passed without a run 10% faster than the best before it (the JIT still compiling the decode
     * path: on two busy cores a second of warm-up left the next run at a twentieth of its speed), or until one run
     * alone takes that long, and never past ten times it.
     */
    private void warmUp(Engine engine, int[] prompt, int rows, int tokens) {
        long start = System.nanoTime(), period = (long) (warmupSeconds * 1e9);
        long best = Long.MAX_VALUE, improved = start;
        while (true) {
            long t0 = System.nanoTime();
            generate(engine, prompt, rows, tokens);
            long now = System.nanoTime(), run = now - t0;
            if (run < best * 0.9) improved = now;
            best = Math.min(best, run);
            boolean settled = now - improved >= period / 2 || run >= period;
            if (now - start >= 10 * period || (now - start >= period && settled)) return;
        }
    }

    /**
     * One generation of {@code rows} rows and up to {@code tokens} tokens: the first column comes after the batch-1
     * prefill, the cache copy and the first sample (TTFT); each later one after a decode step of every row (its logits
     * come back to the host to be sampled, so the step is over when the column is).
     */
    private Timed time(Engine engine, int[] prompt, int rows, int tokens) {
        Backend be = engine.model().backend();
        resetPeak(be);
        Timed t = generate(engine, prompt, rows, tokens);
        return new Timed(t.ttft(), t.steps(), peakBytes(be));
    }

    /** {@link #time} without the memory peak. */
    private Timed generate(Engine engine, int[] prompt, int rows, int tokens) {
        double[] steps = new double[tokens];
        double[] ttft = {Double.NaN};
        int[] columns = {0};
        long t0 = System.nanoTime();
        long[] last = {t0};
        engine.generate(prompt, new Engine.Settings(rows, tokens, temperature, 0, SEED), (column, sampled) -> {
            long now = System.nanoTime();
            if (columns[0] == 0) ttft[0] = (now - t0) / 1e9;
            else steps[columns[0] - 1] = (now - last[0]) / 1e9;
            columns[0]++;
            last[0] = now;
        });
        return new Timed(ttft[0], Arrays.copyOf(steps, Math.max(0, columns[0] - 1)), -1);
    }

    /** Starts a run's memory peak over: the GPU pool's peaks, or a full GC and the heap pools' peaks on the CPU. */
    private static void resetPeak(Backend be) {
        if (be instanceof CudaBackend cuda) {
            cuda.context().resetPeakMemory();
        } else if (be.device() == Device.CPU) {
            System.gc();
            for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) p.resetPeakUsage();
        }   // else a device whose memory we cannot see (the tests' stand-in)
    }

    /** The peak since {@link #resetPeak}, or -1 where unknown. */
    private static long peakBytes(Backend be) {
        if (be instanceof CudaBackend cuda) return cuda.context().memory().peakInUse();
        if (be.device() != Device.CPU) return -1;
        long peak = 0;
        for (MemoryPoolMXBean p : ManagementFactory.getMemoryPoolMXBeans()) {
            if (p.getType() == MemoryType.HEAP) peak += p.getPeakUsage().getUsed();
        }
        return peak;
    }

    /**
     * nanochat's prompt: a paragraph of plain English, repeated, after {@code <|bos|>}, cut to {@code n} tokens (random
     * ids would time the same, but a real prompt keeps greedy decoding from degenerating).
     */
    static int[] prompt(Tokenizer tok, int n) {
        String paragraph = "The history of science is the study of the development of science, including both the natural and social"
                + " sciences. Science is a body of empirical, theoretical, and practical knowledge about the natural world. ";
        int[] ids = tok.encode(paragraph, tok.bosId(), -1);
        StringBuilder text = new StringBuilder(paragraph);
        while (ids.length < n) {
            text.append(paragraph.repeat(Math.max(1, n / Math.max(1, ids.length))));
            ids = tok.encode(text.toString(), tok.bosId(), -1);
        }
        return Arrays.copyOf(ids, n);
    }

    /** The CPU's peaks, measured now: memory read bandwidth and the fp32 FMA peak of the kernels' vector width. */
    static Peaks cpuPeaks(int bandwidthMb) {
        double bw = InferBench.memoryBandwidth(bandwidthMb) * 1e9;
        double flops = FmaPeak.measure(5, 2_000_000) * 1e9;
        return new Peaks(cpuName(), bw, "measured", flops, "measured fp32 FMA", Runtime.getRuntime().maxMemory());
    }

    /** A GPU's peaks from nanochat's table by its name; a stand-in device (tests) has neither name nor peaks. */
    static Peaks gpuPeaks(Backend be) {
        if (!(be instanceof CudaBackend cuda)) return new Peaks(be.describe(), Double.NaN, "unknown", Double.NaN, "unknown", -1);
        String name = cuda.context().name();
        double bw = GpuPeaks.bandwidth(name), flops = GpuPeaks.flops(name);
        return new Peaks(name, bw, Double.isNaN(bw) ? "not in the table" : "datasheet", flops, Double.isNaN(flops) ? "not in the table" : "datasheet dense bf16",
                cuda.context().totalMemory());
    }

    /** The CPU's model name (Linux; else its architecture) and core count. */
    static String cpuName() {
        String model = Report.cpuModel();
        return (model != null ? model : System.getProperty("os.arch")) + ", " + Runtime.getRuntime().availableProcessors() + " cores";
    }

    private static final double GIB = 1024.0 * 1024 * 1024, MIB = 1024.0 * 1024;

    private static String rate(double v, String unit) {
        if (Double.isNaN(v)) return "unknown";
        return v >= 1e12 ? String.format(Locale.ROOT, "%.2f T%s", v / 1e12, unit) : String.format(Locale.ROOT, "%.1f G%s", v / 1e9, unit);
    }

    private static String percent(double v, int decimals) {
        return Double.isNaN(v) || Double.isInfinite(v) ? "—" : String.format(Locale.ROOT, "%." + decimals + "f", v);
    }

    /** v to {@code decimals} places; NaN (an unknown peak's ratio) stays NaN, for {@link #orNull}. */
    private static double round(double v, int decimals) {
        if (!Double.isFinite(v)) return v;
        double s = Math.pow(10, decimals);
        return Math.round(v * s) / s;
    }

    /** NaN (an unknown peak) as JSON null, so the last line stays valid JSON. */
    private static Double orNull(double v) {
        return Double.isNaN(v) || Double.isInfinite(v) ? null : v;
    }
}
