package nanochat4j.train.tasks;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * MMLU, subset "all" (nanochat tasks/mmlu.py): every {@code mmlu/<split>/<subject>_<split>.csv} in subject order,
 * letters A–D. Rows are {@code question,choice0..3,answer} with a header row and an integer answer (HF cais/mmlu's
 * convention), or the original header-less hendrycks files with a letter answer. A malformed row names its file and
 * record and is skipped or fatal as {@link JsonLines.OnBadLine} says.
 */
public final class Mmlu implements Task {
    static final List<String> LETTERS = List.of("A", "B", "C", "D");
    private final String name;
    private final List<Example> examples = new ArrayList<>();
    private final int[] order;

    public Mmlu(Path dataRoot, String split, JsonLines.OnBadLine onBad, List<String> warnings) throws IOException {
        if (!List.of("auxiliary_train", "validation", "dev", "test").contains(split)) {
            throw new IllegalArgumentException("MMLU split must be auxiliary_train|validation|dev|test, got " + split);
        }
        this.name = "MMLU/" + split;
        Path dir = dataRoot.resolve("mmlu").resolve(split);
        if (!Files.isDirectory(dir)) throw new NoSuchFileException(dir.toString(), null, "MMLU split folder not found (expects <subject>_" + split + ".csv files)");
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.getFileName().toString().endsWith(".csv")).sorted().toList();
        }
        if (files.isEmpty()) throw new NoSuchFileException(dir.toString(), null, "no MMLU .csv files");
        for (Path f : files) {
            String subject = f.getFileName().toString().replaceFirst("_" + split + "\\.csv$", "").replaceFirst("\\.csv$", "");
            List<List<String>> rows;
            try {
                rows = Csv.parse(Files.readString(f, StandardCharsets.UTF_8));
            } catch (IllegalArgumentException e) {
                throw new IOException(f + ": " + e.getMessage(), e);
            }
            int first = !rows.isEmpty() && rows.get(0).get(0).equals("question") ? 1 : 0;
            for (int r = first; r < rows.size(); r++) {
                try {
                    examples.add(parse(rows.get(r), subject));
                } catch (IllegalArgumentException e) {
                    String msg = f + " record " + (r + 1) + ": " + e.getMessage();
                    if (onBad == JsonLines.OnBadLine.STOP) throw new IOException(msg + " (use --on-bad-line skip to skip such records)", e);
                    warnings.add("skipped " + msg);
                }
            }
        }
        this.order = Task.shuffledOrder(examples.size());
    }

    static Example parse(List<String> row, String subject) {
        if (row.size() != 6) throw new IllegalArgumentException("expected 6 fields (question, 4 choices, answer), got " + row.size());
        String a = row.get(5).strip();
        int answer = a.length() == 1 && LETTERS.contains(a) ? LETTERS.indexOf(a) : Integer.parseInt(a);
        if (answer < 0 || answer > 3) throw new IllegalArgumentException("answer " + a + " is not 0–3 or A–D");
        return MultipleChoice.example(row.get(0), LETTERS, row.subList(1, 5), LETTERS.get(answer), Map.of("subject", subject));
    }

    @Override public String name() { return name; }
    @Override public int size() { return examples.size(); }
    @Override public Example get(int index) { return examples.get(order[index]); }
    @Override public EvalType evalType() { return EvalType.CATEGORICAL; }
    @Override public boolean evaluate(Example example, String completion) { return MultipleChoice.evaluate(example, completion); }
}
