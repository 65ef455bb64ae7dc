package nanochat4j.train.tasks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The tasks' conversations, renderings and masks against nanochat's rules, worked out by hand. */
class TasksTest {
    @TempDir
    Path tmp;

    /** Bytes only (no merges): every character of ASCII text is one token, so expected ids can be written down. */
    static final Tokenizer TOK = Tokenizer.train(List.of("x"), 256 + Tokenizer.SPECIAL_TOKENS.size());

    static Path data() {
        Path d = SharedDir.locate("data");
        assumeTrue(d != null && Files.isDirectory(d.resolve("arc")), SharedDir.skipMessage("data (arc, mmlu, gsm8k, humaneval, sft)"));
        return d;
    }

    /** Expected ids/mask built piece by piece: (ids of a piece, its mask). */
    static final class Expect {
        final List<Integer> ids = new ArrayList<>(), mask = new ArrayList<>();

        Expect special(String name, int m) {
            ids.add(TOK.encodeSpecial(name));
            mask.add(m);
            return this;
        }

        Expect text(String s, int m) {
            for (int id : TOK.encode(s)) {
                ids.add(id);
                mask.add(m);
            }
            return this;
        }

        void check(ChatRenderer.Rendered r) {
            assertArrayEquals(ids.stream().mapToInt(Integer::intValue).toArray(), r.ids());
            assertArrayEquals(mask.stream().mapToInt(Integer::intValue).toArray(), r.mask());
        }
    }

    @Test
    void multipleChoicePromptIsNanochats() {
        String q = MultipleChoice.render("Which is a fruit?", List.of("A", "B", "C"), List.of("apple", "rock", "car"));
        assertEquals("Multiple Choice question: Which is a fruit?\n- apple=A\n- rock=B\n- car=C\n\nRespond only with the letter of the correct answer.", q);
        Task.Example ex = MultipleChoice.example("Which is a fruit?", List.of("A", "B", "C"), List.of("apple", "rock", "car"), "A", null);
        // BOS, user turn (mask 0), assistant_start (0), the letter (1), assistant_end (1)
        new Expect().special("<|bos|>", 0).special("<|user_start|>", 0).text(q, 0).special("<|user_end|>", 0)
                .special("<|assistant_start|>", 0).text("A", 1).special("<|assistant_end|>", 1)
                .check(ChatRenderer.render(TOK, ex.conversation(), 2048));
        assertTrue(MultipleChoice.evaluate(ex, "A"));
        assertFalse(MultipleChoice.evaluate(ex, "B"));
        assertThrows(IllegalArgumentException.class, () -> MultipleChoice.evaluate(ex, "D"));
    }

    @Test
    void gsm8kToolCallsAreSplitAsNanochatSplitsThem() {
        String answer = "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10";
        Conversation c = Gsm8k.conversation("How much?", answer);
        List<Conversation.Part> parts = c.messages().get(1).parts();
        assertEquals(List.of(Conversation.Part.text("Weng earns 12/60 = $"), Conversation.Part.python("12/60"), Conversation.Part.pythonOutput("0.2"),
                Conversation.Part.text("0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $"), Conversation.Part.python("0.2*50"),
                Conversation.Part.pythonOutput("10"), Conversation.Part.text("10.\n#### 10")), parts);
        // a call at the very start and one without '=': empty text parts around, empty output (re.split semantics)
        assertEquals(List.of(Conversation.Part.text(""), Conversation.Part.python("1+1"), Conversation.Part.pythonOutput(""),
                Conversation.Part.text(""), Conversation.Part.python("a=b"), Conversation.Part.pythonOutput("c"), Conversation.Part.text("")),
                Gsm8k.conversation("q", "<<1+1>><<a=b=c>>").messages().get(1).parts());

        new Expect().special("<|bos|>", 0).special("<|user_start|>", 0).text("How much?", 0).special("<|user_end|>", 0)
                .special("<|assistant_start|>", 0)
                .text("Weng earns 12/60 = $", 1).special("<|python_start|>", 1).text("12/60", 1).special("<|python_end|>", 1)
                .special("<|output_start|>", 0).text("0.2", 0).special("<|output_end|>", 0)
                .text("0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $", 1)
                .special("<|python_start|>", 1).text("0.2*50", 1).special("<|python_end|>", 1)
                .special("<|output_start|>", 0).text("10", 0).special("<|output_end|>", 0)
                .text("10.\n#### 10", 1).special("<|assistant_end|>", 1)
                .check(ChatRenderer.render(TOK, c, 2048));

        Task.Example ex = Task.Example.of(c);
        assertEquals("10", Gsm8k.extractAnswer("so #### 10"));
        assertEquals("-1234.5", Gsm8k.extractAnswer("#### -1,234.5 dollars"));
        assertEquals(null, Gsm8k.extractAnswer("the answer is 10"));
        assertTrue(evaluateGsm(ex, "she earned 10 dollars\n#### 10"));
        assertFalse(evaluateGsm(ex, "#### 11"));
        assertFalse(evaluateGsm(ex, "10"));
    }

