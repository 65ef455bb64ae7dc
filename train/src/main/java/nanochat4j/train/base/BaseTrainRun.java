package nanochat4j.train.base;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
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
import java.util.function.BiConsumer;
import nanochat4j.autograd.Var;
import nanochat4j.model.BaseDir;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.FmaPeak;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaOutOfMemoryException;
import nanochat4j.tensor.cuda.GpuPeaks;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.ProgressBar;
import nanochat4j.train.cli.TrainDevice;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.OverlappedGradReduce;
import nanochat4j.train.data.DataLoader;
import nanochat4j.train.data.DataSource;
import nanochat4j.train.data.DatasetDownload;
import nanochat4j.train.data.LoaderState;
import nanochat4j.train.eval.BaseEvalCommand;
import nanochat4j.train.eval.CoreBundle;
import nanochat4j.train.eval.CoreEval;
import nanochat4j.train.eval.ModelScorer;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.optim.Schedules;

/**
 * One rank's base-train run: the constructor sets it up from the options (model, optimizer, resume, data, the
 * evaluations), {@link #run} is the loop. Each pass of the loop evaluates, samples and saves when due, then trains
 * one step; the last pass (step = N) only evaluates and saves.
 */
final class BaseTrainRun {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final BaseTrainOptions o;
    private final DepthDial dial;
    private final TokenizerView tok;
    private final PrintStream out;
    private final Collective comm;
    private final boolean master;
    private final int accum;
    private final long tokensPerMicro;
    private final Path ckptDir, metricsFile;
    private final GPT model;
    private final MuonAdamW opt;
    /** Non-null when ranks average their gradients during the backward (then each runs the whole optimizer). */
    private final OverlappedGradReduce overlap;
    private double reduceWait, stepTime;   // seconds, summed over the steps, for the overlap's closing line
    private final Schedules sched;
    private final LoaderState resumedLoader;
    private final DataSource data;
    private final CoreBundle bundle;
    private final CoreEval core;
    private final double peak;
    private final int evalSteps;
    private final double unigramBpb;
    private final ProgressBar bar;

    private final List<Float> losses = new ArrayList<>();
    private final Map<Integer, Double> valHistory = new LinkedHashMap<>();
    private final Map<Integer, Double> coreHistory = new LinkedHashMap<>();
    private final List<String> samples = new ArrayList<>();

    private LoopState state = LoopState.fresh();
    private double valBpb = Double.NaN; // the latest evaluation, for the checkpoint's meta
    private LoaderState consumed;       // the loader state before the batch in hand: what a checkpoint saves
    private DataLoader.Batch batch;
    /** What the run is doing now, for the out-of-device-memory message ("the optimizer step of step 12"). */
    private String phase = "setting up";
    private final MatmulPrecision precision;

    /** Test seam: told of each phase as it starts, with the rank (BaseTrainTest injects device failures through it). */
    static volatile BiConsumer<Integer, String> phaseProbe = (rank, p) -> {};

