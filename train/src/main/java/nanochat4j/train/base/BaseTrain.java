package nanochat4j.train.base;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Var;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.BaseDir;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaOutOfMemoryException;
import nanochat4j.tensor.cuda.CudaUnavailableException;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.ProgressBar;
import nanochat4j.train.data.DataLoader;
import nanochat4j.train.data.DataSource;
import nanochat4j.train.data.DatasetDownload;
import nanochat4j.train.data.LoaderState;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.OverlappedGradReduce;
import nanochat4j.train.eval.BitsPerByte;
import nanochat4j.train.eval.CoreBundle;
import nanochat4j.train.eval.CoreEval;
import nanochat4j.train.eval.CoreTask;
import nanochat4j.train.eval.EvalBundleDownload;
import nanochat4j.train.eval.ModelScorer;
import nanochat4j.train.eval.UnigramBaseline;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.optim.Schedules;

/**
 * nanochat's base_train.py: the depth dial, MuonAdamW with batch-scaled LRs, gradient accumulation to the total
 * batch, nanochat's schedules, and a loop that runs N+1 times (the last pass only evaluates and saves).
 * <ul>
 *   <li>data-parallel under {@code nanochat4j launch --nproc W}: rank r reads row groups r, r+W, … ; gradient
 *       accumulation shrinks to total / (B·T·W) so the total batch is unchanged; gradients are averaged inside the
 *       optimizer (nanochat's ZeRO-2 MuonAdamW, optimizer state sharded); val bpb sums every rank's shard; rank 0
 *       prints, samples and writes the model, the meta and the metrics, every rank its {@code optim_<step>_rank<r>}
 *       file and (in the meta, through rank 0) its exact loader state, so a W-rank run resumes exactly with W ranks;</li>
 *   <li>a line per step: step, debiased EMA loss (β 0.9), LR multiplier, dt, tok/s, MFU against the CPU FMA peak
 *       measured at start, epoch, training time (steps after the 10th), ETA; a progress bar on a terminal;</li>
 *   <li>val bpb every --eval-every steps (fresh val loader, --eval-tokens tokens), the CORE metric every
 *       --core-metric-every steps and at the end (the same {@link CoreEval} as base-eval, examples split over the
 *       ranks; the bundle is checked, or downloaded like nanochat does, before the first step), greedy samples of
 *       nanochat's 7 prompts every --sample-every steps;</li>
 *   <li>checkpoints in {@code base_checkpoints/<tag>/}: optimizer state, then the model, then the meta file last, so
 *       a meta file means a complete step. The meta holds the loader state before the prefetched batch and the loop
 *       state, so a resumed run continues bitwise (same losses, same parameters);</li>
 *   <li>metrics as JSONL ({@code metrics.jsonl}) and a PNG plot of train loss and val bpb in the checkpoint folder.</li>
 * </ul>
 */
public final class BaseTrain {
    static final List<String> PROMPTS = List.of("The capital of France is", "The chemical symbol of gold is",
            "If yesterday was Friday, then tomorrow will be", "The opposite of hot is", "The planets of the solar system are:",
            "My favorite color is", "If 5*x + 3 = 13, then x is");
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a run reports back: every step's raw train loss, the val bpb evaluations, where it saved. */
    public record Result(int finalStep, List<Float> trainLosses, Map<Integer, Double> valBpb, double minValBpb, double unigramBpb,
                         Map<Integer, Double> core, Path checkpointDir, List<String> samples) {}

    private BaseTrain() {}

    /** The dense bf16 peak nanochat's MFU divides by on H100/H200 (989 TFLOP/s). */
    static final double GPU_PEAK_FLOPS = 989e12;

    /** Runs on this process's rank of the job the environment describes (a world of one without a launcher). */
    public static Result run(BaseTrainOptions o, TokenizerView tok, PrintStream out) throws IOException {
        DepthDial dial = DepthDial.derive(o.depth, o.aspectRatio, o.headDim, o.maxSeqLen, o.windowPattern, tok.vocabSize(),
                o.targetParamDataRatio, o.totalBatchSize, o.numIterations, o.targetFlops, o.weightDecay);
        String fingerprint = "base-train " + dial.config() + " total batch " + dial.totalBatch() + " device batch "
                + o.deviceBatchSize + " steps " + dial.numIterations() + " tokenizer " + tok.name() + "/" + tok.vocabSize()
                + " device " + o.deviceKind(); // ranks that disagree on the device stop at the handshake, naming both
        try (Collective comm = Collective.fromEnvironment(fingerprint)) {
            try {
                return run(o, tok, comm.rank() == 0 ? out : new PrintStream(OutputStream.nullOutputStream()), comm);
            } catch (IOException | RuntimeException | Error e) {
                comm.abort("rank " + comm.rank() + " failed: " + e); // the others stop instead of waiting for it
                throw e;
            }
        }
    }

