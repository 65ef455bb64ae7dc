package nanochat4j.serve.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.StringReader;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.serve.Nanochat4j;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaContext;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class ChatCommandTest {
    @TempDir
    static Path base;
    static Tokenizer tok;
    static GPT model;

    @BeforeAll
    static void tinyBaseCheckpoint() throws Exception {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 8; i++) docs.add("hello world, hello tokenizer, the quick brown fox " + i);
        tok = Tokenizer.train(docs, 300);
        tok.save(base.resolve("tokenizer"));
        model = GPT.create(new GPTConfig(64, tok.vocabSize(), 2, 2, 2, 32, "L"), 1);
        Checkpoint.save(base.resolve("base_checkpoints/d2"), model,
                new Checkpoint.Meta(model.config(), 5, "test", null, null), Safetensors.DType.F32);
    }

    private static String[] run(String... args) {
        CommandLine cl = Nanochat4j.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        int code;
        try {
            code = cl.execute(args);
        } finally {
            System.setOut(old);
        }
        return new String[] {Integer.toString(code), out.toString(StandardCharsets.UTF_8), err.toString()};
    }

    @Test
    void oneShotPromptPrintsTheCompletionAndExits() {
        String[] r = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].startsWith("hello"), "base models continue the prompt: " + r[1]);
    }

    /** --top-p 0 keeps only the most probable token: at any temperature the greedy reply; outside [0, 1] refused. */
    @Test
    void topPZeroSamplesTheGreedyReplyAndAnOutOfRangeTopPIsRefused() {
        String[] greedy = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "8");
        String[] nucleus = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "1.5", "-k", "0", "--top-p", "0", "-m", "8");
        assertEquals("0", nucleus[0], nucleus[2]);
        assertEquals(greedy[1], nucleus[1]);
        String[] r = run("chat", "--base-dir", base.toString(), "-p", "hello", "--top-p", "1.5");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("--top-p 1.5 must be in [0, 1]"), r[2]);
    }

    @Test
    void bf16WeightsAnswerTooAndAnotherWeightsValueIsAPicocliError() {
        String[] r = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5", "--weights", "bf16", "--device", "cpu");
        assertEquals("0", r[0], r[2]);
        assertTrue(r[1].startsWith("hello"), r[1]);
        r = run("chat", "--base-dir", base.toString(), "-p", "hello", "--weights", "fp16");
        assertEquals("2", r[0]);
        assertTrue(r[2].contains("Invalid value for option '--weights'") && r[2].contains("bf16") && r[2].contains("'fp16'"), r[2]);
    }

    @Test
    void everyDeviceAnswersAndAnUnusableCudaIsAOneLineReason() {
        String[] cpu = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5", "--device", "cpu");
        assertEquals("0", cpu[0], cpu[2]);
        String[] auto = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5");
        assertEquals("0", auto[0], auto[2]);
        String[] cuda = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5", "--device", "cuda");
        if (CudaContext.unavailableReason() != null) {
            assertEquals(cpu[1], auto[1], "auto is the CPU here");
            assertEquals("1", cuda[0]);
            assertTrue(cuda[2].contains("--device cuda: CUDA") && cuda[2].contains("--device cpu always works"), cuda[2]);
            assertEquals(1, cuda[2].strip().lines().count(), cuda[2]);
        }
        try (var device = StandInCuda.unlessGpu()) {   // without a GPU: the device code path with the CPU's arithmetic
            for (String precision : new String[] {"bf16", "fp32"}) {
                cuda = run("chat", "--base-dir", base.toString(), "-p", "hello", "-t", "0", "-m", "5", "--device", "cuda", "--precision", precision);
                // a freshly initialised model's logits nearly tie, so greedy text may differ between devices by rounding
                assertEquals("0", cuda[0], cuda[2]);
                assertTrue(cuda[1].startsWith("hello"), cuda[1]);
            }
        }
        String[] bad = run("chat", "--base-dir", base.toString(), "-p", "hello", "--precision", "fp16");
        assertEquals("1", bad[0]);
        assertTrue(bad[2].contains("--precision fp16: expected bf16") && bad[2].contains("or fp32"), bad[2]);
    }

    @Test
    void noCheckpointsIsAOneLineErrorNamingTheFolder(@TempDir Path empty) {
        String[] r = run("chat", "--base-dir", empty.toString(), "-p", "hi");
        assertEquals("1", r[0]);
        assertTrue(r[2].contains("base_checkpoints") && r[2].contains("does not exist"), r[2]);
        assertEquals(1, r[2].strip().lines().count(), r[2]);
    }

    @Test
    void chatTurnsGrowTheHistoryInNanochatsFormat() {
        ChatSession s = new ChatSession(new Engine(model, tok), false, 4, 0.0, 0, 1.0, 1);
        s.turn("hi", new PrintStream(new ByteArrayOutputStream()));
        List<Integer> h = s.history();
        assertEquals(tok.bosId(), h.get(0));
        assertEquals(tok.encodeSpecial("<|user_start|>"), h.get(1));
        assertEquals(tok.encodeSpecial("<|assistant_end|>"), h.get(h.size() - 1));
        assertTrue(h.contains(tok.encodeSpecial("<|assistant_start|>")));
        s.clear();
        assertEquals(List.of(tok.bosId()), s.history());
    }

    /**
     * Two exchanges, the first with a calculator call, through the session's rendering: the second prompt is
     * nanochat's format written out by hand — BOS; user_start, text, user_end; assistant_start, python_start, code,
     * python_end, output_start, result, output_end, text, assistant_end; the next user message; assistant_start.
     */
    @Test
    void aTwoTurnChatWithACalculatorCallIsRenderedAsNanochatRendersIt() {
        ChatSession s = new ChatSession(new Engine(model, tok), false, 4, 0.0, 0, 1.0, 1);
        int bos = tok.bosId(), us = special("user_start"), ue = special("user_end"), as = special("assistant_start"),
                ae = special("assistant_end"), ps = special("python_start"), pe = special("python_end"), os = special("output_start"),
                oe = special("output_end");
        Conversation.Message q1 = Conversation.Message.user("what is 2+3?"), q2 = Conversation.Message.user("thanks");
        assertArrayEquals(ids(List.of(bos, us), tok.encode("what is 2+3?"), List.of(ue, as)), s.prompt(q1));
        // the reply as the engine streams it: the model's call, the calculator's forced output, then the model's text
        int[] reply = ids(List.of(ps), tok.encode("2+3"), List.of(pe, os), tok.encode("5"), List.of(oe), tok.encode(" It is 5."));
        s.record(q1, java.util.Arrays.stream(reply).boxed().toList());
        int[] firstExchange = ids(List.of(bos, us), tok.encode("what is 2+3?"), List.of(ue, as), List.of(ps), tok.encode("2+3"),
                List.of(pe, os), tok.encode("5"), List.of(oe), tok.encode(" It is 5."), List.of(ae));
        assertArrayEquals(ids(firstExchange, List.of(us), tok.encode("thanks"), List.of(ue, as)), s.prompt(q2));
        s.record(q2, java.util.Arrays.stream(tok.encode("bye")).boxed().toList());
        assertArrayEquals(ids(firstExchange, List.of(us), tok.encode("thanks"), List.of(ue, as), tok.encode("bye"), List.of(ae)),
                s.history().stream().mapToInt(Integer::intValue).toArray());
    }

    private static int special(String name) {
        return tok.encodeSpecial("<|" + name + "|>");
    }

    /** The concatenation of int arrays and lists of ints. */
    private static int[] ids(Object... pieces) {
        List<Integer> all = new ArrayList<>();
        for (Object p : pieces) {
            if (p instanceof int[] a) for (int v : a) all.add(v);
            else for (Object v : (List<?>) p) all.add((Integer) v);
        }
        return all.stream().mapToInt(Integer::intValue).toArray();
    }

    @Test
    void controlCharactersAndHugePastesAreTamed() {
        assertEquals("ab\tc", ChatSession.sanitize("a\u0000b\u001b\t\u007fc"));
        assertEquals(ChatSession.MAX_INPUT_CHARS, ChatSession.sanitize("x".repeat(ChatSession.MAX_INPUT_CHARS * 2)).length());
    }

    @Test
    void theInteractiveLoopSurvivesOddInputAndQuitsAtEndOfInput() throws Exception {
        String input = "\n   \n\u0001\u0002\nhello\n/clear\n" + "z".repeat(1_000_000) + "\n";
        ByteArrayOutputStream replies = new ByteArrayOutputStream();
        ChatSession s = new ChatSession(new Engine(model, tok), false, 3, 0.0, 0, 1.0, 1);
        BufferedReader in = new BufferedReader(new StringReader(input));
        assertTimeoutPreemptively(Duration.ofSeconds(60),
                () -> assertEquals(0, ChatCommand.repl(s, false, in::readLine, new PrintStream(replies, true, StandardCharsets.UTF_8))));
        String out = replies.toString(StandardCharsets.UTF_8);
        assertTrue(out.contains("[conversation cleared]"), out);
        assertTrue(out.contains("left out"), "the pasted megabyte is cut to the context and the user is told: " + out);
    }

    @Test
    void theDefaultSourceIsSftThenRlThenBase(@TempDir Path dir) throws Exception {
        assertEquals(nanochat4j.model.checkpoint.ModelSource.BASE, ChatCommand.defaultSource(dir));
        Checkpoint.save(dir.resolve("chatrl_checkpoints/d2"), model, new Checkpoint.Meta(model.config(), 1, "test", null, null), Safetensors.DType.F32);
        assertEquals(nanochat4j.model.checkpoint.ModelSource.RL, ChatCommand.defaultSource(dir));
        Checkpoint.save(dir.resolve("chatsft_checkpoints/d2"), model, new Checkpoint.Meta(model.config(), 1, "test", null, null), Safetensors.DType.F32);
        assertEquals(nanochat4j.model.checkpoint.ModelSource.SFT, ChatCommand.defaultSource(dir));
    }
}
