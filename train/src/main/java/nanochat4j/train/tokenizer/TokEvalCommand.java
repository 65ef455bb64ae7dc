package nanochat4j.train.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
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
import java.util.zip.GZIPInputStream;
import nanochat4j.model.tokenizer.TiktokenFormat;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.BaseDir;
import nanochat4j.train.ProgressBar;
import nanochat4j.train.cli.OneLineErrors;
import nanochat4j.train.data.DataFile;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j tok-eval}: nanochat's scripts/tok_eval.py. Encodes each kind of text we have — the fixed
 * samples, the first row group of the pretraining train and val files, code (HumanEval prompts and solutions),
 * chat (Alpaca instructions and answers) — checks the round trip and prints bytes, tokens and bytes/token
 * (nanochat's "ratio"). {@code --compare X.tiktoken} adds another vocabulary's counts and the relative difference
 * (baseline tokens − ours) / baseline tokens.
 */
@Command(name = "tok-eval", mixinStandardHelpOptions = true,
        description = "Tokenizer compression (bytes per token) on samples, pretraining text, code and chat.")
public final class TokEvalCommand implements Callable<Integer> {

    @Option(names = "--tokenizer", description = "tokenizer folder (default: $NANOCHAT_BASE_DIR/tokenizer)")
    Path tokenizerDir;

    @Option(names = "--data", description = "pretraining text folder (default: $NANOCHAT_BASE_DIR/base_data_climbmix, else ../shared/data/pretrain_text)")
    Path data;

    @Option(names = "--code", defaultValue = "../shared/data/humaneval/HumanEval.jsonl.gz", description = "HumanEval JSONL(.gz) for code text (default: ${DEFAULT-VALUE})")
    Path code;

    @Option(names = "--chat", defaultValue = "../shared/data/sft/alpaca_5000/alpaca_5000.json", description = "Alpaca-style JSON array for chat text (default: ${DEFAULT-VALUE})")
    Path chat;

    @Option(names = "--compare", description = "a .tiktoken rank file to compare with (nanochat's split pattern and specials assumed)")
    Path compare;

    @Override
    public Integer call() {
        return OneLineErrors.run("tok-eval", this::run);
    }

    private int run() throws IOException {
        PrintStream out = System.out;
        Path dir = tokenizerDir != null ? tokenizerDir : BaseDir.get().resolve("tokenizer");
        Tokenizer ours = Tokenizer.load(dir);
        Tokenizer other = compare == null ? null : TiktokenFormat.read(compare);
        Map<String, String> texts = texts(out);

        out.printf(Locale.ROOT, "%nvocab size: ours %d (%s)%s%n", ours.vocabSize(), dir,
                other == null ? "" : ", compared " + other.vocabSize() + " (" + compare + ")");
        out.printf(Locale.ROOT, "%-15s %10s %10s %9s %8s %8s %6s", "text", "bytes", "chars", "tokens", "bytes/tok", "chars/tok", "trip");
        if (other != null) out.printf(Locale.ROOT, " %9s %8s %8s", "cmp tok", "cmp b/t", "diff %");
        out.println();
        boolean allOk = true;
        ProgressBar bar = new ProgressBar(System.err);
        int row = 0;
        for (var e : texts.entrySet()) {
            bar.update(row++, texts.size(), "encoding " + e.getKey(), true);
            String text = e.getValue();
            long bytes = text.getBytes(StandardCharsets.UTF_8).length;
            long chars = text.codePointCount(0, text.length());
            int[] ids = ours.encode(text);
            boolean ok = ours.decode(ids).equals(text);
            allOk &= ok;
            int[] cmp = other == null ? null : other.encode(text);
            bar.clear();
            out.printf(Locale.ROOT, "%-15s %10d %10d %9d %8.2f %8.2f %6s", e.getKey(), bytes, chars, ids.length,
                    (double) bytes / Math.max(1, ids.length), (double) chars / Math.max(1, ids.length), ok ? "ok" : "FAIL");
            if (cmp != null) {
                out.printf(Locale.ROOT, " %9d %8.2f %+7.1f%%", cmp.length, (double) bytes / Math.max(1, cmp.length),
                        100.0 * (cmp.length - ids.length) / Math.max(1, cmp.length));
            }
            out.println();
        }
        if (!allOk) {
            out.println("round trip FAILED for at least one text");
            return 1;
        }
        return 0;
    }

    private Map<String, String> texts(PrintStream out) throws IOException {
        Map<String, String> texts = new LinkedHashMap<>(EvalSamples.all());
        Path pretrain = data;
        if (pretrain == null) {
            Path base = BaseDir.get().resolve("base_data_climbmix");
            pretrain = Files.isDirectory(base) ? base : Path.of("../shared/data/pretrain_text");
        }
        if (Files.isDirectory(pretrain)) {
            List<DataFile> files = TextDocuments.files(pretrain);
            texts.put("pretrain-train", String.join("\n", files.getFirst().rowGroup(0)));
            if (files.size() > 1) texts.put("pretrain-val", String.join("\n", files.getLast().rowGroup(0)));
        } else {
            out.println("note: no pretraining text at " + pretrain + " (pass --data DIR)");
        }
        if (Files.isRegularFile(code)) texts.put("code-humaneval", humanEval(code));
        else out.println("note: no code text at " + code + " (pass --code FILE)");
        if (Files.isRegularFile(chat)) texts.put("chat-alpaca", alpaca(chat, 500));
        else out.println("note: no chat text at " + chat + " (pass --chat FILE)");
        return texts;
    }

    /** Prompts and canonical solutions of a HumanEval JSONL (optionally gzipped), joined. */
    static String humanEval(Path file) throws IOException {
        ObjectMapper json = new ObjectMapper();
        StringBuilder sb = new StringBuilder();
        try (InputStream raw = Files.newInputStream(file);
             InputStream in = file.toString().endsWith(".gz") ? new GZIPInputStream(raw) : raw;
             BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8))) {
            int ln = 0;
            for (String l; (l = r.readLine()) != null; ) {
                ln++;
                if (l.isBlank()) continue;
                JsonNode n;
                try {
                    n = json.readTree(l);
                } catch (IOException e) {
                    throw new IOException(file + " line " + ln + ": not JSON (" + e.getMessage() + ")");
                }
                sb.append(n.path("prompt").asText()).append(n.path("canonical_solution").asText()).append('\n');
            }
        }
        return sb.toString();
    }

    /** The first {@code n} Alpaca examples as user/assistant text. */
    static String alpaca(Path file, int n) throws IOException {
        JsonNode arr = new ObjectMapper().readTree(file.toFile());
        if (!arr.isArray()) throw new IOException(file + ": expected a JSON array of {instruction, input, output}");
        List<String> parts = new ArrayList<>();
        for (int i = 0; i < Math.min(n, arr.size()); i++) {
            JsonNode ex = arr.get(i);
            String input = ex.path("input").asText();
            parts.add(ex.path("instruction").asText() + (input.isEmpty() ? "" : "\n\n" + input) + "\n" + ex.path("output").asText());
        }
        return String.join("\n\n", parts);
    }
}
