package nanochat4j.train.chat;

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
import nanochat4j.autograd.Autograd;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.Job;
import nanochat4j.train.eval.BitsPerByte;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.tasks.Arc;
import nanochat4j.train.tasks.ConversationFile;
import nanochat4j.train.tasks.Gsm8k;
import nanochat4j.train.tasks.Mmlu;
import nanochat4j.train.tasks.PythonSandbox;
import nanochat4j.train.tasks.Task;
import nanochat4j.train.tasks.TaskData;
import nanochat4j.train.tasks.TaskMixture;

/**
 * nanochat's chat_sft.py: the base model fine-tuned on a mixture of conversations, only the assistant's tokens
 * supervised (the renderer's mask), packed by {@link SftLoader}.
 * <ul>
 *   <li>batch sizes and LRs inherited from the base checkpoint unless given; LRs are the CLI values (not batch-scaled)
 *       × init-lr-frac; no weight decay; the optimizer warm-started from the base run's state when its file exists
 *       (moments only: the fresh LRs are kept); Muon momentum 0.85 → 0.95 over 300 steps;</li>
 *   <li>LR by progress p (fraction of the mixture consumed, or step / --num-iterations): warmup, constant, linear
 *       warmdown to final-lr-frac; the run ends when an epoch of the mixture is consumed (or at --num-iterations);</li>
 *   <li>train mixture: general conversations (SmolTalk in nanochat; --conversations here, its last 5% held out) +
 *       mmlu-epochs × the multiple-choice set (MMLU auxiliary_train when the data has it, else ARC-Easy + ARC-Challenge
 *       train, which are part of auxiliary_train) + gsm8k-epochs × GSM8K train (+ --extra-conversations). Validation:
 *       the held-out conversations + MMLU test[:5200] + GSM8K test[:420];</li>
 *   <li>a micro-batch without a single supervised token is skipped and counted (never a NaN mean); the step's loss is
 *       averaged over the micro-batches that have one; a step where no rank has one does not update;</li>
 *   <li>validation: mean loss over supervised tokens and bpb; ChatCORE; checkpoints in chatsft_checkpoints/&lt;tag&gt;
 *       (optimizer, model, meta with the exact loader and loop state: --resume-from-step continues bitwise); metrics
 *       JSONL and a PNG plot.</li>
 * </ul>
 */
public final class ChatSft {
    private static final ObjectMapper JSON = new ObjectMapper();
    static final String SOURCE = "chat_sft";

    private ChatSft() {}

    /** What a run did. */
    public record Result(int finalStep, List<Float> trainLosses, Map<Integer, Double> valLoss, Map<Integer, Double> valBpb,
                         Map<Integer, Double> chatCore, long skippedMicroBatches, long croppedConversations, Path checkpointDir) {}

    /** Settings after inheriting from the base checkpoint. */
    record Resolved(int seq, int batch, long totalBatch, double embLr, double unembLr, double matLr) {}

    public static Result run(ChatSftOptions o, Path baseDir, PrintStream out) throws IOException {
        return Job.run("chat-sft " + o.userConfig(), out, (comm, log) -> run(o, baseDir, log, comm));
    }

    /** Runs one rank of a data-parallel job over {@code comm}; {@code out} gets the log (pass a null stream off rank 0). */
    public static Result run(ChatSftOptions o, Path baseDir, PrintStream out, Collective comm) throws IOException {
        return new ChatSftRun(o, baseDir, out, comm).run();
    }

    /** nanochat's LR multiplier by progress: warmup, constant, linear warmdown to final-lr-frac. */
    static double lrMultiplier(double p, ChatSftOptions o) {
        if (p < o.warmupRatio) return (p + 1e-8) / o.warmupRatio;
        if (p <= 1.0 - o.warmdownRatio) return 1.0;
        double decay = Math.min(1.0, (p - (1.0 - o.warmdownRatio)) / o.warmdownRatio);
        return (1 - decay) + decay * o.finalLrFrac;
    }