    /** Runs one rank of a data-parallel job over {@code comm}; {@code out} gets the log (pass a null stream off rank 0). */
    public static Result run(BaseTrainOptions o, TokenizerView tok, PrintStream out, Collective comm) throws IOException {
        int rank = comm.rank(), world = comm.worldSize();
        boolean master = rank == 0;
        DepthDial dial = DepthDial.derive(o.depth, o.aspectRatio, o.headDim, o.maxSeqLen, o.windowPattern, tok.vocabSize(),
                o.targetParamDataRatio, o.totalBatchSize, o.numIterations, o.targetFlops, o.weightDecay);
        GPTConfig config = dial.config();
        long tokensPerMicro = (long) o.deviceBatchSize * o.maxSeqLen * world; // one micro-step of every rank
        if (dial.totalBatch() % tokensPerMicro != 0) {
            throw new IllegalArgumentException("--total-batch-size " + dial.totalBatch() + " is not a multiple of --device-batch-size × "
                    + "--max-seq-len" + (world > 1 ? " × ranks" : "") + " = " + o.deviceBatchSize + " × " + o.maxSeqLen
                    + (world > 1 ? " × " + world : "") + " = " + tokensPerMicro);
        }
        int accum = (int) (dial.totalBatch() / tokensPerMicro);
        int n = dial.numIterations();
        Path ckptDir = o.checkpointDir != null ? o.checkpointDir : BaseDir.get().resolve("base_checkpoints").resolve(o.tag());
        Path dataDir = o.data != null ? o.data : DatasetDownload.defaultDir();

        out.printf(Locale.ROOT, "Model: %s%n", config);
        out.printf(Locale.ROOT, "Parameters: %,d (scaling %,d); FLOPs per token %.3e%n", config.numScalingParams().total(),
                dial.scalingParams(), (double) dial.flopsPerToken());
        out.printf(Locale.ROOT, "Batch: %,d tokens/step = %d × %d × %d micro-steps × %d rank%s; LR scale %.4f; weight decay %.6f%n",
                dial.totalBatch(), o.deviceBatchSize, o.maxSeqLen, accum, world, world == 1 ? "" : "s", dial.batchLrScale(),
                dial.weightDecay());
        out.printf(Locale.ROOT, "Horizon: %,d steps (%,d tokens, %.2f tokens/param, %.3e FLOPs)%n", n, n * dial.totalBatch(),
                n * dial.totalBatch() / (double) dial.scalingParams(), (double) dial.flopsPerToken() * dial.totalBatch() * n);

        Device device = o.deviceKind();
        Backend backend;
        try {
            backend = Backend.forDevice(device);
        } catch (CudaUnavailableException e) {
            throw new IllegalArgumentException("--device cuda: " + e.getMessage() + " (--device cpu always works)", e);
        }
        MatmulPrecision precision = MatmulPrecision.parse(o.precision);
        if (backend instanceof CudaBackend cb) cb.setMatmulPrecision(precision);
        out.printf(Locale.ROOT, "Device: %s%s%n", device, backend instanceof CudaBackend cb
                ? " (" + cb.context().describe() + "; linear layers in " + precision.flag() + ")" : "");
        GPT model = GPT.create(config, 42, device);
        double s = dial.batchLrScale();
        var groups = model.paramGroups(o.unembeddingLr * s, o.embeddingLr * s, o.matrixLr * s, dial.weightDecay(), o.scalarLr * s);
        // ranks (GPU ones by default) average their gradients while the backward runs, then each runs the whole optimizer
        OverlappedGradReduce overlap = o.overlapReduce(world, device)
                ? new OverlappedGradReduce(model.parameters(), comm, OverlappedGradReduce.DEFAULT_BUCKET_FLOATS) : null;
        MuonAdamW opt = overlap != null ? MuonAdamW.replicated(groups, rank) : new MuonAdamW(groups, comm);
        double reduceWait = 0, stepTime = 0;
        Schedules sched = new Schedules(n, o.warmupSteps, o.warmdownRatio, o.finalLrFrac, dial.weightDecay());

        int step = 0;
        double minValBpb = Double.POSITIVE_INFINITY, smoothLoss = 0, trainingTime = 0, valBpb = Double.NaN;
        LoaderState loaderState = null;
        if (o.resumeFromStep >= 0) {
            Path meta = Checkpoint.metaFile(ckptDir, o.resumeFromStep);
            if (!Files.exists(meta)) {
                throw new IllegalArgumentException("--resume-from-step " + o.resumeFromStep + ": no checkpoint " + meta.getFileName() + " in "
                        + ckptDir + " (" + availableSteps(ckptDir) + ")");
            }
            Checkpoint.Loaded loaded = Checkpoint.load(ckptDir, o.resumeFromStep);
            if (!loaded.meta().config().equals(config)) {
                throw new IllegalArgumentException("checkpoint step " + o.resumeFromStep + " in " + ckptDir + " is a different model: "
                        + loaded.meta().config() + "; these flags build " + config);
            }
            model.loadStateDict(loaded.params());
            Path optFile = MuonAdamW.stateFile(ckptDir, o.resumeFromStep, 0);
            if (!Files.exists(optFile)) {
                throw new IllegalArgumentException("checkpoint step " + o.resumeFromStep + " in " + ckptDir + " has no optimizer state "
                        + optFile.getFileName() + ": cannot resume it exactly");
            }
            opt.load(ckptDir, o.resumeFromStep);
            Map<String, Object> extra = loaded.meta().extra();
            loaderState = JSON.convertValue(extra.get("dataloader_state_dict"), LoaderState.class);
            if (world > 1) { // each rank continues from its own exact position
                List<?> perRank = (List<?>) extra.get("dataloader_state_per_rank");
                if (perRank == null || perRank.size() != world) {
                    throw new IllegalArgumentException("checkpoint step " + o.resumeFromStep + " in " + ckptDir + " was saved by "
                            + (perRank == null ? 1 : perRank.size()) + " rank(s); resume it with the same number (this job has " + world + ")");
                }
                loaderState = JSON.convertValue(perRank.get(rank), LoaderState.class);
            }
            Map<?, ?> loop = (Map<?, ?>) extra.get("loop_state");
            minValBpb = number(loop.get("min_val_bpb"));
            smoothLoss = number(loop.get("smooth_train_loss"));
            trainingTime = number(loop.get("total_training_time"));
            step = o.resumeFromStep;
            out.printf(Locale.ROOT, "Resumed from step %d of %s%n", step, ckptDir);
        }

        if (!Files.isDirectory(dataDir)) {
            throw new IllegalArgumentException("no training data: " + dataDir + " does not exist; give --data DIR (a folder of *.parquet, "
                    + "*.jsonl or *.txt files, the last one by name is validation) or download shards with 'nanochat4j dataset -n 8'");
        }
        DataSource data = DataSource.open(dataDir, o.stripGutenberg);
        CoreBundle bundle = o.coreMetricEvery > 0 ? coreBundle(o.bundle, comm, out) : null;
        CoreEval core = bundle == null ? null : new CoreEval(new ModelScorer(model), encoderWithBos(tok));
        double peak;
        if (device == Device.CPU) {
            peak = CpuPeak.measure(150);
            out.printf(Locale.ROOT, "CPU fp32 FMA peak: %.1f GFLOP/s (MFU is against this)%n", peak / 1e9);
        } else {
            peak = GPU_PEAK_FLOPS;
            out.printf(Locale.ROOT, "GPU peak: %.0f TFLOP/s dense bf16 (H100/H200, as nanochat counts MFU)%n", peak / 1e12);
        }
        if (master) Files.createDirectories(ckptDir);
        comm.barrier(); // the folder exists for every rank
        Path metricsFile = ckptDir.resolve("metrics.jsonl");
        ProgressBar bar = new ProgressBar(out);
        List<Float> losses = new ArrayList<>();
        Map<Integer, Double> valHistory = new LinkedHashMap<>();
        Map<Integer, Double> coreHistory = new LinkedHashMap<>();
        List<String> samples = new ArrayList<>();
        int evalSteps = (int) Math.max(1, o.evalTokens / tokensPerMicro); // per rank, as nanochat
        double unigramBpb = Double.NaN;
        if (o.evalEvery > 0 && master) { // scored on the val batches of all ranks together
            int countSteps = (int) Math.max(1, Math.min(16L * evalSteps, (4L << 20) / tokensPerMicro)); // ≤ ~4M train tokens
            unigramBpb = unigramBpb(data, tok, o.deviceBatchSize, o.maxSeqLen, countSteps, evalSteps * world);
            out.printf(Locale.ROOT, "Unigram baseline bpb of this tokenizer (train counts, val batches): %.6f%n", unigramBpb);
        }

        try (DataLoader train = new DataLoader(data.files(DataSource.Split.TRAIN), tok.encode(), tok.bos(), o.deviceBatchSize, o.maxSeqLen,
                rank, world, loaderState)) {
            LoaderState consumed = train.state(); // the state before the prefetched batch: what a checkpoint saves
            DataLoader.Batch batch = train.next();
            int resumeStep = o.resumeFromStep;
            while (true) {
                boolean last = step == n;
                if (o.evalEvery > 0 && (last || step % o.evalEvery == 0)) {
                    bar.clear();
                    valBpb = evaluateBpb(model, data, tok, o.deviceBatchSize, o.maxSeqLen, evalSteps, comm);
                    minValBpb = Math.min(minValBpb, valBpb);
                    valHistory.put(step, valBpb);
                    out.printf(Locale.ROOT, "Step %05d | Validation bpb: %.6f%n", step, valBpb);
                    if (master) appendMetric(metricsFile, Map.of("step", step, "val_bpb", valBpb));
                }
                if (core != null && (last || (step > 0 && step % o.coreMetricEvery == 0))) {
                    bar.clear();
                    double coreMetric = evaluateCore(core, bundle, o.coreMetricMaxPerTask, comm);
                    coreHistory.put(step, coreMetric);
                    out.printf(Locale.ROOT, "Step %05d | CORE metric: %.4f%n", step, coreMetric);
                    if (master) appendMetric(metricsFile, Map.of("step", step, "core_metric", coreMetric));
                }
                if (master && o.sampleEvery > 0 && (last || (step > 0 && step % o.sampleEvery == 0))) {
                    bar.clear();
                    for (String prompt : PROMPTS) {
                        String line = prompt + sample(model, tok, prompt, 16);
                        samples.add(line);
                        out.println(line);
                    }
                }
                if (last || (step > 0 && step != resumeStep && o.saveEvery > 0 && step % o.saveEvery == 0)) {
                    bar.clear();
                    save(ckptDir, model, opt, step, valBpb, coreHistory.getOrDefault(step, Double.NaN), o, dial, consumed, minValBpb,
                            smoothLoss, trainingTime, tok, comm);
                    out.printf(Locale.ROOT, "Saved checkpoint step %d to %s%n", step, ckptDir);
                }
                if (last) break;

                long t0 = System.nanoTime();
                float trainLoss = 0;
                try {
                    for (int micro = 0; micro < accum; micro++) {
                        Var loss = model.loss(Tensor.ofInts(batch.inputs(), o.deviceBatchSize, o.maxSeqLen),
                                Tensor.ofInts(batch.targets(), o.deviceBatchSize, o.maxSeqLen), Reduction.MEAN);
                        trainLoss = loss.item();
                        if (overlap != null && micro == accum - 1) {
                            try (var reducing = overlap.duringBackward()) {
                                loss.backward(1f / accum);
                            }
                        } else {
                            loss.backward(1f / accum);
                        }
                        consumed = batch.state();
                        batch = train.next();
                    }
                } catch (CudaOutOfMemoryException e) {
                    // the checkpoints on disk were written atomically before this step and stay as they are
                    throw new IllegalStateException("out of GPU memory in step " + step + " (device batch " + o.deviceBatchSize + " × "
                            + o.maxSeqLen + " tokens, " + config + "): " + e.getMessage() + "; checkpoints in " + ckptDir
                            + " are intact; rerun with a smaller --device-batch-size (e.g. " + Math.max(1, o.deviceBatchSize / 2)
                            + ", gradient accumulation keeps the total batch)", e);
                }
                double waited = overlap == null ? 0 : overlap.await();
                if (!Float.isFinite(trainLoss)) throw new IllegalStateException("train loss is " + trainLoss + " at step " + step);
                double lrm = sched.lrMultiplier(step);
                opt.setLrMultiplier(lrm);
                opt.setMuonMomentum(sched.muonMomentum(step));
                opt.setMuonWeightDecay(sched.muonWeightDecay(step));
                opt.step();
                opt.zeroGrad();
                double dt = (System.nanoTime() - t0) / 1e9;

                smoothLoss = 0.9 * smoothLoss + 0.1 * trainLoss;
                double debiased = smoothLoss / (1 - Math.pow(0.9, step + 1));
                double tokPerSec = dial.totalBatch() / dt;
                // every rank measured its peak at the same time on shared cores: together they make the machine's
                double mfu = 100.0 * dial.flopsPerToken() * dial.totalBatch() / dt / (peak * world);
                if (step > 10) trainingTime += dt;
                int done = step + 1;
                double eta = step > 10 ? trainingTime / (step - 10) * (n - done) : Double.NaN;
                losses.add(trainLoss);
                bar.clear();
                out.printf(Locale.ROOT, "step %05d/%05d (%.2f%%) | loss: %.6f | lrm: %.2f | dt: %.2fms | tok/sec: %,.0f | mfu: %.2f%% | epoch: %d | total time: %.2fm | eta: %s%n",
                        done, n, 100.0 * done / n, debiased, lrm, dt * 1e3, tokPerSec, mfu, consumed.epoch(), trainingTime / 60,
                        Double.isNaN(eta) ? "-" : String.format(Locale.ROOT, "%.1fm", eta / 60));
                bar.update(done, n, String.format(Locale.ROOT, "loss %.4f", debiased), true);
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("step", done);
                m.put("loss", trainLoss);
                m.put("smooth_loss", debiased);
                m.put("lrm", lrm);
                m.put("dt", dt);
                m.put("tok_per_sec", tokPerSec);
                m.put("mfu", mfu);
                if (overlap != null) {
                    m.put("reduce_wait", waited);
                    reduceWait += waited;
                    stepTime += dt;
                }
                if (master) appendMetric(metricsFile, m);
                step++;
            }
            bar.clear();
        }
        if (overlap != null) {
            overlap.close();
            out.printf(Locale.ROOT, "Gradient all-reduce (%d buckets, overlapped with the backward): waited %.1f%% of the step time%n",
                    overlap.bucketCount(), stepTime > 0 ? 100 * reduceWait / stepTime : 0.0);
        }
        out.printf(Locale.ROOT, "Minimum validation bpb: %.6f%n", minValBpb);
        if (master) MetricsPlot.write(metricsFile, ckptDir.resolve("base_train.png"));
        return new Result(step, losses, valHistory, minValBpb, unigramBpb, coreHistory, ckptDir, samples);
    }

