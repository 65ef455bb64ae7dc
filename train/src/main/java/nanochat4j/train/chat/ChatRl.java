package nanochat4j.train.chat;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Ops;
import nanochat4j.autograd.Var;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.engine.Engine;
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
import nanochat4j.train.collective.Job;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.tasks.Gsm8k;
import nanochat4j.train.tasks.Task;
import nanochat4j.train.tasks.TaskData;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;

/**
 * nanochat's chat_rl.py ("GRPO" reduced to REINFORCE with a group-mean baseline) on GSM8K:
 * <ul>
 *   <li>starts from the SFT checkpoint; rank r takes train questions r, r+W, … in a cycle, examples-per-step / W of
 *       them per step;</li>
 *   <li>per question: num-samples completions through the {@link Engine} (KV-cache batched decode, temperature, top-k,
 *       the calculator live) in num-samples / device-batch-size rounds, each seeded from (step, question, round);
 *       reward 1 when GSM8K's final answer matches; {@link Rollouts} turns them into advantages, rows and weights;</li>
 *   <li>loss per pass of device-batch rows = Σ nll·adv / (valid·passes·examples-per-rank), gradients accumulated over
 *       the step, one MuonAdamW step (gradients averaged over ranks); no KL, no ratio/clip (on policy);</li>
 *   <li>LRs = nanochat's CLI values × init-lr-frac, multiplied by 1 − step/num_steps; Muon momentum stays 0.95;</li>
 *   <li>pass@k (k = 1..device-batch-size) on the first eval-examples GSM8K test problems at T = 1 every eval-every
 *       steps; metrics JSONL (reward, sequence length, sampling/scoring/update seconds, sampling tok/s, pass@k) and a
 *       PNG; checkpoints in chatrl_checkpoints/&lt;tag&gt; with the optimizer (nanochat saves none) and the data
 *       position, so --resume-from-step continues exactly.</li>
 * </ul>
 * On {@code --device cuda} the model, the KV caches of the rollouts, the gradients and the optimizer state live on the
 * GPU (linear layers at {@code --precision}); the sampled tokens come down, each pass's rows and loss weights go up.
 * Checkpoint step s is the state after s updates (nanochat names its last one num_steps − 1).
 */
public final class ChatRl {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String SOURCE = "chat_rl";

    private ChatRl() {}

    /** What a run did: mean reward per step (index = step), pass@k per eval step, where the checkpoints are. */
    public record Result(int finalStep, List<Double> meanReward, Map<Integer, double[]> passAtK, Path checkpointDir) {}

    /** One step's rollouts on this rank, for tests and logging. */
    record StepRollouts(List<Rollouts.Group> groups, List<float[]> advantages, List<Integer> sequenceLengths, double rewardSum,
                        long generatedTokens, double samplingSeconds, double scoringSeconds) {}

    public static Result run(ChatRlOptions o, Path baseDir, PrintStream out) throws IOException {
        return Job.run("chat-rl " + o.userConfig(), out, (comm, log) -> run(o, baseDir, log, comm));
    }

