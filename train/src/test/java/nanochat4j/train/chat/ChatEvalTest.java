package nanochat4j.train.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.train.tasks.Gsm8k;
import nanochat4j.train.tasks.Task;
import org.junit.jupiter.api.Test;

/** chat-eval's loops against stub models whose answers are known, so every count can be predicted exactly. */
class ChatEvalTest {
    static final Tokenizer TOK = Tokenizer.train(List.of("x"), 256 + Tokenizer.SPECIAL_TOKENS.size());
    static final List<String> LETTERS = List.of("A", "B", "C", "D");

    /** 23 multiple-choice problems; problem i's answer is LETTERS[i % 4] and its question has i+1 words (varied lengths). */
    static Task multipleChoice() {
        return new Task() {
            @Override public String name() { return "mc"; }
            @Override public int size() { return 23; }
            @Override public Example get(int i) {
                String q = "word ".repeat(i + 1) + "#" + i;
                String prompt = nanochat4j.train.tasks.MultipleChoice.render(q, LETTERS, List.of("w", "x", "y", "z"));
                return new Example(Conversation.of(Conversation.Message.user(prompt), Conversation.Message.assistant(LETTERS.get(i % 4))), LETTERS, null);
            }
            @Override public EvalType evalType() { return EvalType.CATEGORICAL; }
            @Override public boolean evaluate(Example e, String c) { return c.equals(e.answerText()); }
        };
    }

    /**
     * A stub scorer: it reads the problem number back from the prompt, checks the padding and the answer position,
     * and puts the highest letter logit on the right answer when i % 3 != 0, else on the next letter. Other tokens get
     * even higher logits, which must not matter (only the letters are compared).
     */
    static ChatEval.Scorer stub(List<String> seen) {
        int asstStart = TOK.encodeSpecial("<|assistant_start|>");
        return (rows, positions) -> {
            float[][] out = new float[rows.length][TOK.vocabSize()];
            for (int r = 0; r < rows.length; r++) {
                assertEquals(asstStart, rows[r][positions[r]], "the answer position is the prompt's last token");
                for (int t = positions[r] + 1; t < rows[r].length; t++) assertEquals(TOK.bosId(), rows[r][t], "right padding is BOS");
                String text = TOK.decode(Arrays.copyOf(rows[r], positions[r] + 1));
                int i = Integer.parseInt(text.replaceAll("(?s).*#(\\d+)\\n.*", "$1"));
                seen.add("p" + i);
                Arrays.fill(out[r], 100f);
                for (String l : LETTERS) out[r][TOK.encode(l)[0]] = 0f;
                String pick = i % 3 != 0 ? LETTERS.get(i % 4) : LETTERS.get((i + 1) % 4);
                out[r][TOK.encode(pick)[0]] = 5f;
            }
            return out;
        };
    }

    @Test
    void categoricalAccuracyIsExact() {
        int expect = 0;
        for (int i = 0; i < 23; i++) if (i % 3 != 0) expect++;
        List<String> seen = new ArrayList<>();
        ChatEval.Score s = ChatEval.categorical(multipleChoice(), TOK, stub(seen), 5, -1, 0, 1, ChatEval.Reducer.LOCAL);
        assertEquals(new ChatEval.Score(expect, 23), s);
        assertEquals(23, seen.size());
        // --max-problems, and two ranks splitting the batches: the sums are the same problems
        ChatEval.Score capped = ChatEval.categorical(multipleChoice(), TOK, stub(new ArrayList<>()), 4, 10, 0, 1, ChatEval.Reducer.LOCAL);
        assertEquals(new ChatEval.Score(6, 10), capped); // i = 1, 2, 4, 5, 7, 8
        List<String> r0 = new ArrayList<>(), r1 = new ArrayList<>();
        ChatEval.Score a = ChatEval.categorical(multipleChoice(), TOK, stub(r0), 5, -1, 0, 2, ChatEval.Reducer.LOCAL);
        ChatEval.Score b = ChatEval.categorical(multipleChoice(), TOK, stub(r1), 5, -1, 1, 2, ChatEval.Reducer.LOCAL);
        assertEquals(expect, a.passed() + b.passed());
        assertEquals(23, a.total() + b.total());
        assertEquals(List.of("p0", "p1", "p2", "p3", "p4", "p10", "p11", "p12", "p13", "p14", "p20", "p21", "p22"), r0);
    }

    @Test
    void generativeAccuracyIsExactAndAnySamplePasses() {
        List<Task.Example> problems = new ArrayList<>();
        for (int i = 0; i < 10; i++) problems.add(Task.Example.of(Gsm8k.conversation("What is " + i + " + 1?", "It is <<" + i + "+1=" + (i + 1) + ">>" + (i + 1) + ".\n#### " + (i + 1))));
        Task gsm = new Task() {
            @Override public String name() { return "gsm"; }
            @Override public int size() { return problems.size(); }
            @Override public Example get(int i) { return problems.get(i); }
            @Override public EvalType evalType() { return EvalType.GENERATIVE; }
            @Override public boolean evaluate(Example e, String c) {
                var last = e.conversation().messages().get(1).parts();
                return java.util.Objects.equals(Gsm8k.extractAnswer(c), Gsm8k.extractAnswer(last.get(last.size() - 1).text()));
            }
        };
        Map<Integer, int[]> prompts = new HashMap<>();
        // sample 0 is right for i % 2 == 0, sample 1 for i % 5 == 0 → pass for i in {0, 2, 4, 5, 6, 8}
        ChatEval.Generator gen = (prompt, i) -> {
            prompts.put(i, prompt);
            return List.of("#### " + (i % 2 == 0 ? i + 1 : -1), "#### " + (i % 5 == 0 ? i + 1 : -7));
        };
        ChatEval.Score s = ChatEval.generative(gsm, TOK, gen, -1, 0, 1, ChatEval.Reducer.LOCAL, null);
        assertEquals(new ChatEval.Score(6, 10), s);
        assertEquals(Arrays.toString(ChatRenderer.renderForCompletion(TOK, problems.get(3).conversation())), Arrays.toString(prompts.get(3)));
        assertEquals(new ChatEval.Score(2, 4), ChatEval.generative(gsm, TOK, gen, 4, 0, 1, ChatEval.Reducer.LOCAL, null));
    }

    @Test
    void chatCoreIsTheCenteredMean() {
        Map<String, Double> acc = new java.util.LinkedHashMap<>(Map.of("ARC-Easy", 0.5, "ARC-Challenge", 0.25, "MMLU", 0.25, "GSM8K", 0.1));
        assertTrue(Double.isNaN(ChatEval.chatCore(acc)));
        acc.put("HumanEval", 0.2);
        // (1/3 + 0 + 0 + 0.1 + 0.2) / 5
        assertEquals((1.0 / 3 + 0.1 + 0.2) / 5, ChatEval.chatCore(acc), 1e-12);
    }

    @Test
    void aLetterThatIsNotOneTokenIsAnError() {
        Task t = new Task() {
            @Override public String name() { return "bad"; }
            @Override public int size() { return 1; }
            @Override public Example get(int i) {
                return new Example(Conversation.of(Conversation.Message.user("q"), Conversation.Message.assistant("AB")), List.of("AB", "C"), null);
            }
            @Override public EvalType evalType() { return EvalType.CATEGORICAL; }
        };
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> ChatEval.categorical(t, TOK, (rows, pos) -> new float[rows.length][TOK.vocabSize()], 1, -1, 0, 1, ChatEval.Reducer.LOCAL));
        assertTrue(e.getMessage().contains("'AB' is 2 tokens"), e.getMessage());
    }
}