    /** The unigram bar: token frequencies over {@code countSteps} train batches, scored on the val batches bpb uses. */
    static double unigramBpb(DataSource data, TokenizerView tok, int b, int t, int countSteps, int evalSteps) {
        UnigramBaseline unigram = new UnigramBaseline(tok.vocabSize());
        try (DataLoader train = new DataLoader(data.files(DataSource.Split.TRAIN), tok.encode(), tok.bos(), b, t, 0, 1, null)) {
            for (int i = 0; i < countSteps; i++) unigram.count(train.next().targets());
        }
        BitsPerByte acc = new BitsPerByte();
        try (DataLoader val = new DataLoader(data.files(DataSource.Split.VAL), tok.encode(), tok.bos(), b, t, 0, 1, null)) {
            for (int i = 0; i < evalSteps; i++) unigram.score(val.next().targets(), tok.tokenBytes(), acc);
        }
        return acc.value();
    }

    /** nanochat's evaluate_bpb over a fresh val loader: every rank its shard, the nats and bytes summed over ranks. */
    static double evaluateBpb(GPT model, DataSource data, TokenizerView tok, int b, int t, int steps, Collective comm) {
        try (DataLoader val = new DataLoader(data.files(DataSource.Split.VAL), tok.encode(), tok.bos(), b, t, comm.rank(),
                comm.worldSize(), null); var noGrad = Autograd.noGrad()) {
            BitsPerByte mine = BitsPerByte.evaluate(val, steps, (x, y) -> model.loss(Tensor.ofInts(x, b, t), Tensor.ofInts(y, b, t),
                    Reduction.NONE).value().toFloatArray(), tok.tokenBytes());
            if (comm.worldSize() == 1) return mine.value();
            double[] all = comm.allGatherDoubles(mine.nats(), mine.bytes()); // exact, summed in rank order on every rank
            double nats = 0;
            long bytes = 0;
            for (int r = 0; r < comm.worldSize(); r++) {
                nats += all[2 * r];
                bytes += (long) all[2 * r + 1];
            }
            return BitsPerByte.bpb(nats, bytes);
        }
    }