    static double muonMomentum(int step) {
        double frac = Math.min(step / 300.0, 1);
        return (1 - frac) * 0.85 + frac * 0.95;
    }

    static Resolved resolve(ChatSftOptions o, Checkpoint.Meta meta, PrintStream out) {
        Map<String, Object> extra = meta.extra();
        Map<?, ?> uc = extra.get("user_config") instanceof Map<?, ?> m ? m : Map.of();
        int seq = o.maxSeqLen != null ? o.maxSeqLen : inherit("max_seq_len", extra.get("max_seq_len"), 2048, out).intValue();
        int batch = o.deviceBatchSize != null ? o.deviceBatchSize : inherit("device_batch_size", extra.get("device_batch_size"), 32, out).intValue();
        long total = o.totalBatchSize != null ? o.totalBatchSize : inherit("total_batch_size", extra.get("total_batch_size"), 524288, out).longValue();
        double emb = o.embeddingLr != null ? o.embeddingLr : inherit("embedding_lr", uc.get("embedding_lr"), 0.3, out).doubleValue();
        double unemb = o.unembeddingLr != null ? o.unembeddingLr : inherit("unembedding_lr", uc.get("unembedding_lr"), 0.004, out).doubleValue();
        double mat = o.matrixLr != null ? o.matrixLr : inherit("matrix_lr", uc.get("matrix_lr"), 0.02, out).doubleValue();
        return new Resolved(seq, batch, total, emb, unemb, mat);
    }

    private static Number inherit(String name, Object fromBase, Number fallback, PrintStream out) {
        Number v = fromBase instanceof Number n ? n : fallback;
        out.printf(Locale.ROOT, "Inherited %s=%s from the %s%n", name, v, fromBase instanceof Number ? "pretrained checkpoint" : "defaults");
        return v;
    }

    /** Training and validation mixtures. */
    record Mixtures(Task train, Task val, String description) {}

    static Mixtures mixtures(ChatSftOptions o, TaskData data) throws IOException {
        Path convFile = o.conversations != null ? o.conversations : data.root().resolve("sft/alpaca_5000/alpaca_5000.json");
        Task general = new ConversationFile(convFile, data.onBadLine(), data.warnings());
        if (o.maxConversations > 0) general = Task.slice(general, 0, o.maxConversations, 1);
        int nVal = Math.max(1, general.size() / 20);
        Task generalTrain = Task.slice(general, 0, general.size() - nVal, 1), generalVal = Task.slice(general, general.size() - nVal, -1, 1);
        Task mc;
        String mcName;
        if (Files.isDirectory(data.root().resolve("mmlu/auxiliary_train"))) {
            mc = new Mmlu(data.root(), "auxiliary_train", data.onBadLine(), data.warnings());
            mcName = "MMLU auxiliary_train";
        } else {
            // MMLU's auxiliary_train is made of ARC, OBQA, RACE and MC_TEST; its ARC part is what the data here has
            mc = new TaskMixture(List.of(new Arc(data.root(), "ARC-Easy", "train", data.onBadLine(), data.warnings()),
                    new Arc(data.root(), "ARC-Challenge", "train", data.onBadLine(), data.warnings())));
            mcName = "ARC-Easy+Challenge train";
        }
        Task gsm = new Gsm8k(data.root(), "train", data.onBadLine(), data.warnings());
        List<Task> train = new ArrayList<>(List.of(generalTrain));
        train.addAll(TaskMixture.repeat(mc, o.mmluEpochs));
        train.addAll(TaskMixture.repeat(gsm, o.gsm8kEpochs));
        String desc = general.name() + " " + generalTrain.size() + " + " + o.mmluEpochs + " × " + mcName + " " + mc.size() + " + " + o.gsm8kEpochs
                + " × GSM8K train " + gsm.size();
        if (o.extraConversations != null) {
            Task extra = new ConversationFile(o.extraConversations, data.onBadLine(), data.warnings());
            train.addAll(TaskMixture.repeat(extra, o.extraEpochs));
            desc += " + " + o.extraEpochs + " × " + extra.name() + " " + extra.size();
        }
        Task val = new TaskMixture(List.of(generalVal, Task.slice(new Mmlu(data.root(), "test", data.onBadLine(), data.warnings()), 0, 5200, 1),
                Task.slice(new Gsm8k(data.root(), "test", data.onBadLine(), data.warnings()), 0, 420, 1)));
        return new Mixtures(new TaskMixture(train), val, desc);
    }

