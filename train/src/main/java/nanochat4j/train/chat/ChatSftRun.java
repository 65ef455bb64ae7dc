package nanochat4j.train.chat;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import nanochat4j.autograd.Var;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.base.MetricsPlot;
import nanochat4j.train.cli.TrainDevice;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.tasks.TaskData;

/**
 * One rank's chat-sft run: the constructor loads the base model, resolves the inherited settings, builds the
 * mixtures and the optimizer and resumes or warm-starts it; {@link #run} is the loop. Each pass evaluates and saves
 * when due, then trains one step; the pass after the last step (an epoch consumed, or --num-iterations) only
 * evaluates and saves.
 */
final class ChatSftRun {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ChatSftOptions o;
    private final PrintStream out;
    private final Collective comm;
    private final boolean master;
    private final ModelSource.Loaded base;
    private final GPT model;
    private final Tokenizer tok;
    private final int[] tokenBytes;
    private final ChatSft.Resolved r;
    private final int accum, evalSteps;
    private final Path ckptDir, metrics;
    private final ChatSft.Mixtures mix;
    private final MuonAdamW opt;
    private final ChatSft.ChatCoreRunner chatcore;
    private final SftLoader train;

    private final List<Float> losses = new ArrayList<>();
    private final Map<Integer, Double> valLoss = new LinkedHashMap<>(), valBpb = new LinkedHashMap<>(), core = new LinkedHashMap<>();

    private final MatmulPrecision precision;
    private final Backend backend;

    // the loop state a checkpoint carries
    private int step;
    private double minValBpb = Double.POSITIVE_INFINITY, smoothLoss, trainingTime, progress;
    private long skipped;
    private double lastVal = Double.NaN;

    ChatSftRun(ChatSftOptions o, Path baseDir, PrintStream out, Collective comm) throws IOException {
        this.o = o;
        this.out = out;
        this.comm = comm;
        this.master = comm.rank() == 0;
        int world = comm.worldSize();
        base = ModelSource.BASE.load(baseDir, o.start.modelTag, o.start.modelStep, baseDir.resolve("tokenizer"));
        if (ChatSft.SOURCE.equals(base.meta().extra().get("source"))) {
            throw new IllegalArgumentException(base.dir() + " holds a chat-sft checkpoint, not a base model");
        }
        Device device = o.device.kind();
        backend = TrainDevice.backend(device); // before anything slow: --device cuda without a GPU fails at once
        precision = o.device.precision.get();
        model = InferenceDevice.place(base.model(), device);
        model.shelveActivations(o.device.bf16Activations);
        tok = base.tokenizer();
        tokenBytes = tok.tokenByteLengths();
        r = ChatSft.resolve(o, base.meta(), out);
        long perMicro = (long) r.batch() * r.seq() * world;
        if (r.totalBatch() % perMicro != 0) {
            throw new IllegalArgumentException("--total-batch-size " + r.totalBatch() + " is not a multiple of --device-batch-size × --max-seq-len"
                    + (world > 1 ? " × ranks" : "") + " = " + perMicro);
        }
        accum = (int) (r.totalBatch() / perMicro);
        ckptDir = o.resume.checkpointDir(ModelSource.SFT.dir(baseDir), o.start.tagOr(base.dir().getFileName().toString()));
        out.printf(Locale.ROOT, "Base model: %s step %d (%s)%n", base.dir(), base.step(), model.config());
        out.println(TrainDevice.line(backend, precision));
        String activations = TrainDevice.activationsLine(device, precision, o.device.bf16Activations);
        if (activations != null) out.println(activations);
        out.printf(Locale.ROOT, "Batch: %,d tokens/step = %d × %d × %d micro-steps × %d rank%s%n", r.totalBatch(), r.batch(), r.seq(), accum,
                world, world == 1 ? "" : "s");

        List<String> warnings = new ArrayList<>();
        TaskData data = o.tasks.open(warnings);
        mix = ChatSft.mixtures(o, data);
        for (String w : warnings) out.println("warning: " + w);
        out.printf(Locale.ROOT, "Training mixture: %,d conversations (%s); validation: %,d%n", mix.train().size(), mix.description(), mix.val().size());

        // LRs are nanochat's CLI values × init-lr-frac (its initial_lr); the schedule multiplies them by lrm.
        double f = o.initLrFrac;
        opt = new MuonAdamW(model.paramGroups(r.unembLr() * f, r.embLr() * f, r.matLr() * f, 0.0, o.scalarLr * f), comm);
        SftLoader.State loaderState = null;
        if (o.resume.resuming()) {
            loaderState = resume();
        } else if (o.loadOptimizer == 1) {
            ChatSft.warmStart(opt, base.dir(), base.step(), out);
        }

        chatcore = o.chatcoreEvery > 0 ? new ChatSft.ChatCoreRunner(data, tok, model, r.batch(), o.chatcoreMaxCat, o.chatcoreMaxSample, comm, out) : null;
        if (master) Files.createDirectories(ckptDir);
        comm.barrier();
        metrics = ckptDir.resolve("metrics.jsonl");
        evalSteps = (int) Math.max(1, o.evalTokens / perMicro);
        train = new SftLoader(mix.train(), c -> ChatRenderer.render(tok, c, Integer.MAX_VALUE), r.batch(), r.seq(), tok.bosId(), comm.rank(),
                world, 100, loaderState);
    }