    public static Result run(ChatRlOptions o, Path baseDir, PrintStream out, Collective comm) throws IOException {
        int world = comm.worldSize();
        if (o.examplesPerStep < 1 || o.examplesPerStep % world != 0) {
            throw new IllegalArgumentException("--examples-per-step " + o.examplesPerStep + " must be a positive multiple of the number of ranks (" + world + ")");
        }
        if (o.deviceBatchSize < 1 || o.numSamples < 1 || o.numSamples % o.deviceBatchSize != 0) {
            throw new IllegalArgumentException("--num-samples " + o.numSamples + " must be a positive multiple of --device-batch-size " + o.deviceBatchSize);
        }
        Device device = o.device.kind();
        Backend backend = TrainDevice.backend(device); // before anything slow: --device cuda without a GPU fails at once
        MatmulPrecision precision = o.device.precision.get();
        ModelSource.Loaded sft = ChatModels.load(ModelSource.SFT, baseDir, o.start.modelTag, o.start.modelStep);
        GPT model = InferenceDevice.place(sft.model(), device);
        model.shelveActivations(o.device.bf16Activations);
        Tokenizer tok = sft.tokenizer();
        String tag = sft.dir().getFileName().toString();
        Path ckptDir = o.resume.checkpointDir(ModelSource.RL.dir(baseDir), o.start.tagOr(tag));
        List<String> warnings = new ArrayList<>();
        TaskData data = o.tasks.open(warnings);
        Task train = new Gsm8k(data.root(), "train", o.tasks.onBadLine, warnings), val = new Gsm8k(data.root(), "test", o.tasks.onBadLine, warnings);
        for (String w : warnings) out.println("warning: " + w);
        int numSteps = o.numSteps > 0 ? o.numSteps : (train.size() / o.examplesPerStep) * o.numEpochs;
        if (numSteps < 1) throw new IllegalArgumentException("no steps: GSM8K train has " + train.size() + " questions < --examples-per-step " + o.examplesPerStep);
        int perRank = o.examplesPerStep / world;
        out.printf(Locale.ROOT, "SFT model: %s step %d (%s)%n", sft.dir(), sft.step(), model.config());
        out.println(TrainDevice.line(backend, precision));
        String activations = TrainDevice.activationsLine(device, precision, o.device.bf16Activations);
        if (activations != null) out.println(activations);
        out.printf(Locale.ROOT, "Steps: %d | sequences per step: %d (%d questions × %d samples) | questions per rank: %d%n", numSteps,
                o.examplesPerStep * o.numSamples, o.examplesPerStep, o.numSamples, perRank);

        return precision.during(backend, () -> train(o, model, tok, sft, train, val, numSteps, perRank, ckptDir, out, comm));
    }

    /** The loop: rollouts, update and logging per step, pass@k and checkpoints when due. */
    private static Result train(ChatRlOptions o, GPT model, Tokenizer tok, ModelSource.Loaded sft, Task train, Task val, int numSteps,
                                int perRank, Path ckptDir, PrintStream out, Collective comm) throws IOException {
        int rank = comm.rank(), world = comm.worldSize();
        MuonAdamW opt = new MuonAdamW(scaled(model.paramGroups(o.unembeddingLr, o.embeddingLr, o.matrixLr, o.weightDecay, 0.5), o.initLrFrac), comm);
        int step = 0;
        if (o.resume.resumeFromStep >= 0) {
            resume(o, ckptDir, model, opt, perRank, world);
            step = o.resume.resumeFromStep;
            out.printf(Locale.ROOT, "Resumed from step %d of %s%n", step, ckptDir);
        }
        if (comm.rank() == 0) Files.createDirectories(ckptDir);
        comm.barrier();
        Path metrics = ckptDir.resolve("metrics.jsonl");
        if (comm.rank() == 0 && o.resume.resumeFromStep >= 0) truncateMetrics(metrics, o.resume.resumeFromStep);
        Engine engine = new Engine(model, tok);
        List<Double> rewards = new ArrayList<>();
        Map<Integer, double[]> passes = new LinkedHashMap<>();
        for (; step < numSteps; step++) {
            if (o.evalEvery > 0 && step % o.evalEvery == 0) passes.put(step, evaluate(engine, val, o, step, comm, metrics, out));
            StepRollouts ro = rollouts(engine, train, o, step, rank, world, perRank);
            long t0 = System.nanoTime();
            double lossSum = update(model, ro, o.deviceBatchSize, perRank);
            double lrm = 1.0 - (double) step / numSteps;
            opt.setLrMultiplier(lrm);
            opt.step();
            opt.zeroGrad();
            double updateSeconds = (System.nanoTime() - t0) / 1e9;
            StepStats stats = StepStats.gather(ro, (double) perRank * o.numSamples, updateSeconds, lossSum, comm);
            if (!Double.isFinite(stats.reward()) || !Double.isFinite(stats.loss())) {
                throw new IllegalStateException("step " + step + ": mean reward " + stats.reward() + ", loss " + stats.loss());
            }
            rewards.add(stats.reward());
            stats.log(step, numSteps, lrm, out);
            if (comm.rank() == 0) appendMetric(metrics, stats.metrics(step, lrm));
            int done = step + 1;
            if ((o.saveEvery > 0 && done % o.saveEvery == 0) || done == numSteps) {
                save(ckptDir, model, opt, done, o, sft, perRank, world, comm);
                out.printf(Locale.ROOT, "Saved checkpoint step %d to %s%n", done, ckptDir);
            }
        }
        if (comm.rank() == 0) MetricsPlot.drawOrSay(png -> plot(metrics, png), ckptDir.resolve("chat_rl.png"), out);
        return new Result(step, rewards, passes, ckptDir);
    }