    /** Mean loss over supervised tokens and bpb on a fresh val loader; every rank its share, sums over ranks. */
    static double[] validate(GPT model, Task val, Tokenizer tok, Resolved r, int steps, int[] tokenBytes, Collective comm) {
        SftLoader loader = new SftLoader(val, c -> ChatRenderer.render(tok, c, Integer.MAX_VALUE), r.batch(), r.seq(), tok.bosId(), comm.rank(),
                comm.worldSize(), 100, null);
        BitsPerByte bpb = new BitsPerByte();
        double nats = 0;
        long count = 0;
        try (var g = Autograd.noGrad()) {
            for (int s = 0; s < steps; s++) {
                SftLoader.Batch b = loader.next();
                if (b.supervised() == 0) continue;
                float[] l = model.loss(Tensor.ofInts(b.inputs(), r.batch(), r.seq()), Tensor.ofInts(b.targets(), r.batch(), r.seq()), Reduction.NONE)
                        .value().toFloatArray();
                bpb.add(l, b.targets(), tokenBytes);
                for (int i = 0; i < l.length; i++) {
                    if (b.targets()[i] >= 0) {
                        nats += l[i];
                        count++;
                    }
                }
            }
        }
        double[] all = comm.allGatherDoubles(nats, count, bpb.nats(), bpb.bytes());
        double n = 0, c = 0, bn = 0, bb = 0;
        for (int i = 0; i < all.length; i += 4) {
            n += all[i];
            c += all[i + 1];
            bn += all[i + 2];
            bb += all[i + 3];
        }
        return new double[] {c == 0 ? Double.NaN : n / c, BitsPerByte.bpb(bn, (long) bb)};
    }

    /** True on every rank when it is true on any (nanochat all-reduces last_step with MAX). */
    static boolean agreeAny(boolean mine, Collective comm) {
        if (comm.worldSize() == 1) return mine;
        for (double d : comm.allGatherDoubles(mine ? 1 : 0)) if (d != 0) return true;
        return false;
    }

    /**
     * Loads the base run's optimizer moments (Adam moments, Muon buffers) into {@code opt} but keeps its fresh LRs,
     * as nanochat does: the base run ends its warmdown with LRs near 0. A missing file or another world size falls
     * back to a fresh optimizer with a warning.
     */
    static void warmStart(MuonAdamW opt, Path baseDir, long step, PrintStream out) throws IOException {
        Path file = MuonAdamW.stateFile(baseDir, step, opt.rank());
        if (!Files.exists(file)) {
            out.println("WARNING: optimizer checkpoint " + file + " not found, starting with a fresh optimizer (slightly worse)");
            return;
        }
        Safetensors.Contents c = Safetensors.read(file);
        Map<String, MuonAdamW.StateTensor> t = new LinkedHashMap<>();
        c.tensors().forEach((name, e) -> t.put(name, new MuonAdamW.StateTensor(e.shape(), e.values())));
        Map<String, String> md = new LinkedHashMap<>(c.metadata());
        Map<String, String> mine = opt.state().metadata();
        for (String k : mine.keySet()) if (k.endsWith(".lr")) md.put(k, mine.get(k));
        for (String k : mine.keySet()) if (k.endsWith(".weight_decay")) md.put(k, "0.0");
        try {
            opt.loadState(new MuonAdamW.State(t, md));
            out.println("Loaded optimizer state from the pretrained checkpoint (moments only, LRs reset)");
        } catch (IllegalArgumentException e) {
            out.println("WARNING: optimizer checkpoint " + file + " does not fit (" + e.getMessage() + "); starting with a fresh optimizer");
        }
    }

