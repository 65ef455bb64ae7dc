package nanochat4j.train.chat;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import nanochat4j.autograd.Autograd;
import nanochat4j.model.BaseDir;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.train.cli.CheckpointChoice;
import nanochat4j.train.cli.PrecisionOption;
import nanochat4j.train.cli.TaskDataOptions;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.Job;
import nanochat4j.train.tasks.PythonSandbox;
import nanochat4j.train.tasks.Task;
import nanochat4j.train.tasks.TaskData;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j chat-eval}: nanochat's {@code scripts/chat_eval.py} — ARC-Easy, ARC-Challenge, MMLU (categorical),
 * GSM8K and HumanEval (generative) on their test splits, ChatCORE when all five ran. Results go to
 * {@code <base>/chat_eval/<source>_<tag>_<step>[_<tasks>].{csv,json}}. HumanEval needs python3; without it the task is reported
 * as skipped with the reason (and ChatCORE is not computed), never guessed.
 */
@Command(name = "chat-eval", mixinStandardHelpOptions = true,
        description = "Evaluate a chat model on ARC-Easy/Challenge, MMLU, GSM8K, HumanEval and ChatCORE (nanochat's chat_eval).")
public final class ChatEvalCommand implements Callable<Integer> {
    @Option(names = {"-i", "--source"}, required = true, description = "model source: sft, rl or base")
    String source;
    @Option(names = {"-a", "--task-name"}, description = "tasks separated by | (default: all five: ARC-Easy|ARC-Challenge|MMLU|GSM8K|HumanEval)")
    String taskName;
    @Option(names = {"-t", "--temperature"}, defaultValue = "0.0", description = "sampling temperature (default: ${DEFAULT-VALUE})")
    double temperature;
    @Option(names = {"-m", "--max-new-tokens"}, defaultValue = "512", description = "tokens per completion (default: ${DEFAULT-VALUE})")
    int maxNewTokens;
    @Option(names = {"-n", "--num-samples"}, defaultValue = "1", description = "samples per generative problem; pass if any passes (default: ${DEFAULT-VALUE})")
    int numSamples;
    @Option(names = {"-k", "--top-k"}, defaultValue = "50", description = "top-k sampling (default: ${DEFAULT-VALUE})")
    int topK;
    @Option(names = {"-b", "--batch-size"}, defaultValue = "8", description = "problems per forward in categorical tasks (default: ${DEFAULT-VALUE})")
    int batchSize;
    @Mixin
    CheckpointChoice checkpoint;
    @Option(names = {"-x", "--max-problems"}, defaultValue = "-1", description = "problems per task, -1 = all (default: ${DEFAULT-VALUE})")
    int maxProblems;
    @Option(names = "--seed", defaultValue = "42", description = "sampling seed (problem i uses seed + i) (default: ${DEFAULT-VALUE})")
    long seed;
    @Mixin
    TaskDataOptions tasks;
    @Option(names = "--device", defaultValue = "auto",
            description = "auto (the GPU when CUDA is usable, else the CPU), cpu or cuda: where the model runs (default: ${DEFAULT-VALUE})")
    InferenceDevice device;
    @Mixin
    PrecisionOption precision;

    @Override
    public Integer call() throws IOException {
        Job.run("chat-eval " + source + " " + checkpoint.tag + " " + checkpoint.step, System.out, (comm, out) -> run(BaseDir.get(), out, comm));
        return 0;
    }

    /** What one invocation measured: accuracy per task that ran, skipped tasks with reasons, ChatCORE (NaN if not all ran). */
    public record Results(Map<String, Double> accuracy, Map<String, String> skipped, double chatCore, Path csv) {}

    Results run(Path base, PrintStream out, Collective comm) throws IOException {
        ModelSource src = ModelSource.parse(source);
        List<String> names = taskName == null ? TaskData.EVAL_TASKS : List.of(taskName.split("\\|"));
        for (String n : names) {
            if (!TaskData.EVAL_TASKS.contains(n)) throw new IllegalArgumentException("unknown task '" + n + "' (tasks: " + String.join(", ", TaskData.EVAL_TASKS) + ")");
        }
        Device where = device.resolve(); // before the slow load: a bad --device fails at once
        return precision.get().during(Backend.forDevice(where), () -> evaluate(src, names, base, where, out, comm));
    }