    /** pass@k on the test problems, printed and written to the metrics; returns pass@1..k. */
    private static double[] evaluate(Engine engine, Task val, ChatRlOptions o, int step, Collective comm, Path metrics, PrintStream out)
            throws IOException {
        long t0 = System.nanoTime();
        double[] pk = passAtK(engine, val, o, comm);
        StringBuilder line = new StringBuilder(String.format(Locale.ROOT, "Step %d |", step));
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("step", step);
        for (int k = 1; k <= pk.length; k++) {
            line.append(String.format(Locale.ROOT, " Pass@%d: %.4f", k, pk[k - 1]));
            m.put("pass@" + k, pk[k - 1]);
        }
        m.put("eval_seconds", (System.nanoTime() - t0) / 1e9);
        out.println(line);
        if (comm.rank() == 0) appendMetric(metrics, m);
        return pk;
    }

    /**
     * One step's figures over all ranks: mean reward and sequence length and the loss averaged over the ranks (nanochat
     * all-reduces the rank means with AVG), sampled tokens summed, and each phase's seconds as its slowest rank's.
     */
    record StepStats(double reward, double length, double tokens, double sampling, double scoring, double update, double loss) {
        static StepStats gather(StepRollouts ro, double samplesPerRank, double updateSeconds, double lossSum, Collective comm) {
            int world = comm.worldSize();
            double meanLen = ro.sequenceLengths().stream().mapToInt(Integer::intValue).average().orElse(0);
            double[] all = comm.allGatherDoubles(ro.rewardSum() / samplesPerRank, meanLen, ro.generatedTokens(), ro.samplingSeconds(),
                    ro.scoringSeconds(), updateSeconds, lossSum);
            double reward = 0, len = 0, tokens = 0, sampling = 0, scoring = 0, upd = 0, loss = 0;
            for (int i = 0; i < all.length; i += 7) {
                reward += all[i] / world;
                len += all[i + 1] / world;
                tokens += all[i + 2];
                sampling = Math.max(sampling, all[i + 3]);
                scoring = Math.max(scoring, all[i + 4]);
                upd = Math.max(upd, all[i + 5]);
                loss += all[i + 6] / world;
            }
            return new StepStats(reward, len, tokens, sampling, scoring, upd, loss);
        }

        double tokPerSec() {
            return tokens / Math.max(sampling, 1e-9);
        }

        void log(int step, int numSteps, double lrm, PrintStream out) {
            out.printf(Locale.ROOT, "Step %d/%d | Average reward: %.4f | Average sequence length: %.2f | loss: %.6f | lrm: %.4f | "
                    + "sampling %.2fs (%,.0f tok/s) | scoring %.3fs | update %.2fs%n", step, numSteps, reward, length, loss, lrm, sampling,
                    tokPerSec(), scoring, update);
        }

        Map<String, Object> metrics(int step, double lrm) {
            Map<String, Object> m = new LinkedHashMap<>();
            m.put("step", step);
            m.put("reward", reward);
            m.put("sequence_length", length);
            m.put("loss", loss);
            m.put("lrm", lrm);
            m.put("sampling_seconds", sampling);
            m.put("scoring_seconds", scoring);
            m.put("update_seconds", update);
            m.put("sampled_tokens", (long) tokens);
            m.put("sampling_tok_per_sec", tokPerSec());
            return m;
        }
    }