    private static boolean evaluateGsm(Task.Example ex, String completion) {
        var last = ex.conversation().messages().get(1);
        String ref = Gsm8k.extractAnswer(last.parts().get(last.parts().size() - 1).text());
        return java.util.Objects.equals(Gsm8k.extractAnswer(completion), ref);
    }

    @Test
    void systemMessageMergesAndMultiTurnMasks() {
        Conversation c = Conversation.of(Conversation.Message.system("Be brief."), Conversation.Message.user("Hi"),
                Conversation.Message.assistant("Hello"), Conversation.Message.user("Bye"), Conversation.Message.assistant("Ciao"));
        new Expect().special("<|bos|>", 0).special("<|user_start|>", 0).text("Be brief.\n\nHi", 0).special("<|user_end|>", 0)
                .special("<|assistant_start|>", 0).text("Hello", 1).special("<|assistant_end|>", 1)
                .special("<|user_start|>", 0).text("Bye", 0).special("<|user_end|>", 0)
                .special("<|assistant_start|>", 0).text("Ciao", 1).special("<|assistant_end|>", 1)
                .check(ChatRenderer.render(TOK, c, 2048));
        // render_for_completion: drop the last assistant message, append assistant_start
        Expect e = new Expect().special("<|bos|>", 0).special("<|user_start|>", 0).text("Be brief.\n\nHi", 0).special("<|user_end|>", 0)
                .special("<|assistant_start|>", 0).text("Hello", 1).special("<|assistant_end|>", 1)
                .special("<|user_start|>", 0).text("Bye", 0).special("<|user_end|>", 0).special("<|assistant_start|>", 0);
        assertArrayEquals(e.ids.stream().mapToInt(Integer::intValue).toArray(), ChatRenderer.renderForCompletion(TOK, c));
    }

    @Test
    void humanEvalProgramExtraction() {
        String prompt = "# header\nfrom typing import List\nimport math\n\ndef f(x: List[int]) -> int:\n    \"\"\"doc\"\"\"\n";
        assertEquals("from typing import List\nimport math", HumanEval.extractImports(prompt));
        assertEquals("def f(x):\n    return 1", HumanEval.extractProgram("Here:\n```python\ndef f(x):\n    return 1\n```\nmore\n```\nx\n```"));
        assertEquals("def f(x):\n    return 2", HumanEval.extractProgram("  def f(x):\n    return 2\n"));
        Task.Example ex = new Task.Example(Conversation.of(Conversation.Message.user(prompt), Conversation.Message.assistant("s")), null,
                java.util.Map.of("test", "def check(c):\n    assert c([1]) == 1", "entry_point", "f"));
        assertEquals("from typing import List\nimport math\n\ndef f(x):\n    return 1\n\ndef check(c):\n    assert c([1]) == 1\ncheck(f)",
                HumanEval.program(ex, "def f(x):\n    return 1"));
    }