    private Results evaluate(ModelSource src, List<String> names, Path base, Device where, PrintStream out, Collective comm) throws IOException {
        ModelSource.Loaded m = ChatModels.load(src, base, checkpoint.tag, checkpoint.step);
        GPT model = InferenceDevice.place(m.model(), where);
        out.printf(Locale.ROOT, "%s model %s step %d on %s%n", src.name().toLowerCase(Locale.ROOT), m.dir(), m.step(), where);
        List<String> warnings = new ArrayList<>();
        TaskData data = tasks.open(warnings);
        PythonSandbox sandbox = names.contains("HumanEval") ? PythonSandbox.find(PythonSandbox.Limits.DEFAULT) : null;
        Engine engine = new Engine(model, m.tokenizer());
        ChatEval.Generator gen = ChatEval.generator(engine, new ChatEval.Sampling(numSamples, maxNewTokens, temperature, topK), seed);
        Map<String, Double> acc = new LinkedHashMap<>();
        Map<String, String> skipped = new LinkedHashMap<>();
        try (var g = Autograd.noGrad()) {
            for (String n : names) {
                if (n.equals("HumanEval") && sandbox == null) {
                    skipped.put(n, PythonSandbox.missingReason());
                    out.println("HumanEval: skipped (" + PythonSandbox.missingReason() + ")");
                    continue;
                }
                Task task = data.evalTask(n, sandbox);
                for (String w : warnings) out.println("warning: " + w);
                warnings.clear();
                long t0 = System.nanoTime();
                ChatEval.Score s = ChatEval.run(task, m.tokenizer(), ChatEval.scorer(model), gen, batchSize, maxProblems, comm.rank(),
                        comm.worldSize(), ChatEval.reducer(comm), comm.rank() == 0 && System.console() != null ? out : null); // the in-place line only on a terminal
                acc.put(n, s.accuracy());
                out.printf(Locale.ROOT, "%s accuracy: %.2f%% (%d/%d, %.1fs)%n", n, 100 * s.accuracy(), s.passed(), s.total(),
                        (System.nanoTime() - t0) / 1e9);
            }
        }
        double chatCore = ChatEval.chatCore(acc);
        if (!Double.isNaN(chatCore)) out.printf(Locale.ROOT, "ChatCORE metric: %.4f%n", chatCore);
        Path csv = null;
        if (comm.rank() == 0) csv = write(base, src, m, acc, skipped, chatCore);
        if (csv != null) out.println("Results: " + csv + " (and .json)");
        return new Results(acc, skipped, chatCore, csv);
    }

    private Path write(Path base, ModelSource src, ModelSource.Loaded m, Map<String, Double> acc, Map<String, String> skipped, double chatCore)
            throws IOException {
        Path dir = base.resolve("chat_eval");
        Files.createDirectories(dir);
        // a run of some tasks gets its own file, so it does not replace the table of all five
        String stem = String.format(Locale.ROOT, "%s_%s_%06d", src.name().toLowerCase(Locale.ROOT), m.dir().getFileName(), m.step())
                + (taskName == null ? "" : "_" + taskName.replace('|', '-'));
        StringBuilder csv = new StringBuilder("Task, Accuracy, Centered\n");
        for (var e : acc.entrySet()) {
            double b = TaskData.baseline(e.getKey());
            csv.append(String.format(Locale.ROOT, "%s, %.6f, %.6f%n", e.getKey(), e.getValue(), (e.getValue() - b) / (1 - b)));
        }
        for (var e : skipped.entrySet()) csv.append(e.getKey()).append(", skipped, \n");
        if (!Double.isNaN(chatCore)) csv.append(String.format(Locale.ROOT, "ChatCORE, %.6f, %n", chatCore));
        Path csvFile = dir.resolve(stem + ".csv");
        nanochat4j.model.tokenizer.TokenizerFiles.writeAtomically(csvFile, csv.toString().getBytes(StandardCharsets.UTF_8));
        Map<String, Object> json = new LinkedHashMap<>();
        json.put("source", src.name().toLowerCase(Locale.ROOT));
        json.put("model_tag", m.dir().getFileName().toString());
        json.put("step", m.step());
        json.put("max_problems", maxProblems);
        json.put("accuracy", acc);
        json.put("skipped", skipped);
        json.put("chatcore", Double.isNaN(chatCore) ? null : chatCore);
        nanochat4j.model.tokenizer.TokenizerFiles.writeAtomically(dir.resolve(stem + ".json"), new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT).writeValueAsBytes(json));
        return csvFile;
    }
}
