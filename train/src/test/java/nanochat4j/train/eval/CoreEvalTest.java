package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CoreEvalTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int BOS = 256;

    /** Byte-level tokenizer: BOS then the UTF-8 bytes. */
    static final CoreEval.Encoder BYTES = new CoreEval.Encoder(text -> {
        byte[] b = text.getBytes(StandardCharsets.UTF_8);
        int[] out = new int[b.length + 1];
        out[0] = BOS;
        for (int i = 0; i < b.length; i++) out[i + 1] = b[i] & 0xff;
        return out;
    }, BOS);

    /**
     * A model whose loss for predicting byte c is cost(c) and whose argmax is always {@code favourite}: it
     * "prefers" text made of cheap bytes, so every accuracy below can be worked out by hand.
     */
    record StubModel(String cheap, int favourite, int maxSeqLen) implements CoreEval.Scorer {
        @Override
        public CoreEval.Scores score(int[][] rows, int from, int to) {
            float[][] loss = new float[rows.length][to - from];
            int[][] argmax = new int[rows.length][to - from];
            for (int r = 0; r < rows.length; r++) {
                for (int t = from; t < to; t++) {
                    loss[r][t - from] = t + 1 < rows[r].length ? cheap.indexOf(rows[r][t + 1]) >= 0 ? 0.25f : 2.0f : Float.NaN;
                    argmax[r][t - from] = favourite;
                }
            }
            return new CoreEval.Scores(loss, argmax);
        }
    }

    private static JsonNode j(String s) throws IOException {
        return JSON.readTree(s);
    }

    @Test
    void multipleChoicePromptsJoinShotsWithBlankLines() throws IOException {
        JsonNode shot = j("{\"query\":\"Q1\",\"choices\":[\"a\",\"b\"],\"gold\":1}");
        JsonNode item = j("{\"query\":\"Q2\",\"choices\":[\"x\",\"y\"],\"gold\":0}");
        assertEquals(List.of("Q1\nAnswer: b\n\nQ2\nAnswer: x", "Q1\nAnswer: b\n\nQ2\nAnswer: y"),
                CoreEval.renderMultipleChoice(item, "\nAnswer: ", List.of(shot)));
    }

    @Test
    void schemaPromptsVaryTheContextAndShareTheContinuation() throws IOException {
        JsonNode shot = j("{\"context_options\":[\"c0\",\"c1\"],\"continuation\":\"k\",\"gold\":0}");
        JsonNode item = j("{\"context_options\":[\"A x\",\"B\"],\"continuation\":\"done.\",\"gold\":1}");
        assertEquals(List.of("c0 k\n\nA x done.", "c0 k\n\nB done."), CoreEval.renderSchema(item, " ", List.of(shot)));
    }

    @Test
    void languageModelingTrimsContextsAndStripsThePromptWithoutContinuation() throws IOException {
        JsonNode shot = j("{\"context\":\"  two plus two \",\"continuation\":\"4\"}");
        JsonNode item = j("{\"context\":\"\\u00a0one plus one\\n\",\"continuation\":\"2\"}");
        assertEquals(List.of("two plus two 4\n\none plus one", "two plus two 4\n\none plus one 2"),
                CoreEval.renderLanguageModeling(item, " ", List.of(shot)));
    }

    @Test
    void scoredSpansFollowCommonPrefixSuffixAndContinuation() {
        CoreEval eval = new CoreEval(new StubModel("", 0, 1000), BYTES);
        CoreEval.Batch mc = eval.batch(CoreTask.Type.MULTIPLE_CHOICE, List.of("ab c", "ab de"), "t");
        assertArrayEquals(new int[] {4, 4}, mc.start()); // BOS a b ' ' shared
        assertArrayEquals(new int[] {5, 6}, mc.end());
        CoreEval.Batch schema = eval.batch(CoreTask.Type.SCHEMA, List.of("x end", "yy end"), "t");
        assertArrayEquals(new int[] {2, 3}, schema.start()); // " end" shared suffix of 4
        assertArrayEquals(new int[] {6, 7}, schema.end());
        CoreEval.Batch lm = eval.batch(CoreTask.Type.LANGUAGE_MODELING, List.of("q:", "q: 7"), "t");
        assertEquals(1, lm.tokens().length);
        assertArrayEquals(new int[] {3}, lm.start());
        assertArrayEquals(new int[] {5}, lm.end());
    }

    @Test
    void promptsLongerThanTheContextAreCroppedFromTheLeft() {
        CoreEval eval = new CoreEval(new StubModel("", 0, 6), BYTES);
        CoreEval.Batch b = eval.batch(CoreTask.Type.MULTIPLE_CHOICE, List.of("hello X", "hello YZ"), "t");
        // "hello X" = BOS + 7 bytes = 8 tokens → keep last 6 ("llo X"+...), span start 6 moves to 4.
        assertArrayEquals(new int[] {'l', 'l', 'o', ' ', 'X'}, java.util.Arrays.copyOfRange(b.tokens()[0], 1, 6));
        assertEquals(6, b.tokens()[0].length);
        assertEquals(6, b.tokens()[1].length);
        assertArrayEquals(new int[] {5, 4}, b.start());
        assertArrayEquals(new int[] {6, 6}, b.end());
        assertEquals('Y', b.tokens()[1][b.start()[1]]);
    }

    @Test
    void centeredAccuracyIsZeroAtTheBaselineAndOneAtPerfect() {
        CoreTask t = new CoreTask("t", Path.of("x"), 0, CoreTask.Type.MULTIPLE_CHOICE, " ", 25);
        assertEquals(0.0, t.centered(0.25), 1e-12);
        assertEquals(1.0, t.centered(1.0), 1e-12);
        assertEquals((0.4 - 0.25) / 0.75, t.centered(0.4), 1e-12);
        assertEquals(-1.0 / 3, t.centered(0.0), 1e-12);
    }

    private static Path bundle(Path dir, String yamlTasks, String csvRows, String... files) throws IOException {
        Files.writeString(dir.resolve("core.yaml"), "icl_tasks:\n" + yamlTasks);
        Files.writeString(dir.resolve("eval_meta_data.csv"), "Eval Task,Task Category,Random baseline,Description\n" + csvRows);
        for (int i = 0; i < files.length; i += 2) {
            Path f = dir.resolve("eval_data").resolve(files[i]);
            Files.createDirectories(f.getParent());
            Files.writeString(f, files[i + 1]);
        }
        return dir;
    }

    @Test
    void accuraciesOnAStubModelMatchHandCounts(@TempDir Path dir) throws IOException {
        // The stub finds bytes of "good" cheap: MC/schema pick the option with the most cheap bytes per token.
        String mc = """
                {"query":"pick","choices":["good","bad"],"gold":0}
                {"query":"pick","choices":["bad","good"],"gold":0}
                {"query":"pick","choices":["bad","good"],"gold":1}
                {"query":"pick","choices":["dog","bad"],"gold":0}
                """;
        String schema = """
                {"context_options":["good","bad"],"continuation":"x","gold":0}
                {"context_options":["good","bad"],"continuation":"x","gold":1}
                """;
        // LM: argmax is always 'o'; correct iff every scored byte is 'o'. The delimiter is empty here because a
        // delimiter belongs to the scored span (the prompt without continuation is stripped of it).
        String lm = """
                {"context":"a","continuation":"oo"}
                {"context":"b","continuation":"ox"}
                {"context":"c","continuation":"o"}
                """;
        bundle(dir, """
                - {label: mc, dataset_uri: t/mc.jsonl, num_fewshot: [0], icl_task_type: multiple_choice}
                - {label: sc, dataset_uri: t/sc.jsonl, num_fewshot: [0], icl_task_type: schema}
                - {label: lm, dataset_uri: t/lm.jsonl, num_fewshot: [1], icl_task_type: language_modeling, continuation_delimiter: ""}
                - {label: gone, dataset_uri: t/gone.jsonl, num_fewshot: [0], icl_task_type: schema}
                """, "mc,x,50,d\nsc,x,50,d\nlm,x,0,d\ngone,x,0,d\n", "t/mc.jsonl", mc, "t/sc.jsonl", schema, "t/lm.jsonl", lm);
        CoreBundle b = CoreBundle.load(dir);
        assertEquals(List.of("gone"), b.missing());
        CoreEval eval = new CoreEval(new StubModel("god", 'o', 512), BYTES);
        List<CoreEval.TaskResult> seen = new ArrayList<>();
        CoreEval.Result r = eval.run(b, -1, x -> true, CoreBundle.OnBadLine.STOP, seen::add);
        assertEquals(3, r.tasks().size());
        // mc: "good" wins rows 1 and 3 (gold 0, gold 1) but loses row 2 (gold 0, good at 1); "dog" (all cheap) wins row 4.
        assertEquals(0.75, r.tasks().get(0).accuracy(), 1e-12);
        assertEquals(0.5, r.tasks().get(0).centered(), 1e-12);
        // schema: the shared continuation " x" costs the same after either context: a tie goes to option 0.
        assertEquals(0.5, r.tasks().get(1).accuracy(), 1e-12);
        // lm: "oo" and "o" right, "ox" wrong; the 1-shot prompt does not change greedy matching.
        assertEquals(2.0 / 3, r.tasks().get(2).accuracy(), 1e-12);
        assertEquals((0.5 + 0.0 + 2.0 / 3) / 3, r.core(), 1e-12);
        assertEquals(seen, r.tasks());
    }

    @Test
    void malformedLinesAreReportedWithFileAndLineThenSkippedOrFatal(@TempDir Path dir) throws IOException {
        bundle(dir, "- {label: mc, dataset_uri: mc.jsonl, num_fewshot: [0], icl_task_type: multiple_choice}\n", "mc,x,50,d\n",
                "mc.jsonl", "{\"query\":\"q\",\"choices\":[\"a\",\"b\"],\"gold\":0}\n{not json\n{\"query\":\"q\",\"choices\":[\"a\"],\"gold\":3}\n");
        CoreBundle b = CoreBundle.load(dir);
        List<String> warnings = new ArrayList<>();
        List<JsonNode> kept = CoreBundle.readExamples(b.tasks().get(0), CoreBundle.OnBadLine.SKIP, warnings);
        assertEquals(1, kept.size());
        assertEquals(2, warnings.size());
        assertTrue(warnings.get(0).contains("mc.jsonl line 2"), warnings.get(0));
        assertTrue(warnings.get(1).contains("mc.jsonl line 3") && warnings.get(1).contains("choices"), warnings.get(1));
        IOException e = assertThrows(IOException.class,
                () -> CoreBundle.readExamples(b.tasks().get(0), CoreBundle.OnBadLine.STOP, new ArrayList<>()));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
    }

    @Test
    void unknownTaskTypesAndMissingBundlesAreClearErrors(@TempDir Path dir) throws IOException {
        IOException none = assertThrows(IOException.class, () -> CoreBundle.load(dir.resolve("nope")));
        assertTrue(none.getMessage().contains("no CORE eval bundle at"), none.getMessage());
        bundle(dir, "- {label: q, dataset_uri: q.jsonl, num_fewshot: [0], icl_task_type: question_answering}\n", "q,x,0,d\n");
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> CoreBundle.load(dir));
        assertTrue(e.getMessage().contains("question_answering") && e.getMessage().contains("'q'"), e.getMessage());
    }

    @Test
    void fewShotExamplesAreDrawnLikeNanochat() throws IOException {
        // nanochat: Random(1234 + idx).sample([i for i in range(n) if i != idx], k); CPython gives these for n=100, idx=7.
        List<JsonNode> data = new ArrayList<>();
        for (int i = 0; i < 100; i++) data.add(j("{\"context\":\"c" + i + "\",\"continuation\":\"k\"}"));
        int[] avail = java.util.stream.IntStream.range(0, 100).filter(i -> i != 7).toArray();
        assertArrayEquals(new int[] {78, 64, 98, 28, 37, 33, 25, 92, 63, 71}, new PyRandom(1234 + 7).sample(avail, 10));
        CoreTask task = new CoreTask("lm", Path.of("x"), 10, CoreTask.Type.LANGUAGE_MODELING, " ", 0);
        List<String> seenPrompts = new ArrayList<>();
        CoreEval.Scorer recording = new CoreEval.Scorer() {
            @Override
            public CoreEval.Scores score(int[][] rows, int from, int to) {
                StringBuilder sb = new StringBuilder();
                for (int t = 1; t < rows[0].length; t++) sb.append((char) rows[0][t]);
                seenPrompts.add(sb.toString());
                return new StubModel("", 0, 4096).score(rows, from, to);
            }

            @Override
            public int maxSeqLen() {
                return 4096;
            }
        };
        new CoreEval(recording, BYTES).evaluateExample(task, data, 7);
        assertTrue(seenPrompts.get(0).startsWith("c78 k\n\nc64 k\n\nc98 k\n\n"), seenPrompts.get(0));
        assertTrue(seenPrompts.get(0).endsWith("c71 k\n\nc7 k"), seenPrompts.get(0));
    }

    @Test
    void everyTaskInTheRealBundleRendersAndScores() throws IOException {
        Path dir = SharedDir.locate("data/core_eval_bundle");
        assumeTrue(dir != null, SharedDir.skipMessage("../shared/data/core_eval_bundle"));
        CoreBundle b = CoreBundle.load(dir);
        assertEquals(15, b.tasks().size(), "tasks present in the shared bundle");
        assertTrue(b.missing().containsAll(List.of("hellaswag", "hellaswag_zeroshot", "squad", "coqa")), b.missing().toString());
        CoreEval eval = new CoreEval(new StubModel("etaoin ", 'e', 2048), BYTES);
        CoreEval.Result r = eval.run(b, 3, x -> true, CoreBundle.OnBadLine.STOP, x -> {});
        assertEquals(15, r.tasks().size());
        assertTrue(r.warnings().isEmpty(), r.warnings().toString());
        for (CoreEval.TaskResult t : r.tasks()) {
            assertEquals(3, t.examples(), t.task().label());
            assertTrue(t.accuracy() >= 0 && t.accuracy() <= 1, t.task().label());
        }
        CoreTask bli = b.tasks().stream().filter(t -> t.label().equals("bigbench_language_identification")).findFirst().orElseThrow();
        assertEquals(9.1, bli.randomBaseline(), 1e-9);
        CoreTask arc = b.tasks().stream().filter(t -> t.label().equals("arc_easy")).findFirst().orElseThrow();
        assertEquals("\nAnswer: ", arc.continuationDelimiter());
        assertEquals(10, arc.numFewshot());
    }
}
