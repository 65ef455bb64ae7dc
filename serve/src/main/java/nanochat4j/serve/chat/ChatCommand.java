package nanochat4j.serve.chat;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import nanochat4j.model.InferenceDevice;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.DecodeWeights;
import nanochat4j.model.gpt.GPT;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
import nanochat4j.train.cli.BaseDirOption;
import nanochat4j.train.cli.CheckpointChoice;
import nanochat4j.train.cli.PrecisionOption;
import org.jline.reader.EndOfFileException;
import org.jline.reader.LineReader;
import org.jline.reader.LineReaderBuilder;
import org.jline.reader.UserInterruptException;
import org.jline.terminal.Terminal;
import org.jline.terminal.TerminalBuilder;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code nanochat4j chat}: talk to a trained model in the terminal (nanochat's chat_cli). */
@Command(name = "chat", mixinStandardHelpOptions = true,
        description = "Chat with a trained model in the terminal (streaming; /clear, Ctrl-D to quit; -p for one shot).")
public final class ChatCommand implements Callable<Integer> {

    @Option(names = {"-i", "--source"}, description = "Checkpoint source: base, sft or rl (default: sft if any, else rl, else base in completion mode).")
    String source;

    @Mixin
    CheckpointChoice checkpoint;

    @Option(names = {"-p", "--prompt"}, description = "Answer this one prompt, print the answer and exit.")
    String prompt;

    @Option(names = {"-t", "--temperature"}, defaultValue = "0.6", description = "Sampling temperature; 0 is greedy (default: ${DEFAULT-VALUE}).")
    double temperature;

    @Option(names = {"-k", "--top-k"}, defaultValue = "50", description = "Top-k sampling; 0 for the whole vocabulary (default: ${DEFAULT-VALUE}).")
    int topK;

    @Option(names = "--top-p", defaultValue = "1.0",
            description = "Nucleus sampling after top-k: the most probable tokens that make up this much of the probability (OpenAI's top_p; 1 keeps all, as nanochat; default: ${DEFAULT-VALUE}).")
    double topP;

    @Option(names = {"-m", "--max-tokens"}, defaultValue = "256", description = "Most tokens per reply (default: ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--seed", defaultValue = "42", description = "Seed of the first reply's sampling (default: ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--weights", defaultValue = "fp32",
            description = "Weights the CPU decode steps read: fp32 (exact) or bf16 (a rounded copy: half the bytes, about twice the tokens/s; default: ${DEFAULT-VALUE}).")
    DecodeWeights weights;

    @Option(names = "--device", defaultValue = "auto",
            description = "auto (the GPU when CUDA is usable, else the CPU), cpu or cuda (default: ${DEFAULT-VALUE}).")
    InferenceDevice device;

    @Mixin
    BaseDirOption baseDir;

    @Mixin
    PrecisionOption precision;

    @Override
    public Integer call() throws IOException {
        if (!(topP >= 0 && topP <= 1)) throw new IllegalArgumentException("--top-p " + topP + " must be in [0, 1]");
        Device where = device.resolve();   // before the slow load: a bad --device fails at once
        return precision.get().during(Backend.forDevice(where), () -> chat(where));
    }

    private int chat(Device where) throws IOException {
        Path base = baseDir.get();
        ModelSource src = source != null ? ModelSource.parse(source) : defaultSource(base);
        boolean completion = src == ModelSource.BASE;
        ModelSource.Loaded m = checkpoint.load(src, base);
        GPT model = InferenceDevice.place(m.model(), where);
        model.decodeWeights(weights);
        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        ChatSession session = new ChatSession(new Engine(model, m.tokenizer()), completion, maxTokens, temperature, topK, topP, seed);
        if (prompt != null) {
            session.turn(prompt, out);
            return 0;
        }
        System.err.println("nanochat4j chat: " + src.name().toLowerCase() + " model " + m.dir().getFileName() + " step " + m.step() + " on " + where
                + (completion ? " (base model: completion mode — each line is continued)" : "")
                + ". /clear starts over, Ctrl-D quits.");
        if (System.console() == null) {
            // Piped input: plain lines (no editing to do, and no per-keystroke redisplay of megabyte pastes).
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            return repl(session, completion, in::readLine, out);
        }
        try (Terminal terminal = TerminalBuilder.builder().system(true).build()) {
            LineReader reader = LineReaderBuilder.builder().terminal(terminal).appName("nanochat4j")
                    .variable(LineReader.HISTORY_FILE, base.resolve("chat_history"))
                    .option(LineReader.Option.BRACKETED_PASTE, true)
                    .build();
            String promptText = completion ? "prompt> " : "you> ";
            return repl(session, completion, () -> {
                while (true) {
                    try {
                        return reader.readLine(promptText);
                    } catch (UserInterruptException e) {
                        // Ctrl-C drops the line being typed; Ctrl-D quits
                    } catch (EndOfFileException e) {
                        return null;
                    }
                }
            }, out);
        }
    }

    /** The model a plain {@code chat} talks to: the SFT model if there is one, else the RL model, else the base model. */
    static ModelSource defaultSource(Path base) {
        for (ModelSource s : new ModelSource[] {ModelSource.SFT, ModelSource.RL}) if (s.exists(base)) return s;
        return ModelSource.BASE;
    }

    /** Where the loop gets lines: the next one, or null at end of input. */
    @FunctionalInterface
    interface Lines {
        String next() throws IOException;
    }

    /** The interactive loop: commands, empty lines, turns. */
    static int repl(ChatSession session, boolean completion, Lines lines, PrintStream out) throws IOException {
        while (true) {
            String line = lines.next();
            if (line == null) return 0;
            String cmd = line.strip();
            if (cmd.isEmpty()) continue;
            if (cmd.equals("/clear") || cmd.equals("clear")) {
                session.clear();
                out.println("[conversation cleared]");
                continue;
            }
            if (cmd.equals("/quit") || cmd.equals("quit") || cmd.equals("exit")) return 0;
            if (!completion) out.print("nanochat> ");
            session.turn(line, out);
        }
    }
}