    BaseTrainRun(BaseTrainOptions o, DepthDial dial, TokenizerView tok, PrintStream out, Collective comm) throws IOException {
        this.o = o;
        this.dial = dial;
        this.tok = tok;
        this.out = out;
        this.comm = comm;
        this.master = comm.rank() == 0;
        int world = comm.worldSize();
        tokensPerMicro = (long) o.deviceBatchSize * o.maxSeqLen * world; // one micro-step of every rank
        accum = accumulation();
        if (o.profileStep != -1 && (o.profileStep < 1 || o.profileStep > dial.numIterations())) {
            throw new IllegalArgumentException("--profile-step " + o.profileStep + ": expected -1 (off) or a step from 1 to "
                    + dial.numIterations() + " (the run's last)");
        }
        ckptDir = o.resume.checkpointDir(BaseDir.get().resolve("base_checkpoints"), o.tag());
        Path dataDir = o.data != null ? o.data : DatasetDownload.defaultDir();
        printPlan();

        Device device = o.deviceKind();
        Backend backend = TrainDevice.backend(device);
        precision = MatmulPrecision.parse(o.precision);
        out.println(TrainDevice.line(backend, precision));
        String activations = TrainDevice.activationsLine(device, precision, o.bf16Activations);
        if (activations != null) out.println(activations);
        try {
            enter(OutOfDeviceMemory.SETUP + " on the " + device);
            model = GPT.create(dial.config(), 42, device);
            model.shelveActivations(o.bf16Activations);
            var groups = BaseTrain.paramGroups(model, o, dial);
            // ranks (GPU ones by default) average their gradients while the backward runs, then each runs the whole optimizer
            overlap = overlapReduce(world, device)
                    ? new OverlappedGradReduce(model.parameters(), comm, OverlappedGradReduce.DEFAULT_BUCKET_FLOATS) : null;
            opt = overlap != null ? MuonAdamW.replicated(groups, comm.rank()) : new MuonAdamW(groups, comm);
            opt.setPolarExpressFp32(switch (o.muonPrecision) {
                case "auto" -> false;
                case "fp32" -> true;
                default -> throw new IllegalArgumentException("--muon-precision=" + o.muonPrecision + ": expected auto or fp32");
            });
            sched = new Schedules(dial.numIterations(), o.warmupSteps, o.warmdownRatio, o.finalLrFrac, dial.weightDecay());
            if (o.resume.resuming()) enter("loading checkpoint step " + o.resume.resumeFromStep + " onto the " + device);
            resumedLoader = o.resume.resuming() ? resume() : null;
        } catch (CudaOutOfMemoryException e) {
            throw outOfMemory(e);
        }

        if (!Files.isDirectory(dataDir)) {
            throw new IllegalArgumentException("no training data: " + dataDir + " does not exist; give --data DIR (a folder of *.parquet, "
                    + "*.jsonl or *.txt files, the last one by name is validation) or download shards with 'nanochat4j dataset -n 8'");
        }
        data = DataSource.open(dataDir, o.stripGutenberg);
        bundle = o.coreMetricEvery > 0 ? BaseTrain.coreBundle(o.bundle, comm, out) : null;
        core = bundle == null ? null : new CoreEval(new ModelScorer(model), BaseTrain.encoderWithBos(tok));
        peak = peakFlops(device);
        if (master) Files.createDirectories(ckptDir);
        comm.barrier(); // the folder exists for every rank
        metricsFile = ckptDir.resolve("metrics.jsonl");
        bar = new ProgressBar(out);
        evalSteps = (int) Math.max(1, o.evalTokens / tokensPerMicro); // per rank, as nanochat
        unigramBpb = unigramBaseline();
    }

    /** Micro-steps per optimizer step: the total batch over one micro-step of every rank, which must divide it. */
    private int accumulation() {
        int world = comm.worldSize();
        if (dial.totalBatch() % tokensPerMicro != 0) {
            throw new IllegalArgumentException("--total-batch-size " + dial.totalBatch() + " is not a multiple of --device-batch-size × "
                    + "--max-seq-len" + (world > 1 ? " × ranks" : "") + " = " + o.deviceBatchSize + " × " + o.maxSeqLen
                    + (world > 1 ? " × " + world : "") + " = " + tokensPerMicro);
        }
        return (int) (dial.totalBatch() / tokensPerMicro);
    }

    private void printPlan() {
        GPTConfig config = dial.config();
        int n = dial.numIterations(), world = comm.worldSize();
        out.printf(Locale.ROOT, "Model: %s%n", config);
        out.printf(Locale.ROOT, "Parameters: %,d (scaling %,d); FLOPs per token %.3e%n", config.numScalingParams().total(),
                dial.scalingParams(), (double) dial.flopsPerToken());
        out.printf(Locale.ROOT, "Batch: %,d tokens/step = %d × %d × %d micro-steps × %d rank%s; LR scale %.4f; weight decay %.6f%n",
                dial.totalBatch(), o.deviceBatchSize, o.maxSeqLen, accum, world, world == 1 ? "" : "s", dial.batchLrScale(),
                dial.weightDecay());
        out.printf(Locale.ROOT, "Horizon: %,d steps (%,d tokens, %.2f tokens/param, %.3e FLOPs)%n", n, n * dial.totalBatch(),
                n * dial.totalBatch() / (double) dial.scalingParams(), (double) dial.flopsPerToken() * dial.totalBatch() * n);
    }