    /** The run, with the GPU's linear layers at {@code --precision} for its length only. */
    ChatSft.Result run() throws IOException {
        return precision.during(backend, this::train);
    }

    private ChatSft.Result train() throws IOException {
        boolean last = false;
        while (true) {
            SftLoader.State atStep = train.state();
            if (o.numIterations > 0 && step >= o.numIterations) last = true;
            last = ChatSft.agreeAny(last, comm);
            evaluate(last);
            if (last || (step > 0 && step != o.resume.resumeFromStep && o.saveEvery > 0 && step % o.saveEvery == 0)) {
                save(atStep);
                out.printf(Locale.ROOT, "Saved checkpoint step %d to %s%n", step, ckptDir);
            }
            if (last) break;
            last = trainStep();
        }
        out.printf(Locale.ROOT, "Minimum validation bpb: %.6f; micro-batches skipped (no supervised token): %d; conversations cropped to the row: %d%n",
                minValBpb, skipped, train.cropped());
        if (master) MetricsPlot.drawOrSay(png -> MetricsPlot.write(metrics, png), ckptDir.resolve("chat_sft.png"), out);
        return new ChatSft.Result(step, losses, valLoss, valBpb, core, skipped, train.cropped(), ckptDir);
    }

    /** Val loss and bpb, and ChatCORE, each when its interval comes round and at the end. */
    private void evaluate(boolean last) throws IOException {
        if (last || (o.evalEvery > 0 && step % o.evalEvery == 0)) {
            double[] v = ChatSft.validate(model, mix.val(), tok, r, evalSteps, tokenBytes, comm);
            lastVal = v[1];
            valLoss.put(step, v[0]);
            valBpb.put(step, v[1]);
            minValBpb = Math.min(minValBpb, v[1]);
            out.printf(Locale.ROOT, "Step %05d | Validation loss: %.6f | bpb: %.6f%n", step, v[0], v[1]);
            if (master) ChatSft.appendMetric(metrics, Map.of("step", step, "val_loss", v[0], "val_bpb", v[1]));
        }
        if (chatcore != null && (last || (step > 0 && step % o.chatcoreEvery == 0))) {
            ChatSft.ChatCoreRunner.Outcome c = chatcore.run();
            if (!Double.isNaN(c.chatCore())) core.put(step, c.chatCore());
            out.printf(Locale.ROOT, "Step %05d | ChatCORE: %.4f | ChatCORE_cat: %.4f%n", step, c.chatCore(), c.chatCoreCat());
            if (master) {
                Map<String, Object> m = new LinkedHashMap<>();
                m.put("step", step);
                if (!Double.isNaN(c.chatCore())) m.put("chatcore", c.chatCore());
                m.put("chatcore_cat", c.chatCoreCat());
                c.accuracy().forEach((k, a) -> m.put("chatcore/" + k, a));
                ChatSft.appendMetric(metrics, m);
            }
        }
    }