    @Test
    void realDatasetsLoadWithTheirCounts() throws IOException {
        Path d = data();
        List<String> warnings = new ArrayList<>();
        TaskData td = new TaskData(d, JsonLines.OnBadLine.STOP, warnings);
        Task arc = td.evalTask("ARC-Easy", null);
        assertEquals(2376, arc.size());
        assertEquals(1172, td.evalTask("ARC-Challenge", null).size());
        assertEquals(14042, td.evalTask("MMLU", null).size());
        assertEquals(1319, td.evalTask("GSM8K", null).size());
        assertEquals(164, td.evalTask("HumanEval", null).size());
        assertEquals(7473, new Gsm8k(d, "train", JsonLines.OnBadLine.STOP, warnings).size());
        assertTrue(warnings.isEmpty(), warnings.toString());
        // every multiple-choice example answers with one of its letters, and the shuffle is a fixed permutation
        Set<String> seen = new HashSet<>();
        for (int i = 0; i < arc.size(); i++) {
            Task.Example ex = arc.get(i);
            assertTrue(ex.letters().contains(ex.answerText()));
            seen.add(ex.conversation().messages().get(0).text());
        }
        assertTrue(seen.size() > 2300);
        assertEquals(arc.get(0), new Arc(d, "ARC-Easy", "test", JsonLines.OnBadLine.STOP, warnings).get(0));
        assertThrows(IllegalArgumentException.class, () -> td.evalTask("ARC-Hard", null));
        ConversationFile alpaca = new ConversationFile(d.resolve("sft/alpaca_5000/alpaca_5000.json"), JsonLines.OnBadLine.STOP, warnings);
        assertEquals(5000, alpaca.size());
        assertEquals("assistant", alpaca.get(0).conversation().messages().get(1).role());
    }

    @Test
    void conversationFilesReportBadLinesByNumber() throws IOException {
        Path f = tmp.resolve("conv.jsonl");
        Files.writeString(f, """
                {"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
                {"messages":[{"role":"user","content":"hi"}
                [{"role":"user","content":"q"},{"role":"assistant","content":[{"type":"text","text":"a"}]}]
                {"instruction":"Add","input":"1 and 2","output":"3"}
                {"messages":[{"role":"assistant","content":"no user"},{"role":"user","content":"x"}]}
                """);
        IOException e = assertThrows(IOException.class, () -> new ConversationFile(f, JsonLines.OnBadLine.STOP, new ArrayList<>()));
        assertTrue(e.getMessage().contains("conv.jsonl line 2") && e.getMessage().contains("not valid JSON"), e.getMessage());
        List<String> warnings = new ArrayList<>();
        ConversationFile cf = new ConversationFile(f, JsonLines.OnBadLine.SKIP, warnings);
        assertEquals(3, cf.size());
        assertEquals(2, warnings.size(), warnings.toString());
        assertTrue(warnings.get(1).contains("line 5") && warnings.get(1).contains("must be from user"), warnings.get(1));
        assertEquals("Add\n\n1 and 2", cf.get(2).conversation().messages().get(0).text());
    }

    @Test
    void mixtureShufflesDeterministicallyAndOversamples() {
        Task a = fixed("a", 5), b = fixed("b", 3);
        List<Task> tasks = new ArrayList<>(List.of(a));
        tasks.addAll(TaskMixture.repeat(b, 2));
        TaskMixture m = new TaskMixture(tasks), m2 = new TaskMixture(tasks);
        assertEquals(11, m.size());
        List<String> order = new ArrayList<>(), order2 = new ArrayList<>();
        for (int i = 0; i < m.size(); i++) {
            order.add(m.get(i).answerText());
            order2.add(m2.get(i).answerText());
        }
        assertEquals(order, order2);
        assertEquals(2, order.stream().filter("b0"::equals).count());
        assertEquals(1, order.stream().filter("a4"::equals).count());
        List<String> plain = new ArrayList<>(List.of("a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b0", "b1", "b2"));
        assertNotEquals(plain, order);
        Task s = Task.slice(a, 1, 5, 2);
        assertEquals(2, s.size());
        assertEquals("a3", s.get(1).answerText());
    }

    static Task fixed(String name, int n) {
        return new Task() {
            @Override public String name() { return name; }
            @Override public int size() { return n; }
            @Override public Example get(int i) {
                return Example.of(Conversation.of(Conversation.Message.user("q" + i), Conversation.Message.assistant(name + i)));
            }
        };
    }
}