    /**
     * --overlap-reduce for this job. The two settings keep the optimizer's state in different layouts (on: one
     * unsharded state, saved by rank 0; off: a ZeRO-2 shard per rank), and auto means on for cuda, off for cpu; so a
     * resumed multi-rank run takes the layout its checkpoint recorded where the flag is auto (a GPU run's checkpoint
     * resumes on CPU ranks and back), and says which flag to give where the flag asks for the other one.
     */
    private boolean overlapReduce(int world, Device device) throws IOException {
        boolean on = o.overlapReduce(world, device);
        if (!o.resume.resuming() || world == 1 || !Files.exists(Checkpoint.metaFile(ckptDir, o.resume.resumeFromStep))) return on;
        Object saved = Checkpoint.readMeta(ckptDir, o.resume.resumeFromStep).extra().get("overlap_reduce");
        if (!(saved instanceof Boolean was) || was == on) return on;
        boolean auto = o.overlapReduce == null || o.overlapReduce.equalsIgnoreCase("auto");
        if (!auto) {
            throw new IllegalArgumentException("checkpoint step " + o.resume.resumeFromStep + " in " + ckptDir + " was saved with --overlap-reduce "
                    + (was ? "on (one unsharded optimizer state)" : "off (an optimizer shard per rank)") + "; resume it with --overlap-reduce "
                    + (was ? "on" : "off") + " or auto");
        }
        out.printf(Locale.ROOT, "--overlap-reduce auto: %s, as checkpoint step %d was saved%n", was ? "on" : "off", o.resume.resumeFromStep);
        return was;
    }

    /** Whether {@link #mfuAbove100} was printed (once a run). */
    private boolean mfuNoted;

    /** The line printed once when a step's MFU exceeds 100%: the peak it divides by must have read low. */
    static String mfuAbove100(double peak) {
        return String.format(Locale.ROOT, "note: MFU above 100%%: the peak it divides by (%.1f GFLOP/s, measured at the start) read"
                + " low, most likely because the machine was busy then; this run's MFU figures are relative to it", peak / 1e9);
    }

    /**
     * The FLOP/s that MFU divides by: the CPU's FMA peak measured now, or the GPU's dense bf16 peak from nanochat's
     * table ({@link GpuPeaks}); a GPU not in it is counted as an H100/H200 and the line says so.
     */
    private double peakFlops(Device device) {
        if (device == Device.CPU) {
            double p = FmaPeak.measure(5, 2_000_000) * 1e9;
            out.printf(Locale.ROOT, "CPU fp32 FMA peak: %.1f GFLOP/s (MFU is against this)%n", p / 1e9);
            return p;
        }
        String gpu = model.backend() instanceof CudaBackend cuda ? cuda.context().name() : null;
        double p = gpu == null ? Double.NaN : GpuPeaks.flops(gpu);
        if (Double.isNaN(p)) {
            out.printf(Locale.ROOT, "GPU peak: %.0f TFLOP/s dense bf16, an H100/H200's (%s is not in nanochat's table)%n",
                    BaseTrain.GPU_PEAK_FLOPS / 1e12, gpu == null ? model.backend().describe() : gpu);
            return BaseTrain.GPU_PEAK_FLOPS;
        }
        out.printf(Locale.ROOT, "GPU peak: %.0f TFLOP/s dense bf16 (%s, nanochat's table; MFU is against this)%n", p / 1e12, gpu);
        return p;
    }

    /** The unigram bar for val bpb, on rank 0 when val bpb is on (scored on the val batches of all ranks together). */
    private double unigramBaseline() {
        if (o.evalEvery <= 0 || !master) return Double.NaN;
        int countSteps = (int) Math.max(1, Math.min(16L * evalSteps, (4L << 20) / tokensPerMicro)); // ≤ ~4M train tokens
        double bpb = BaseTrain.unigramBpb(data, tok, o.deviceBatchSize, o.maxSeqLen, countSteps, evalSteps * comm.worldSize());
        out.printf(Locale.ROOT, "Unigram baseline bpb of this tokenizer (train counts, val batches): %.6f%n", bpb);
        return bpb;
    }

    /** The run, with the GPU's linear layers at {@code --precision} for its length only. */
    BaseTrain.Result run() throws IOException {
        return precision.during(model.backend(), this::train);
    }