    /**
     * The CORE bundle, checked before the first step so that a missing or malformed one fails now, not after hours
     * of training: {@code dir} if given, else {@code <base>/eval_bundle}, downloaded there (by rank 0) when absent as
     * nanochat does. Every example line is read once here, so a malformed line stops the run with its file and line.
     */
    static CoreBundle coreBundle(Path dir, Collective comm, PrintStream out) throws IOException {
        Path path = dir != null ? dir : BaseDir.get().resolve("eval_bundle");
        if (dir == null && comm.rank() == 0 && !Files.isRegularFile(path.resolve("core.yaml"))) {
            out.println("CORE metric: no eval bundle in " + path + "; downloading " + EvalBundleDownload.URL);
            try {
                EvalBundleDownload.download(EvalBundleDownload.URL, path);
            } catch (IOException e) {
                throw new IOException("CORE metric: no eval bundle in " + path + " and the download failed (" + e.getMessage()
                        + "); pass --bundle DIR, fetch it with 'nanochat4j base-eval --download-bundle', or turn CORE off "
                        + "with --core-metric-every -1", e);
            }
        }
        comm.barrier(); // rank 0's download is complete before the others read it
        CoreBundle bundle = CoreBundle.load(path);
        List<String> warnings = new ArrayList<>();
        for (CoreTask task : bundle.tasks()) CoreBundle.readExamples(task, CoreBundle.OnBadLine.STOP, warnings);
        if (!bundle.missing().isEmpty()) {
            out.println("CORE metric: " + bundle.missing().size() + " task(s) listed in core.yaml have no data file and are left out: "
                    + bundle.missing());
        }
        return bundle;
    }

