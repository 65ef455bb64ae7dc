package nanochat4j.train.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.fixture.SharedDir;
import nanochat4j.train.tasks.Task;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** chat-sft's loader (packing, the crop that prevents nanochat's NaN stall, exact state) and the training run. */
class SftTest {
    @TempDir
    Path tmp;

    static final Tokenizer TOK = Tokenizer.train(List.of("x"), 256 + Tokenizer.SPECIAL_TOKENS.size());

    /** n conversations; every third has a user message far longer than a row (so its answer falls off the crop). */
    static Task mixed(int n, int seq) {
        return new Task() {
            @Override public String name() { return "mixed"; }
            @Override public int size() { return n; }
            @Override public Example get(int i) {
                String user = i % 3 == 0 ? "u".repeat(3 * seq) : "q" + i;
                String answer = i % 3 == 1 ? "a".repeat(2 * seq) : "ans" + i;
                return Example.of(Conversation.of(Conversation.Message.user(user), Conversation.Message.assistant(answer)));
            }
        };
    }

    static SftLoader loader(Task t, int seq, SftLoader.State s) {
        return new SftLoader(t, c -> ChatRenderer.render(TOK, c, 100_000), 2, seq, TOK.bosId(), 0, 1, 8, s);
    }

    @Test
    void conversationsLongerThanARowAreCroppedSoRowsNeverStallOnPadding() {
        int seq = 32;
        Task t = mixed(60, seq);
        SftLoader l = loader(t, seq, null);
        int batches = 0;
        SftLoader.Batch b;
        do {
            b = l.next();
            batches++;
            // no row is all padding: every row starts with a conversation (BOS first, then a non-BOS token)
            for (int r = 0; r < 2; r++) {
                assertEquals(TOK.bosId(), b.inputs()[r * seq]);
                assertTrue(b.inputs()[r * seq + 1] != TOK.bosId(), "row " + r + " of batch " + batches + " is all padding");
            }
            assertTrue(batches < 200, "the loader stalled");
        } while (!b.epochDone());
        // the 20 long-user and 20 long-answer conversations, plus those the buffer already fetched for epoch 2
        assertTrue(l.cropped() >= 40 && l.cropped() <= 40 + 8, "cropped " + l.cropped());
        assertTrue(batches >= 20, "every conversation was packed: " + batches);
    }

    @Test
    void aMicroBatchOfOnlyCroppedPromptsHasNoSupervisedTokenAndIsFlagged() {
        int seq = 16;
        Task longPrompts = new Task() {
            @Override public String name() { return "long prompts"; }
            @Override public int size() { return 4; }
            @Override public Example get(int i) {
                return Example.of(Conversation.of(Conversation.Message.user("p".repeat(100)), Conversation.Message.assistant("a")));
            }
        };
        SftLoader.Batch b = loader(longPrompts, seq, null).next();
        assertEquals(0, b.supervised());
        for (int y : b.targets()) assertEquals(-1, y);
    }

    @Test
    void masksAndPaddingBecomeIgnoredTargets() {
        int seq = 12;
        Task one = new Task() {
            @Override public String name() { return "one"; }
            @Override public int size() { return 1; }
            @Override public Example get(int i) {
                return Example.of(Conversation.of(Conversation.Message.user("hi"), Conversation.Message.assistant("yo")));
            }
        };
        // [bos, user_start, h, i, user_end, assistant_start, y, o, assistant_end] = 9 tokens; row capacity 13 → padding
        SftLoader.Batch b = new SftLoader(one, c -> ChatRenderer.render(TOK, c, 2048), 1, seq, TOK.bosId(), 0, 1, 1, null).next();
        int[] expect = new int[seq];
        java.util.Arrays.fill(expect, -1);
        expect[5] = TOK.encode("y")[0];
        expect[6] = TOK.encode("o")[0];
        expect[7] = TOK.encodeSpecial("<|assistant_end|>");
        // a second copy of the conversation (the dataset wraps) fits 4 more tokens? no: 9 + 9 > 13, so the row is padded
        assertArrayEquals(expect, b.targets());
        assertEquals(3, b.supervised());
    }

    @Test
    void loaderStateResumesExactly() {
        int seq = 24;
        Task t = mixed(50, seq);
        SftLoader a = loader(t, seq, null);
        for (int i = 0; i < 7; i++) a.next();
        SftLoader.State s = a.state();
        SftLoader b = loader(t, seq, s);
        for (int i = 0; i < 10; i++) {
            SftLoader.Batch x = a.next(), y = b.next();
            assertArrayEquals(x.inputs(), y.inputs());
            assertArrayEquals(x.targets(), y.targets());
            assertEquals(x.progress(), y.progress());
        }
    }