    private BaseTrain.Result train() throws IOException {
        try (DataLoader train = new DataLoader(data.files(DataSource.Split.TRAIN), tok.encode(), tok.bos(), o.deviceBatchSize, o.maxSeqLen,
                comm.rank(), comm.worldSize(), resumedLoader)) {
            consumed = train.state();
            batch = train.next();
            while (true) {
                boolean last = state.step() == dial.numIterations();
                enter("the evaluation at step " + state.step());
                evaluate(last);
                if ((last && o.saveFinal) || saveDue()) {
                    enter("saving checkpoint step " + state.step() + " (model and optimizer state copied to the host)");
                    save();
                }
                if (last) break;

                long t0 = System.nanoTime();
                boolean profiled = startProfile(state.step() + 1);
                float trainLoss;
                double waited, lrm;
                try {
                    trainLoss = forwardBackward(train);
                    enter("the gradient all-reduce of step " + (state.step() + 1));
                    waited = overlap == null ? 0 : overlap.await();
                    lrm = sched.lrMultiplier(state.step());
                    opt.setLrMultiplier(lrm);
                    opt.setMuonMomentum(sched.muonMomentum(state.step()));
                    opt.setMuonWeightDecay(sched.muonWeightDecay(state.step()));
                    enter("the optimizer step of step " + (state.step() + 1));
                    opt.step();
                    opt.zeroGrad();
                } catch (RuntimeException | Error e) {
                    if (profiled) StepProfile.abandon(model.backend(), e); // the profile never outlives its step
                    throw e;
                }
                double dt = (System.nanoTime() - t0) / 1e9;
                List<Backend.KernelTime> kernels = profiled ? model.backend().stopProfile() : null;
                logStep(trainLoss, lrm, dt, waited);
                if (kernels != null && master) out.print(StepProfile.table(state.step(), kernels, dt * 1e3));
            }
            bar.clear();
        } catch (CudaOutOfMemoryException e) {
            bar.clear();
            throw outOfMemory(e);
        }
        if (overlap != null) {
            overlap.close();
            out.printf(Locale.ROOT, "Gradient all-reduce (%d buckets, overlapped with the backward): waited %.1f%% of the step time%n",
                    overlap.bucketCount(), stepTime > 0 ? 100 * reduceWait / stepTime : 0.0);
        }
        out.printf(Locale.ROOT, "Minimum validation bpb: %.6f%n", state.minValBpb());
        Backend.DeviceMemory memory = model.backend().deviceMemory();
        if (memory != null) out.println(memory.line());   // nanochat prints its max_memory_allocated here too
        if (master) MetricsPlot.drawOrSay(png -> MetricsPlot.write(metricsFile, png), ckptDir.resolve("base_train.png"), out);
        return new BaseTrain.Result(state.step(), losses, valHistory, state.minValBpb(), unigramBpb, coreHistory, ckptDir, samples);
    }

    /** Gradient accumulation over the micro-steps of this step; returns the last micro-step's loss. */
    private float forwardBackward(DataLoader train) {
        float trainLoss = 0;
        for (int micro = 0; micro < accum; micro++) {
            enter("the forward/backward of step " + (state.step() + 1) + " (micro-step " + (micro + 1) + " of " + accum + ")");
            try (var recycling = Recycler.open()) {   // this micro-step's activations are written into the last one's
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
            }
            consumed = batch.state();
            batch = train.next();
        }
        if (!Float.isFinite(trainLoss)) throw new IllegalStateException("train loss is " + trainLoss + " at step " + state.step());
        return trainLoss;
    }

    private void enter(String what) {
        phase = what;
        phaseProbe.accept(comm.rank(), what);
    }

    /** A device allocation failure as one message: what ran, the sizes, the flag to lower, the last checkpoint on disk. */
    private IllegalStateException outOfMemory(CudaOutOfMemoryException e) {
        return OutOfDeviceMemory.explain(e, phase, comm.rank(), comm.worldSize(), o.deviceBatchSize, o.maxSeqLen,
                dial.config().numScalingParams().total(), ckptDir);
    }