    /** CORE over every task, each rank scoring its share of the examples; the counts are summed over ranks. */
    static double evaluateCore(CoreEval core, CoreBundle bundle, int maxPerTask, Collective comm) throws IOException {
        CoreEval.Result r = core.run(bundle, maxPerTask, label -> true, CoreBundle.OnBadLine.STOP, task -> {}, comm.rank(),
                comm.worldSize(), counts -> {
                    if (comm.worldSize() == 1) return counts;
                    double[] all = comm.allGatherDoubles(counts[0], counts[1]);
                    long[] sum = new long[2];
                    for (int i = 0; i < all.length; i++) sum[i % 2] += (long) all[i];
                    return sum;
                });
        return r.core();
    }

    /** CORE's tokenizer view: BOS, then the text's ids (what base-eval's {@code encode(text, bos)} gives). */
    static CoreEval.Encoder encoderWithBos(TokenizerView tok) {
        return new CoreEval.Encoder(text -> {
            int[] ids = tok.encode().apply(text);
            int[] out = new int[ids.length + 1];
            out[0] = tok.bos();
            System.arraycopy(ids, 0, out, 1, ids.length);
            return out;
        }, tok.bos());
    }

    /** Greedy continuation of {@code prompt} (BOS prepended) by {@code tokens} tokens. */
    static String sample(GPT model, TokenizerView tok, String prompt, int tokens) {
        int[] p = tok.encode().apply(prompt);
        int[] ids = new int[p.length + 1 + tokens];
        ids[0] = tok.bos();
        System.arraycopy(p, 0, ids, 1, p.length);
        int len = p.length + 1;
        int vocab = model.config().vocabSize();
        for (int i = 0; i < tokens; i++) {
            int ctx = Math.min(len, model.config().sequenceLen());
            int[] window = java.util.Arrays.copyOfRange(ids, len - ctx, len);
            float[] logits = model.logits(Tensor.ofInts(window, 1, ctx)).toFloatArray();
            int row = (ctx - 1) * (logits.length / ctx);
            int best = 0;
            for (int v = 1; v < vocab; v++) if (logits[row + v] > logits[row + best]) best = v;
            ids[len++] = best;
        }
        return tok.decode().apply(java.util.Arrays.copyOfRange(ids, p.length + 1, len));
    }