    /** nanochat sets every group's LR (the fixed 0.2 of the smear/backout scalars too) to lr × init_lr_frac. */
    static List<GPT.ParamGroup> scaled(List<GPT.ParamGroup> groups, double f) {
        return groups.stream().map(g -> new GPT.ParamGroup(g.name(), g.kind(), g.params(), g.lr() * f, g.beta1(), g.beta2(), g.eps(), g.weightDecay(),
                g.momentum(), g.nsSteps())).toList();
    }

    /**
     * This rank's rollouts of one step: questions at positions step·perRank … of its cycle over r, r+W, …; each
     * sampled in rounds of device-batch rows, rewarded, grouped. The position is a function of the step alone, which
     * is what makes resuming exact.
     */
    static StepRollouts rollouts(Engine engine, Task train, ChatRlOptions o, int step, int rank, int world, int perRank) {
        Tokenizer tok = engine.tokenizer();
        int pad = tok.encodeSpecial("<|assistant_end|>"); // only padding: its targets are −1
        List<Rollouts.Group> groups = new ArrayList<>();
        List<float[]> advs = new ArrayList<>();
        List<Integer> lengths = new ArrayList<>();
        double rewardSum = 0, sampling = 0, scoring = 0;
        long generated = 0;
        try (var g = Autograd.noGrad()) {
            for (int e = 0; e < perRank; e++) {
                int idx = questionIndex(step, e, rank, world, perRank, train.size());
                Task.Example ex = train.get(idx);
                int[] prompt = ChatRenderer.renderForCompletion(tok, ex.conversation());
                long t0 = System.nanoTime();
                List<int[]> seqs = new ArrayList<>(), masks = new ArrayList<>();
                int rounds = o.numSamples / o.deviceBatchSize, kept = prompt.length;
                for (int round = 0; round < rounds; round++) {
                    Engine.Batch b = engine.generateBatch(prompt, new Engine.Settings(o.deviceBatchSize, o.maxNewTokens, o.temperature, o.topK,
                            Rollouts.seed(o.seed, step, idx, round)));
                    kept = prompt.length - b.truncatedPromptTokens();
                    seqs.addAll(b.tokens());
                    masks.addAll(b.masks());
                }
                long t1 = System.nanoTime();
                float[] r = new float[seqs.size()];
                for (int i = 0; i < r.length; i++) {
                    int[] s = seqs.get(i);
                    generated += s.length - kept;
                    lengths.add(s.length);
                    r[i] = train.evaluate(ex, tok.decode(Arrays.copyOfRange(s, kept, s.length))) ? 1f : 0f;
                    rewardSum += r[i];
                }
                long t2 = System.nanoTime();
                groups.add(Rollouts.group(seqs, masks, pad));
                advs.add(Rollouts.advantages(r));
                sampling += (t1 - t0) / 1e9;
                scoring += (t2 - t1) / 1e9;
            }
        }
        return new StepRollouts(groups, advs, lengths, rewardSum, generated, sampling, scoring);
    }

    /**
     * The train question of rank {@code rank}'s {@code e}-th example at {@code step}: nanochat's
     * {@code itertools.cycle(range(rank, size, world))} advanced by step·perRank + e.
     */
    static int questionIndex(int step, int e, int rank, int world, int perRank, int size) {
        int perCycle = (size - rank + world - 1) / world;
        long position = (long) step * perRank + e;
        return rank + world * (int) (position % perCycle);
    }