    /** Val bpb, CORE and samples, each when its interval comes round and at the end. */
    private void evaluate(boolean last) throws IOException {
        int step = state.step();
        if (o.evalEvery > 0 && (last || step % o.evalEvery == 0)) {
            bar.clear();
            valBpb = BaseTrain.evaluateBpb(model, data, tok, o.deviceBatchSize, o.maxSeqLen, evalSteps, comm);
            state = state.withValBpb(valBpb);
            valHistory.put(step, valBpb);
            out.printf(Locale.ROOT, "Step %05d | Validation bpb: %.6f%n", step, valBpb);
            if (master) appendMetric(Map.of("step", step, "val_bpb", valBpb));
        }
        if (core != null && (last || (step > 0 && step % o.coreMetricEvery == 0))) {
            bar.clear();
            double coreMetric = BaseTrain.evaluateCore(core, bundle, o.coreMetricMaxPerTask, comm);
            coreHistory.put(step, coreMetric);
            out.printf(Locale.ROOT, "Step %05d | CORE metric: %.4f%n", step, coreMetric);
            if (master) appendMetric(Map.of("step", step, "core_metric", coreMetric));
        }
        if (master && o.sampleEvery > 0 && (last || (step > 0 && step % o.sampleEvery == 0))) {
            bar.clear();
            for (String prompt : BaseEvalCommand.PROMPTS) {
                String line = prompt + BaseTrain.sample(model, tok, prompt, 16);
                samples.add(line);
                out.println(line);
            }
        }
    }

    /** A --save-every step, except the one a resumed run starts at (its checkpoint is on disk). */
    private boolean saveDue() {
        int step = state.step();
        return step > 0 && step != o.resume.resumeFromStep && o.saveEvery > 0 && step % o.saveEvery == 0;
    }

    /** Whether step {@code step} (counted from 1) is --profile-step's and its kernels are now being timed. */
    private boolean startProfile(int step) {
        if (step != o.profileStep) return false;
        if (model.backend().startProfile()) return true;
        if (master) out.println("--profile-step " + step + ": per-kernel device times need a GPU (--device cuda); the CPU runs each op as it is called, and a JFR recording shows where its time goes");
        return false;
    }

    /** The step's log line, progress bar and metrics line; advances the loop state. */
    private void logStep(float trainLoss, double lrm, double dt, double reduceWaited) throws IOException {
        state = state.after(trainLoss, dt);
        int done = state.step(), n = dial.numIterations();
        double debiased = state.debiasedLoss();
        double tokPerSec = dial.totalBatch() / dt;
        // every rank measured its peak at the same time on shared cores: together they make the machine's
        double mfu = 100.0 * dial.flopsPerToken() * dial.totalBatch() / dt / (peak * comm.worldSize());
        double eta = state.etaSeconds(n);
        losses.add(trainLoss);
        bar.clear();
        if (!mfuNoted && mfu > 100) {
            mfuNoted = true;
            out.println(mfuAbove100(peak));
        }
        out.printf(Locale.ROOT, "step %05d/%05d (%.2f%%) | loss: %.6f | lrm: %.2f | dt: %.2fms | tok/sec: %,.0f | mfu: %.2f%% | epoch: %d | total time: %.2fm | eta: %s%n",
                done, n, 100.0 * done / n, debiased, lrm, dt * 1e3, tokPerSec, mfu, consumed.epoch(), state.trainingTime() / 60,
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
            m.put("reduce_wait", reduceWaited);
            reduceWait += reduceWaited;
            stepTime += dt;
        }
        if (master) appendMetric(m);
    }

    /**
     * A meta file means the step is complete: drop an old one of the same step first, then write the optimizer (every
     * rank its shard), the model, and the meta file last (each atomically), so a crash in between leaves no loadable mix.
     */
    private void save() throws IOException {
        int step = state.step();
        bar.clear();
        if (master) Files.deleteIfExists(Checkpoint.metaFile(ckptDir, step));
        comm.barrier();
        opt.save(ckptDir, step);
        List<LoaderState> loaders = gatherLoaderStates(consumed, comm);
        comm.barrier(); // every rank's optimizer file is on disk before rank 0 writes the model and meta
        if (master) {
            double coreMetric = coreHistory.getOrDefault(step, Double.NaN);
            Map<String, Object> extra = new LinkedHashMap<>();
            extra.put("val_bpb", Double.isNaN(valBpb) ? null : valBpb);
            extra.put("user_config", o.userConfig());
            extra.put("device_batch_size", o.deviceBatchSize);
            extra.put("max_seq_len", o.maxSeqLen);
            extra.put("total_batch_size", dial.totalBatch());
            extra.put("num_iterations", dial.numIterations()); // the horizon: `scaling` tells a finished run from a stopped one
            extra.put("dataloader_state_dict", JSON.convertValue(consumed, Map.class));
            if (comm.worldSize() > 1) extra.put("dataloader_state_per_rank", loaders.stream().map(l -> JSON.convertValue(l, Map.class)).toList());
            extra.put("loop_state", state.toMeta());
            extra.put("overlap_reduce", overlap != null); // the optimizer state's layout (see overlapReduce)
            // which GEMM kernel each bf16 shape runs: a resumed run must use the same ones to continue bit for bit
            if (model.backend() instanceof CudaBackend cb) {
                extra.put("gemm_choices", cb.gemmChooser().saved());
                extra.put("attention_checks", cb.tensorCoreAttention().saved()); // and the attention kernels (TensorCoreAttention)
            }
            Map<String, Object> metrics = new LinkedHashMap<>();
            if (!Double.isNaN(valBpb)) metrics.put("val_bpb", valBpb);
            if (!Double.isNaN(coreMetric)) metrics.put("core_metric", coreMetric);
            Checkpoint.save(ckptDir, model, new Checkpoint.Meta(model.config(), step, tok.name(), metrics, extra), Safetensors.DType.F32);
        }
        out.printf(Locale.ROOT, "Saved checkpoint step %d to %s%n", step, ckptDir);
    }