    private static void save(Path dir, GPT model, MuonAdamW opt, int step, double valBpb, double coreMetric, BaseTrainOptions o, DepthDial dial,
                             LoaderState loader, double minValBpb, double smoothLoss, double trainingTime, TokenizerView tok,
                             Collective comm) throws IOException {
        // A meta file means the step is complete: drop an old one of the same step first, then write the optimizer
        // (every rank its shard), the model, and the meta file last (each atomically), so a crash in between leaves no
        // loadable mix.
        if (comm.rank() == 0) Files.deleteIfExists(Checkpoint.metaFile(dir, step));
        comm.barrier();
        opt.save(dir, step);
        List<LoaderState> loaders = gatherLoaderStates(loader, comm);
        comm.barrier(); // every rank's optimizer file is on disk before rank 0 writes the model and meta
        if (comm.rank() != 0) return;
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("val_bpb", Double.isNaN(valBpb) ? null : valBpb);
        extra.put("user_config", o.userConfig());
        extra.put("device_batch_size", o.deviceBatchSize);
        extra.put("max_seq_len", o.maxSeqLen);
        extra.put("total_batch_size", dial.totalBatch());
        extra.put("dataloader_state_dict", JSON.convertValue(loader, Map.class));
        if (comm.worldSize() > 1) extra.put("dataloader_state_per_rank", loaders.stream().map(l -> JSON.convertValue(l, Map.class)).toList());
        Map<String, Object> loop = new LinkedHashMap<>();
        loop.put("min_val_bpb", Double.toString(minValBpb));
        loop.put("smooth_train_loss", Double.toString(smoothLoss));
        loop.put("total_training_time", Double.toString(trainingTime));
        extra.put("loop_state", loop);
        Map<String, Object> metrics = new LinkedHashMap<>();
        if (!Double.isNaN(valBpb)) metrics.put("val_bpb", valBpb);
        if (!Double.isNaN(coreMetric)) metrics.put("core_metric", coreMetric);
        Checkpoint.save(dir, model, new Checkpoint.Meta(model.config(), step, tok.name(), metrics, extra), Safetensors.DType.F32);
    }

