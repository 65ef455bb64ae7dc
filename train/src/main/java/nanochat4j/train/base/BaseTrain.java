package nanochat4j.train.base;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.autograd.Autograd;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.BaseDir;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.data.DataLoader;
import nanochat4j.train.data.DataSource;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.Job;
import nanochat4j.train.eval.BitsPerByte;
import nanochat4j.train.eval.CoreBundle;
import nanochat4j.train.eval.CoreEval;
import nanochat4j.train.eval.CoreTask;
import nanochat4j.train.eval.EvalBundleDownload;
import nanochat4j.train.eval.UnigramBaseline;

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
    /** What a run reports back: every step's raw train loss, the val bpb evaluations, where it saved. */
    public record Result(int finalStep, List<Float> trainLosses, Map<Integer, Double> valBpb, double minValBpb, double unigramBpb,
                         Map<Integer, Double> core, Path checkpointDir, List<String> samples) {}

    private BaseTrain() {}

    /** The dense bf16 peak of an H100/H200 (989 TFLOP/s): MFU's divisor on a GPU not in nanochat's table ({@link nanochat4j.tensor.cuda.GpuPeaks}). */
    static final double GPU_PEAK_FLOPS = 989e12;

    /** Runs on this process's rank of the job the environment describes (a world of one without a launcher). */
    public static Result run(BaseTrainOptions o, TokenizerView tok, PrintStream out) throws IOException {
        DepthDial dial = DepthDial.derive(o, tok.vocabSize());
        return Job.run(fingerprint(o, dial, tok), out, (comm, log) -> run(o, dial, tok, log, comm));
    }

    /**
     * What every rank must agree on, compared at the handshake: the model (and so every parameter and optimizer-state
     * shape), the batch, the horizon, the tokenizer, the device kind, the matmul precision, the saved activations' form
     * and how the optimizer is split (sharded or replicated). Fields are "; "-separated, so a mismatch is reported field by field
     * ("device=CPU vs device=CUDA"), naming both ranks.
     */
    static String fingerprint(BaseTrainOptions o, DepthDial dial, TokenizerView tok) {
        Device device = o.deviceKind();
        return "base-train; model=" + dial.config() + "; total batch=" + dial.totalBatch() + "; device batch=" + o.deviceBatchSize
                + "; steps=" + dial.numIterations() + "; tokenizer=" + tok.name() + "/" + tok.vocabSize() + "; device=" + device
                + "; precision=" + MatmulPrecision.parse(o.precision).flag() + "; bf16 activations=" + o.bf16Activations
                + "; optimizer=" + (o.overlapReduce(2, device) ? "replicated" : "sharded"); // as with several ranks
    }

    /** Runs one rank of a data-parallel job over {@code comm}; {@code out} gets the log (pass a null stream off rank 0). */
    static Result run(BaseTrainOptions o, DepthDial dial, TokenizerView tok, PrintStream out, Collective comm) throws IOException {
        return new BaseTrainRun(o, dial, tok, out, comm).run();
    }

    /** MuonAdamW's groups with base_train's LRs scaled by the dial's batch LR scale, and its scaled weight decay. */
    public static List<GPT.ParamGroup> paramGroups(GPT model, BaseTrainOptions o, DepthDial dial) {
        double s = dial.batchLrScale();
        return model.paramGroups(o.unembeddingLr * s, o.embeddingLr * s, o.matrixLr * s, dial.weightDecay(), o.scalarLr * s);
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
}
