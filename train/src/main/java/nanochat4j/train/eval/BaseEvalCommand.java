package nanochat4j.train.eval;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;
import nanochat4j.autograd.Autograd;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.train.cli.BaseDirOption;
import nanochat4j.train.cli.PrecisionOption;
import nanochat4j.train.cli.CheckpointChoice;
import nanochat4j.train.data.DataLoader;
import nanochat4j.train.data.DataSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j base-eval} (nanochat's base_eval.py): loads a base checkpoint and reports CORE (per-task table,
 * CSV + JSON next to the checkpoints), bits per byte on the train and validation splits, and greedy samples from
 * fixed prompts.
 */
@Command(name = "base-eval", mixinStandardHelpOptions = true,
        description = "Evaluate a base model: CORE metric, train/val bits per byte, samples.")
public final class BaseEvalCommand implements Callable<Integer> {
    /** nanochat's prompts for greedy samples of a base model (base_train and base_eval use the same). */
    public static final List<String> PROMPTS = List.of("The capital of France is", "The chemical symbol of gold is",
            "If yesterday was Friday, then tomorrow will be", "The opposite of hot is", "The planets of the solar system are:",
            "My favorite color is", "If 5*x + 3 = 13, then x is");

    @Mixin
    CheckpointChoice checkpoint;

    @Option(names = "--eval", defaultValue = "core,bpb,sample", split = ",",
            description = "What to evaluate: core, bpb, sample (default: ${DEFAULT-VALUE}).")
    List<String> what;

    @Option(names = "--max-per-task", defaultValue = "-1", description = "Examples per CORE task, -1 for all (default: ${DEFAULT-VALUE}).")
    int maxPerTask;

    @Option(names = "--tasks", split = ",", description = "Only these CORE task labels (default: every task in core.yaml).")
    Set<String> tasks;

    @Option(names = "--bundle", description = "CORE eval bundle folder (default: <base>/eval_bundle).")
    Path bundle;

    @Option(names = "--download-bundle", description = "Download the official eval bundle into <base>/eval_bundle first.")
    boolean downloadBundle;

    @Option(names = "--on-bad-line", defaultValue = "stop", description = "A malformed JSONL line: stop or skip (default: ${DEFAULT-VALUE}).")
    String onBadLine;

    @Option(names = "--device-batch-size", defaultValue = "32", description = "Rows per bpb batch (default: ${DEFAULT-VALUE}).")
    int deviceBatchSize;

    @Option(names = "--split-tokens", defaultValue = "20971520", description = "Tokens per split for bpb (default: ${DEFAULT-VALUE} = 40·524288).")
    long splitTokens;

    @Option(names = "--device", defaultValue = "auto",
            description = "auto (the GPU when CUDA is usable, else the CPU), cpu or cuda: where the model runs (default: ${DEFAULT-VALUE}).")
    InferenceDevice device;

    @Option(names = "--data", description = "Data folder for bpb (default: the one the model was trained on, else <base>/base_data_climbmix).")
    Path data;

    @Mixin
    BaseDirOption baseDir;

    @Mixin
    PrecisionOption precision;

    PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);

    @Override
    public Integer call() throws IOException {
        Path base = baseDir.get();
        for (String w : what) {
            if (!Set.of("core", "bpb", "sample").contains(w)) throw new IllegalArgumentException("--eval: unknown '" + w + "' (use core, bpb, sample)");
        }
        CoreBundle.OnBadLine onBad = switch (onBadLine) {
            case "stop" -> CoreBundle.OnBadLine.STOP;
            case "skip" -> CoreBundle.OnBadLine.SKIP;
            default -> throw new IllegalArgumentException("--on-bad-line must be stop or skip, not '" + onBadLine + "'");
        };
        Device where = device.resolve(); // before the slow load: a bad --device fails at once
        return precision.get().during(Backend.forDevice(where), () -> evaluate(base, where, onBad));
    }

    private int evaluate(Path base, Device where, CoreBundle.OnBadLine onBad) throws IOException {
        ModelSource.Loaded m = checkpoint.load(ModelSource.BASE, base);
        GPT model = InferenceDevice.place(m.model(), where);
        Tokenizer tok = m.tokenizer();
        out.printf(Locale.ROOT, "base-eval: %s step %d (%s) on %s%n", m.dir(), m.step(), model.config(), where);
        Map<String, Object> results = new LinkedHashMap<>();
        results.put("checkpoint", m.dir().toString());
        results.put("step", m.step());
        if (what.contains("bpb")) results.putAll(bpb(m, model, base));
        if (what.contains("sample")) results.put("samples", samples(model, tok));
        if (what.contains("core")) results.put("core", core(model, tok, base, onBad, m));
        Path json = base.resolve("base_eval").resolve(String.format("base_model_%06d.json", m.step()));
        writeAtomically(json, new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsString(results));
        out.println("results written to " + json);
        return 0;
    }

    private Map<String, Object> bpb(ModelSource.Loaded m, GPT model, Path base) throws IOException {
        Path dir = data;
        Object trainedOn = m.meta().extra().get("user_config") instanceof Map<?, ?> uc ? uc.get("data") : null;
        boolean strip = !(m.meta().extra().get("user_config") instanceof Map<?, ?> uc2) || !Boolean.FALSE.equals(uc2.get("strip_gutenberg"));
        if (dir == null) dir = trainedOn != null ? Path.of(trainedOn.toString()) : base.resolve("base_data_climbmix");
        if (!Files.isDirectory(dir)) {
            throw new IOException("bpb needs data: " + dir + " does not exist (give --data DIR, or --eval core,sample to skip bpb)");
        }
        DataSource src = DataSource.open(dir, strip);
        int b = deviceBatchSize;
        int t = model.config().sequenceLen();
        int steps = (int) Math.max(1, splitTokens / ((long) b * t));
        Map<String, Object> r = new LinkedHashMap<>();
        for (DataSource.Split split : DataSource.Split.values()) {
            BitsPerByte acc;
            try (DataLoader loader = new DataLoader(src.files(split), text -> m.tokenizer().encode(text), m.tokenizer().bosId(), b, t, 0, 1, null);
                    var g = Autograd.noGrad()) {
                acc = BitsPerByte.evaluate(loader, steps, (x, y) -> model.loss(Tensor.ofInts(x, b, t), Tensor.ofInts(y, b, t), Reduction.NONE)
                        .value().toFloatArray(), m.tokenizer().tokenByteLengths());
            }
            String key = split.name().toLowerCase(Locale.ROOT) + "_bpb";
            out.printf(Locale.ROOT, "%s: %.6f (%d tokens)%n", key, acc.value(), (long) steps * b * t);
            r.put(key, acc.value());
        }
        return r;
    }

    private List<String> samples(GPT model, Tokenizer tok) {
        Engine engine = new Engine(model, tok);
        List<String> texts = new ArrayList<>();
        out.println("samples (greedy, 16 tokens):");
        for (String p : PROMPTS) {
            Engine.Batch b = engine.generateBatch(tok.encode(p, tok.bosId(), -1), new Engine.Settings(1, 16, 0.0, 0, 42));
            int[] row = b.tokens().get(0);
            String text = tok.decode(Arrays.copyOfRange(row, 1, row.length));
            out.println("  " + text.replace("\n", "\\n"));
            texts.add(text);
        }
        return texts;
    }

    private Map<String, Object> core(GPT model, Tokenizer tok, Path base, CoreBundle.OnBadLine onBad, ModelSource.Loaded m) throws IOException {
        Path dir = bundle != null ? bundle : base.resolve("eval_bundle");
        if (downloadBundle) {
            out.println("downloading " + EvalBundleDownload.URL + " into " + dir);
            EvalBundleDownload.download(EvalBundleDownload.URL, dir);
        }
        CoreBundle b = CoreBundle.load(dir);
        if (!b.missing().isEmpty()) {
            out.println("CORE: " + b.missing().size() + " task(s) listed in core.yaml have no data file and are left out: " + b.missing());
        }
        if (tasks != null) {
            for (String t : tasks) {
                if (b.tasks().stream().noneMatch(x -> x.label().equals(t))) throw new IllegalArgumentException("--tasks: no task '" + t + "' with data in " + dir);
            }
        }
        CoreEval eval = new CoreEval(new ModelScorer(model),
                new CoreEval.Encoder(text -> tok.encode(text, tok.bosId(), -1), tok.bosId()));
        out.printf(Locale.ROOT, "%-34s %-18s %5s %8s %9s %8s%n", "task", "type", "shots", "examples", "accuracy", "centered");
        long t0 = System.nanoTime();
        CoreEval.Result r = eval.run(b, maxPerTask, l -> tasks == null || tasks.contains(l), onBad, tr ->
                out.printf(Locale.ROOT, "%-34s %-18s %5d %8d %9.4f %8.4f%n", tr.task().label(), tr.task().type().yamlName,
                        tr.task().numFewshot(), tr.examples(), tr.accuracy(), tr.centered()));
        for (String w : r.warnings()) out.println("warning: " + w);
        out.printf(Locale.ROOT, "CORE %.4f over %d task(s) in %.1f s%n", r.core(), r.tasks().size(), (System.nanoTime() - t0) / 1e9);
        StringBuilder csv = new StringBuilder("Task, Accuracy, Centered\n");
        Map<String, Object> json = new LinkedHashMap<>();
        for (CoreEval.TaskResult tr : r.tasks()) {
            csv.append(String.format(Locale.ROOT, "%s, %.6f, %.6f%n", tr.task().label(), tr.accuracy(), tr.centered()));
            json.put(tr.task().label(), Map.of("accuracy", tr.accuracy(), "centered", tr.centered(), "examples", tr.examples()));
        }
        csv.append(String.format(Locale.ROOT, "CORE, , %.6f%n", r.core()));
        Path csvFile = base.resolve("base_eval").resolve(String.format("base_model_%06d.csv", m.step()));
        writeAtomically(csvFile, csv.toString());
        writeAtomically(m.dir().resolve(String.format("core_%06d.csv", m.step())), csv.toString());
        out.println("CORE table written to " + csvFile);
        Map<String, Object> res = new LinkedHashMap<>();
        res.put("core", r.core());
        res.put("tasks", json);
        res.put("missing", r.missing());
        return res;
    }

    /** Temp file, fsync, rename: a crash never leaves a half-written result. */
    static void writeAtomically(Path file, String text) throws IOException {
        Files.createDirectories(file.toAbsolutePath().getParent());
        Path tmp = Files.createTempFile(file.toAbsolutePath().getParent(), file.getFileName().toString(), ".tmp");
        try (var ch = java.nio.channels.FileChannel.open(tmp, java.nio.file.StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap(text.getBytes(StandardCharsets.UTF_8)));
            ch.force(true);
        }
        Files.move(tmp, file, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