    @Test
    void lrScheduleIsNanochats() {
        ChatSftOptions o = new ChatSftOptions();
        new CommandLine(o).parseArgs();
        assertEquals(1.0, ChatSft.lrMultiplier(0.0, o));
        assertEquals(1.0, ChatSft.lrMultiplier(0.5, o));
        assertEquals(0.5, ChatSft.lrMultiplier(0.75, o), 1e-12);
        assertEquals(0.0, ChatSft.lrMultiplier(1.0, o), 1e-12);
        assertEquals(0.85, ChatSft.muonMomentum(0), 1e-12);
        assertEquals(0.95, ChatSft.muonMomentum(300), 1e-12);
    }

    @Test
    void sftLowersTheValidationLossOfTheMixture() throws Exception {
        Path data = smallBase(), base = tmp.resolve("base");
        // --scalar-lr 0.1, not 0.5: on this random-init model one step of the lambdas' AdamW at 0.5 (its normalized step
        // moves a scalar whose gradient is near zero by lr·lrm whatever that gradient's rounding) took the val loss from
        // 4.84 to 6.26 at step 7 of 8 at AVX2 only; at 0.1 every width descends alike (5.032 / 5.028 / 5.029 at step 8)
        String[] common = {"--task-data=" + data, "--max-conversations=300", "--mmlu-epochs=1", "--gsm8k-epochs=1", "--eval-tokens=4096",
                "--chatcore-every=-1", "--num-iterations=8", "--eval-every=4", "--embedding-lr=0.05", "--matrix-lr=0.01", "--scalar-lr=0.1"};
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ChatSftOptions o = parse(common, "--checkpoint-dir=" + tmp.resolve("full"));
        ChatSft.Result full = ChatSft.run(o, base, new PrintStream(log, true, StandardCharsets.UTF_8));
        String out = log.toString(StandardCharsets.UTF_8);
        assertEquals(8, full.finalStep(), out);
        assertTrue(out.contains("Inherited max_seq_len=256 from the pretrained checkpoint"), out);
        assertTrue(full.valLoss().get(8) < full.valLoss().get(0), "val loss " + full.valLoss() + "\n" + out);
        assertTrue(full.croppedConversations() > 0, "the 256-token rows crop some conversations: " + out);
        assertTrue(Files.exists(tmp.resolve("full/model_000008.safetensors")) && Files.exists(tmp.resolve("full/chat_sft.png"))
                && Files.exists(tmp.resolve("full/metrics.jsonl")));
        Checkpoint.Meta meta = Checkpoint.readMeta(tmp.resolve("full"), 8);
        assertEquals("chat_sft", meta.extra().get("source"));

        // a base checkpoint cannot be resumed as SFT
        Path wrong = tmp.resolve("wrong");
        Files.createDirectories(wrong);
        Files.copy(base.resolve("base_checkpoints/d2/model_000000.safetensors"), wrong.resolve("model_000000.safetensors"));
        Files.copy(base.resolve("base_checkpoints/d2/meta_000000.json"), wrong.resolve("meta_000000.json"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatSft.run(parse(common, "--checkpoint-dir=" + wrong,
                "--resume-from-step=0"), base, new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8)));
        assertTrue(e.getMessage().contains("not a chat-sft checkpoint"), e.getMessage());
    }

    /**
     * Exact resume, in this JVM with the Vector API intrinsics on: every kernel gives the same bits in every JIT tier
     * (VecMath), so the straight run and the resumed one must agree bit for bit.
     */
    @Test
    void resumingFromAMidRunCheckpointGivesIdenticalLossesAndParameters() throws Exception {
        ResumeCheck.check(tmp, smallBase());
    }

    /** The task data (skipping without it) and a small untrained base model in tmp/base: context 256, 2 layers. */
    private Path smallBase() throws Exception {
        Path data = SharedDir.locate("data");
        assumeTrue(data != null && Files.isDirectory(data.resolve("gsm8k")), SharedDir.skipMessage("data"));
        Path base = tmp.resolve("base");
        ChatFixtures.baseModel(base, ChatFixtures.tokenizer(base, data), 256, 2, 1024);
        return data;
    }