    /** Every rank's loader state (as JSON maps), on rank 0. Encoded as doubles: small ints only. */
    static List<Map<?, ?>> gatherLoaderStates(SftLoader.State mine, Collective comm) {
        if (comm.worldSize() == 1) return List.of(JSON.convertValue(mine, Map.class));
        int w = comm.worldSize();
        double[] lengths = comm.allGatherDoubles(mine.buffer().length);
        int max = 0;
        for (double l : lengths) max = Math.max(max, (int) l);
        double[] v = new double[4 + max];
        v[0] = mine.cursor();
        v[1] = mine.consumed();
        v[2] = mine.epoch();
        v[3] = mine.cropped();
        for (int i = 0; i < mine.buffer().length; i++) v[4 + i] = mine.buffer()[i];
        double[] all = comm.allGatherDoubles(v);
        List<Map<?, ?>> out = new ArrayList<>();
        for (int rk = 0; rk < w; rk++) {
            int off = rk * v.length;
            int[] buffer = new int[(int) lengths[rk]];
            for (int i = 0; i < buffer.length; i++) buffer[i] = (int) all[off + 4 + i];
            out.add(JSON.convertValue(new SftLoader.State((int) all[off], (long) all[off + 1], (int) all[off + 2], buffer, (long) all[off + 3]), Map.class));
        }
        return out;
    }

    static void appendMetric(Path file, Map<String, Object> m) throws IOException {
        Files.write(file, (JSON.writeValueAsString(m) + "\n").getBytes(StandardCharsets.UTF_8), StandardOpenOption.CREATE, StandardOpenOption.APPEND);
    }

    /** ChatCORE during training: the five tasks loaded once, evaluated with the training model. */
    static final class ChatCoreRunner {
        record Outcome(Map<String, Double> accuracy, double chatCore, double chatCoreCat) {}

        private final Map<String, Task> tasks = new LinkedHashMap<>();
        private final Tokenizer tok;
        private final GPT model;
        private final int batch, maxCat, maxSample;
        private final Collective comm;
        private final PythonSandbox sandbox;

        ChatCoreRunner(TaskData data, Tokenizer tok, GPT model, int batch, int maxCat, int maxSample, Collective comm, PrintStream out) throws IOException {
            this.tok = tok;
            this.model = model;
            this.batch = batch;
            this.maxCat = maxCat;
            this.maxSample = maxSample;
            this.comm = comm;
            this.sandbox = PythonSandbox.find(PythonSandbox.Limits.DEFAULT);
            if (sandbox == null) out.println("ChatCORE: HumanEval skipped (" + PythonSandbox.missingReason() + "); ChatCORE is then reported as NaN");
            for (String name : TaskData.EVAL_TASKS) {
                if (name.equals("HumanEval") && sandbox == null) continue;
                tasks.put(name, data.evalTask(name, sandbox));
            }
        }

        Outcome run() {
            Map<String, Double> acc = new LinkedHashMap<>();
            ChatEval.Reducer reduce = ChatEval.reducer(comm);
            Engine engine = new Engine(model, tok);
            try (var g = Autograd.noGrad()) {
                for (var e : tasks.entrySet()) {
                    Task t = e.getValue();
                    boolean cat = t.evalType() == Task.EvalType.CATEGORICAL;
                    ChatEval.Score s = ChatEval.run(t, tok, ChatEval.scorer(model), ChatEval.generator(engine, ChatEval.Sampling.DEFAULT, 42), batch,
                            cat ? maxCat : maxSample, comm.rank(), comm.worldSize(), reduce, null);
                    acc.put(e.getKey(), s.accuracy());
                }
            }
            return new Outcome(acc, ChatEval.chatCore(acc), ChatEval.centeredMean(acc, List.of("ARC-Easy", "ARC-Challenge", "MMLU")));
        }
    }
}