    /** Every rank's exact loader state, on every rank (rank 0 writes them into the meta). */
    private static List<LoaderState> gatherLoaderStates(LoaderState mine, Collective comm) {
        if (comm.worldSize() == 1) return List.of(mine);
        int w = comm.worldSize();
        double[] lengths = comm.allGatherDoubles(mine.buffer().length);
        int max = 0;
        for (double l : lengths) max = Math.max(max, (int) l);
        double[] v = new double[6 + max];
        int[] head = {mine.epoch(), mine.fileIndex(), mine.rowGroup(), mine.docOffset(), mine.rank(), mine.world()};
        for (int i = 0; i < 6; i++) v[i] = head[i];
        for (int i = 0; i < mine.buffer().length; i++) v[6 + i] = mine.buffer()[i];
        double[] all = comm.allGatherDoubles(v);
        List<LoaderState> out = new ArrayList<>();
        for (int r = 0; r < w; r++) {
            int o = r * v.length;
            int[] buffer = new int[(int) lengths[r]];
            for (int i = 0; i < buffer.length; i++) buffer[i] = (int) all[o + 6 + i];
            out.add(new LoaderState((int) all[o], (int) all[o + 1], (int) all[o + 2], (int) all[o + 3], (int) all[o + 4],
                    (int) all[o + 5], buffer));
        }
        return out;
    }

    /** Loop-state numbers are stored as strings so that ∞ (no evaluation yet) and every double bit survive JSON. */
    private static double number(Object o) {
        if (o == null) throw new IllegalArgumentException("checkpoint meta lacks a loop_state value");
        return Double.parseDouble(o.toString());
    }

    private static String availableSteps(Path dir) {
        if (!Files.isDirectory(dir)) return "the folder does not exist";
        try (var files = Files.list(dir)) {
            List<String> steps = files.map(p -> p.getFileName().toString()).filter(f -> f.matches("meta_\\d+\\.json"))
                    .map(f -> f.substring(5, f.length() - 5)).sorted().toList();
            return steps.isEmpty() ? "it has no checkpoints" : "available steps: " + String.join(", ", steps);
        } catch (IOException e) {
            return "cannot list it: " + e.getMessage();
        }
    }

    private static void appendMetric(Path file, Map<String, Object> m) throws IOException {
        Files.write(file, (JSON.writeValueAsString(m) + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
    }
}