    /** Forward/backward over every pass of every group; gradients accumulate in the parameters. Returns Σ pass losses. */
    static double update(GPT model, StepRollouts ro, int deviceBatch, int perRank) {
        double total = 0;
        for (int e = 0; e < ro.groups().size(); e++) {
            Rollouts.Group g = ro.groups().get(e);
            int passes = g.rows() / deviceBatch;
            for (int p = 0; p < passes; p++) {
                int r0 = p * deviceBatch, r1 = r0 + deviceBatch;
                float[] w = Rollouts.lossWeights(g, ro.advantages().get(e), r0, r1, passes, perRank);
                // every advantage 0 (all samples right, or all wrong): the pass adds exactly 0 to the gradient and the
                // loss, so its forward/backward is skipped (nanochat computes it anyway)
                if (allZero(w)) continue;
                try (var recycling = Recycler.open()) {   // activations written into the last pass's buffers
                    Var nll = model.loss(Tensor.ofInts(g.inputs(r0, r1), deviceBatch, g.len()),
                            Tensor.ofInts(g.targets(r0, r1), deviceBatch, g.len()), Reduction.NONE);
                    Var loss = Ops.dot(nll, model.backend().upload(Tensor.of(w, deviceBatch, g.len())));   // the weights go up with the batch
                    total += loss.item();
                    loss.backward();
                }
            }
        }
        return total;
    }

    private static boolean allZero(float[] w) {
        for (float x : w) if (x != 0) return false;
        return true;
    }

    /** pass@k for k = 1..device-batch-size over the first eval-examples test problems (T = 1), summed over ranks. */
    static double[] passAtK(Engine engine, Task val, ChatRlOptions o, Collective comm) {
        int n = Math.min(o.evalExamples, val.size()), k = o.deviceBatchSize;
        List<boolean[]> outcomes = new ArrayList<>();
        Tokenizer tok = engine.tokenizer();
        try (var g = Autograd.noGrad()) {
            for (int i = comm.rank(); i < n; i += comm.worldSize()) {
                Task.Example ex = val.get(i);
                int[] prompt = ChatRenderer.renderForCompletion(tok, ex.conversation());
                // nanochat's run_gsm8k_eval: seed 42 (generate_batch's default), T = 1.0; its fixed top-k 50 and 256 tokens are
                // the run's --top-k and --max-new-tokens here (the same by default, shorter in quick runs)
                Engine.Batch b = engine.generateBatch(prompt, new Engine.Settings(k, o.maxNewTokens, 1.0, o.topK, 42));
                int kept = prompt.length - b.truncatedPromptTokens();
                boolean[] ok = new boolean[k];
                for (int s = 0; s < k; s++) {
                    int[] row = b.tokens().get(s);
                    ok[s] = val.evaluate(ex, tok.decode(Arrays.copyOfRange(row, kept, row.length)));
                }
                outcomes.add(ok);
            }
        }
        long[] mine = Rollouts.passAtK(outcomes, k);
        double[] v = new double[k + 1];
        for (int i = 0; i < k; i++) v[i] = mine[i];
        v[k] = outcomes.size();
        double[] all = comm.allGatherDoubles(v);
        double[] sum = new double[k + 1];
        for (int i = 0; i < all.length; i++) sum[i % (k + 1)] += all[i];
        double[] out = new double[k];
        for (int i = 0; i < k; i++) out[i] = sum[k] == 0 ? 0 : sum[i] / sum[k];
        return out;
    }

    private static void resume(ChatRlOptions o, Path ckptDir, GPT model, MuonAdamW opt, int perRank, int world) throws IOException {
        Path meta = Checkpoint.metaFile(ckptDir, o.resume.resumeFromStep);
        if (!Files.exists(meta)) throw new IllegalArgumentException("--resume-from-step " + o.resume.resumeFromStep + ": no checkpoint " + meta);
        Checkpoint.Loaded loaded = Checkpoint.load(ckptDir, o.resume.resumeFromStep);
        Map<String, Object> extra = loaded.meta().extra();
        if (!SOURCE.equals(extra.get("source"))) {
            throw new IllegalArgumentException(meta + " is not a chat-rl checkpoint (source " + extra.get("source") + "): cannot resume chat-rl from it");
        }
        if (!loaded.meta().config().equals(model.config())) {
            throw new IllegalArgumentException(meta + " is a different model (" + loaded.meta().config() + ") than the SFT one " + model.config());
        }
        Map<?, ?> loop = (Map<?, ?>) extra.get("loop_state");
        int savedWorld = ((Number) loop.get("world_size")).intValue(), savedPerRank = ((Number) loop.get("examples_per_rank")).intValue();
        if (savedWorld != world || savedPerRank != perRank) {
            throw new IllegalArgumentException(meta + " was saved by " + savedWorld + " rank(s) with " + savedPerRank + " questions each; resume with the same ("
                    + world + " × " + perRank + " now): the data position depends on both");
        }
        model.loadStateDict(loaded.params());
        opt.load(ckptDir, o.resume.resumeFromStep);
    }