    /** One optimizer step over {@code accum} micro-batches; returns whether the mixture's epoch ended in it. */
    private boolean trainStep() throws IOException {
        long t0 = System.nanoTime();
        List<SftLoader.Batch> micro = new ArrayList<>();
        int withTokens = 0;
        boolean epochDone = false;
        for (int m = 0; m < accum; m++) {
            SftLoader.Batch b = train.next();
            micro.add(b);
            if (b.supervised() > 0) withTokens++;
            if (b.epochDone()) epochDone = true;
            progress = Math.max(progress, o.numIterations > 0 ? (step + 1.0) / o.numIterations : b.progress());
        }
        float trainLoss = forwardBackward(micro, withTokens);
        double lrm = ChatSft.lrMultiplier(progress, o);
        opt.setLrMultiplier(lrm);
        opt.setMuonMomentum(ChatSft.muonMomentum(step));
        boolean anyRank = ChatSft.agreeAny(withTokens > 0, comm);
        if (anyRank) opt.step(); // every rank joins the optimizer's collectives, with zero gradients if it had none
        opt.zeroGrad();
        double dt = (System.nanoTime() - t0) / 1e9;
        step++;
        logStep(trainLoss, lrm, dt, micro.getLast().epoch());
        return epochDone;
    }

    /**
     * Forward and backward of every micro-batch with a supervised token, each loss weighted 1/withTokens; the others
     * are skipped and counted. Returns the last loss computed (NaN when all were skipped).
     */
    private float forwardBackward(List<SftLoader.Batch> micro, int withTokens) {
        float trainLoss = Float.NaN;
        for (SftLoader.Batch b : micro) {
            if (b.supervised() == 0) {
                skipped++;
                continue;
            }
            try (var recycling = Recycler.open()) {   // activations written into the last micro-batch's buffers
                Var loss = model.loss(Tensor.ofInts(b.inputs(), r.batch(), r.seq()), Tensor.ofInts(b.targets(), r.batch(), r.seq()), Reduction.MEAN);
                trainLoss = loss.item();
                loss.backward(1f / withTokens);
            }
        }
        if (withTokens > 0 && !Float.isFinite(trainLoss)) throw new IllegalStateException("train loss is " + trainLoss + " at step " + step);
        return trainLoss;
    }