    /** Loads the --resume-from-step checkpoint into the model, the optimizer and the loop state; returns this rank's loader state. */
    private LoaderState resume() throws IOException {
        int from = o.resume.resumeFromStep, world = comm.worldSize();
        Path meta = Checkpoint.metaFile(ckptDir, from);
        if (!Files.exists(meta)) {
            throw new IllegalArgumentException("--resume-from-step " + from + ": no checkpoint " + meta.getFileName() + " in "
                    + ckptDir + " (" + availableSteps(ckptDir) + ")");
        }
        Checkpoint.Loaded loaded = Checkpoint.load(ckptDir, from);
        if (!loaded.meta().config().equals(dial.config())) {
            throw new IllegalArgumentException("checkpoint step " + from + " in " + ckptDir + " is a different model: "
                    + loaded.meta().config() + "; these flags build " + dial.config());
        }
        model.loadStateDict(loaded.params());
        Path optFile = MuonAdamW.stateFile(ckptDir, from, 0);
        if (!Files.exists(optFile)) {
            throw new IllegalArgumentException("checkpoint step " + from + " in " + ckptDir + " has no optimizer state "
                    + optFile.getFileName() + ": cannot resume it exactly");
        }
        opt.load(ckptDir, from);
        Map<String, Object> extra = loaded.meta().extra();
        LoaderState loader = JSON.convertValue(extra.get("dataloader_state_dict"), LoaderState.class);
        if (world > 1) { // each rank continues from its own exact position
            List<?> perRank = (List<?>) extra.get("dataloader_state_per_rank");
            if (perRank == null || perRank.size() != world) {
                throw new IllegalArgumentException("checkpoint step " + from + " in " + ckptDir + " was saved by "
                        + (perRank == null ? 1 : perRank.size()) + " rank(s); resume it with the same number (this job has " + world + ")");
            }
            loader = JSON.convertValue(perRank.get(comm.rank()), LoaderState.class);
        }
        state = LoopState.fromMeta(extra.get("loop_state"), from);
        if (model.backend() instanceof CudaBackend cb && extra.get("gemm_choices") instanceof List<?> choices) {
            cb.gemmChooser().restore(choices.stream().map(String::valueOf).toList());
        }
        if (model.backend() instanceof CudaBackend cb && extra.get("attention_checks") instanceof List<?> checks) {
            cb.tensorCoreAttention().restore(checks.stream().map(String::valueOf).toList());
        }
        out.printf(Locale.ROOT, "Resumed from step %d of %s%n", from, ckptDir);
        return loader;
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
        List<LoaderState> states = new ArrayList<>();
        for (int r = 0; r < w; r++) {
            int off = r * v.length;
            int[] buffer = new int[(int) lengths[r]];
            for (int i = 0; i < buffer.length; i++) buffer[i] = (int) all[off + 6 + i];
            states.add(new LoaderState((int) all[off], (int) all[off + 1], (int) all[off + 2], (int) all[off + 3], (int) all[off + 4],
                    (int) all[off + 5], buffer));
        }
        return states;
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

    private void appendMetric(Map<String, Object> m) throws IOException {
        Files.write(metricsFile, (JSON.writeValueAsString(m) + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE,
                StandardOpenOption.APPEND);
    }
}