    /**
     * --device cuda: two steps on the GPU (fp32) give the CPU's losses to summation-order tolerance, and its checkpoint
     * loads on the CPU; without a GPU, the one-line reason, and the same run on {@link StandInCuda}. A device that does not
     * exist is named.
     */
    @Test
    void sftOnTheGpuMatchesTheCpuOrSaysWhyItCannotRun() throws Exception {
        Path data = smallBase(), base = tmp.resolve("base");
        // 512-token rows: at 128 the first conversations of the mixture are cropped before any supervised token
        String[] common = Arrays.stream(ResumeCheck.small(data, "--num-iterations=2", "--precision=fp32"))
                .map(a -> a.replace("--max-seq-len=128", "--max-seq-len=512").replace("--total-batch-size=128", "--total-batch-size=512"))
                .toArray(String[]::new);
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        IllegalArgumentException tpu = assertThrows(IllegalArgumentException.class,
                () -> ChatSft.run(parse(common, "--device=tpu", "--checkpoint-dir=" + tmp.resolve("tpu")), base, quiet));
        assertTrue(tpu.getMessage().contains("--device tpu: expected cpu or cuda"), tpu.getMessage());
        if (CudaContext.unavailableReason() != null) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ChatSft.run(parse(common, "--device=cuda", "--checkpoint-dir=" + tmp.resolve("none")), base, quiet));
            assertTrue(e.getMessage().startsWith("--device cuda: ") && e.getMessage().endsWith("(--device cpu always works)"), e.getMessage());
        }
        ChatSft.Result cpu = ChatSft.run(parse(common, "--checkpoint-dir=" + tmp.resolve("cpu")), base, quiet);
        ChatSft.Result gpu;
        try (var device = StandInCuda.unlessGpu()) {   // without a GPU: the device code path with the CPU's arithmetic
            gpu = ChatSft.run(parse(common, "--device=cuda", "--checkpoint-dir=" + tmp.resolve("gpu")), base, quiet);
        }
        assertEquals(cpu.trainLosses().size(), gpu.trainLosses().size());
        int trained = 0;
        for (int i = 0; i < cpu.trainLosses().size(); i++) {
            float c = cpu.trainLosses().get(i), g = gpu.trainLosses().get(i);
            if (Float.isNaN(c)) { // a step whose rows held no supervised token (skipped) on both devices
                assertTrue(Float.isNaN(g), "step " + (i + 1) + " skipped on the CPU, loss " + g + " on the GPU");
                continue;
            }
            assertEquals(c, g, 2e-3 * Math.abs(c), "loss at step " + (i + 1));
            trained++;
        }
        assertTrue(trained > 0, "some step trained: " + cpu.trainLosses());
        assertEquals(cpu.valBpb().get(2), gpu.valBpb().get(2), 2e-3 * cpu.valBpb().get(2), "val bpb");
        Map<String, float[]> a = Checkpoint.load(tmp.resolve("cpu"), 2).params(), b = Checkpoint.load(tmp.resolve("gpu"), 2).params();
        assertEquals(a.keySet(), b.keySet(), "the GPU checkpoint loads on the CPU");
    }

    /** The resume scenario: a straight run and one resumed from its step-2 checkpoint. */
    static final class ResumeCheck {
        /** A few steps of 128-token rows, one a step, on a small mixture; and {@code more}. */
        static String[] small(Path data, String... more) {
            List<String> a = new ArrayList<>(List.of("--task-data=" + data, "--max-conversations=200", "--mmlu-epochs=1", "--gsm8k-epochs=1",
                    "--eval-tokens=128", "--chatcore-every=-1", "--eval-every=-1", "--max-seq-len=128", "--device-batch-size=1",
                    "--total-batch-size=128"));
            a.addAll(List.of(more));
            return a.toArray(String[]::new);
        }

        static void check(Path tmp, Path data) throws Exception {
            Path base = tmp.resolve("base");
            String[] common = small(data, "--num-iterations=4");
            PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
            ChatSft.Result full = ChatSft.run(parse(common, "--checkpoint-dir=" + tmp.resolve("full"), "--save-every=2"), base, quiet);
            Path resumed = tmp.resolve("resumed");
            Files.createDirectories(resumed);
            for (String f : List.of("model_000002.safetensors", "meta_000002.json", "optim_000002_rank0.safetensors")) {
                Files.copy(tmp.resolve("full").resolve(f), resumed.resolve(f));
            }
            ChatSft.Result r = ChatSft.run(parse(common, "--checkpoint-dir=" + resumed, "--resume-from-step=2"), base, quiet);
            assertEquals(full.trainLosses().subList(2, 4), r.trainLosses(), "losses after resuming");
            assertEquals(full.valBpb().get(4), r.valBpb().get(4));
            Map<String, float[]> a = Checkpoint.load(tmp.resolve("full"), 4).params(), b = Checkpoint.load(resumed, 4).params();
            for (String k : a.keySet()) assertArrayEquals(a.get(k), b.get(k), k + " differs after resume");
        }
    }

    static ChatSftOptions parse(String[] common, String... more) {
        List<String> args = new ArrayList<>(List.of(common));
        args.addAll(List.of(more));
        ChatSftOptions o = new ChatSftOptions();
        new CommandLine(o).parseArgs(args.toArray(String[]::new));
        return o;
    }
}