    private static void save(Path dir, GPT model, MuonAdamW opt, int step, ChatRlOptions o, ModelSource.Loaded sft, int perRank, int world,
                             Collective comm) throws IOException {
        if (comm.rank() == 0) Files.deleteIfExists(Checkpoint.metaFile(dir, step)); // the meta, written last, marks a whole checkpoint
        comm.barrier();
        opt.save(dir, step);
        comm.barrier();
        if (comm.rank() != 0) return;
        Map<String, Object> extra = new LinkedHashMap<>();
        extra.put("source", SOURCE);
        extra.put("sft_checkpoint", sft.dir() + "#" + sft.step());
        extra.put("user_config", o.userConfig());
        Map<String, Object> loop = new LinkedHashMap<>();
        loop.put("world_size", world);
        loop.put("examples_per_rank", perRank);
        loop.put("questions_consumed_per_rank", (long) step * perRank); // the data position: rank r's next question is its cycle's entry at this index
        extra.put("loop_state", loop);
        Checkpoint.save(dir, model, new Checkpoint.Meta(model.config(), step, sft.meta().tokenizer(), Map.of(), extra), Safetensors.DType.F32);
    }

    /** Drops the lines of steps ≥ {@code from} (an interrupted run's tail, about to be redone), atomically. */
    static void truncateMetrics(Path file, int from) throws IOException {
        if (!Files.exists(file)) return;
        StringBuilder kept = new StringBuilder();
        for (String line : Files.readAllLines(file, StandardCharsets.UTF_8)) {
            if (line.isBlank()) continue;
            if (JSON.readTree(line).path("step").asInt() < from) kept.append(line).append('\n');
        }
        nanochat4j.model.tokenizer.TokenizerFiles.writeAtomically(file, kept.toString().getBytes(StandardCharsets.UTF_8));
    }

    private static void appendMetric(Path file, Map<String, Object> m) throws IOException {
        Files.write(file, (JSON.writeValueAsString(m) + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    /** Mean reward per step and pass@1 / pass@k at the eval steps, against the step. */
    static void plot(Path metrics, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<Double> rx = new ArrayList<>(), ry = new ArrayList<>(), px = new ArrayList<>(), p1 = new ArrayList<>(), pk = new ArrayList<>();
        String kName = null;
        if (Files.exists(metrics)) {
            for (String line : Files.readAllLines(metrics)) {
                if (line.isBlank()) continue;
                var n = JSON.readTree(line);
                double s = n.path("step").asDouble();
                if (n.has("reward")) {
                    rx.add(s);
                    ry.add(n.get("reward").asDouble());
                }
                if (n.has("pass@1")) {
                    px.add(s);
                    p1.add(n.get("pass@1").asDouble());
                    String last = null;
                    for (var it = n.fieldNames(); it.hasNext(); ) {
                        String k = it.next();
                        if (k.startsWith("pass@")) last = k;
                    }
                    kName = last;
                    pk.add(n.get(last).asDouble());
                }
            }
        }
        XYChart chart = new XYChartBuilder().width(900).height(500).title("chat_rl").xAxisTitle("step").yAxisTitle("fraction correct").build();
        if (!rx.isEmpty()) chart.addSeries("mean reward", rx, ry).setMarker(org.knowm.xchart.style.markers.SeriesMarkers.NONE);
        if (!px.isEmpty()) {
            chart.addSeries("pass@1 (test)", px, p1);
            if (!"pass@1".equals(kName)) chart.addSeries(kName + " (test)", px, pk);
        }
        if (rx.isEmpty() && px.isEmpty()) chart.addSeries("no data", new double[] {0}, new double[] {0});
        MetricsPlot.save(chart, png);
    }
}