    /** The log line and metrics line of the step just taken ({@link #step} already counts it). */
    private void logStep(float trainLoss, double lrm, double dt, int epoch) throws IOException {
        losses.add(trainLoss); // NaN for a step whose micro-batches were all skipped
        if (!Float.isNaN(trainLoss)) smoothLoss = 0.9 * smoothLoss + 0.1 * trainLoss;
        double debiased = smoothLoss / (1 - Math.pow(0.9, step + 1));
        if (step > 10) trainingTime += dt;
        out.printf(Locale.ROOT, "step %05d (%.2f%%) | loss: %.6f | lrm: %.2f | dt: %.2fms | tok/sec: %,.0f | epoch: %d | skipped: %d | total time: %.2fm%n",
                step, 100 * progress, debiased, lrm, dt * 1e3, r.totalBatch() / dt, epoch, skipped, trainingTime / 60);
        if (master) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("step", step);
            m.put("loss", Float.isNaN(trainLoss) ? null : trainLoss);
            m.put("smooth_loss", debiased);
            m.put("lrm", lrm);
            m.put("dt", dt);
            m.put("progress", progress);
            m.put("skipped_micro_batches", skipped);
            ChatSft.appendMetric(metrics, m);
        }
    }

    /** Loads the --resume-from-step checkpoint into the model, the optimizer and the loop state; returns this rank's loader state. */
    private SftLoader.State resume() throws IOException {
        int from = o.resume.resumeFromStep;
        Path meta = Checkpoint.metaFile(ckptDir, from);
        if (!Files.exists(meta)) throw new IllegalArgumentException("--resume-from-step " + from + ": no checkpoint " + meta);
        Checkpoint.Loaded loaded = Checkpoint.load(ckptDir, from);
        Map<String, Object> extra = loaded.meta().extra();
        if (!ChatSft.SOURCE.equals(extra.get("source"))) {
            throw new IllegalArgumentException(meta + " is not a chat-sft checkpoint (source " + extra.get("source") + "): cannot resume chat-sft from it");
        }
        if (!loaded.meta().config().equals(model.config())) {
            throw new IllegalArgumentException(meta + " is a different model (" + loaded.meta().config() + ") than the base " + model.config());
        }
        model.loadStateDict(loaded.params());
        opt.load(ckptDir, from);
        List<?> perRank = (List<?>) extra.get("dataloader_state_per_rank");
        if (perRank == null || perRank.size() != comm.worldSize()) {
            throw new IllegalArgumentException(meta + " was saved by " + (perRank == null ? "?" : perRank.size()) + " rank(s); resume with the same number ("
                    + comm.worldSize() + " now)");
        }
        Map<?, ?> loop = (Map<?, ?>) extra.get("loop_state");
        minValBpb = Double.parseDouble(loop.get("min_val_bpb").toString());
        smoothLoss = Double.parseDouble(loop.get("smooth_train_loss").toString());
        trainingTime = Double.parseDouble(loop.get("total_training_time").toString());
        progress = Double.parseDouble(loop.get("progress").toString());
        skipped = Long.parseLong(loop.get("skipped_micro_batches").toString());
        step = from;
        out.printf(Locale.ROOT, "Resumed from step %d of %s%n", step, ckptDir);
        return JSON.convertValue(perRank.get(comm.rank()), SftLoader.State.class);
    }

    /** Optimizer (every rank), model and meta (rank 0), the meta last, as base-train saves. */
    private void save(SftLoader.State atStep) throws IOException {
        if (master) Files.deleteIfExists(Checkpoint.metaFile(ckptDir, step));
        comm.barrier();
        opt.save(ckptDir, step);
        List<Map<?, ?>> loaders = ChatSft.gatherLoaderStates(atStep, comm);
        comm.barrier();
        if (!master) return;
        Map<String, Object> uc = o.userConfig();
        uc.put("max_seq_len", r.seq());
        uc.put("device_batch_size", r.batch());
        uc.put("total_batch_size", r.totalBatch());
        uc.put("embedding_lr", r.embLr());
        uc.put("unembedding_lr", r.unembLr());
        uc.put("matrix_lr", r.matLr());
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("source", ChatSft.SOURCE);
        extra.put("base_checkpoint", base.dir().toString() + "#" + base.step());
        extra.put("val_bpb", Double.isNaN(lastVal) ? null : lastVal);
        extra.put("user_config", uc);
        extra.put("device_batch_size", r.batch());
        extra.put("max_seq_len", r.seq());
        extra.put("total_batch_size", r.totalBatch());
        extra.put("dataloader_state_per_rank", loaders);
        Map<String, Object> loop = new LinkedHashMap<>();
        loop.put("min_val_bpb", Double.toString(minValBpb));
        loop.put("smooth_train_loss", Double.toString(smoothLoss));
        loop.put("total_training_time", Double.toString(trainingTime));
        loop.put("progress", Double.toString(progress));
        loop.put("skipped_micro_batches", Long.toString(skipped));
        loop.put("cropped_conversations", Long.toString(train.cropped()));
        extra.put("loop_state", loop);
        Map<String, Object> metricsAtSave = new LinkedHashMap<>();
        if (!Double.isNaN(lastVal)) metricsAtSave.put("val_bpb", lastVal);
        Checkpoint.save(ckptDir, model, new Checkpoint.Meta(model.config(), step, base.meta().tokenizer(), metricsAtSave, extra),
                Safetensors.DType.F32);
    }
}
