package nanochat4j.train.chat;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.fixture.SharedDir;
import nanochat4j.train.base.BaseTrain;
import nanochat4j.train.base.BaseTrainOptions;
import nanochat4j.train.base.TokenizerView;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.report.Report;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/**
 * runs/runcpu.sh after the tokenizer, in seconds at depth 2: base-train → chat-sft → chat-eval (every task, a few
 * problems, HumanEval through the sandbox) → one chat answer from the SFT model → two chat-rl steps → chat-eval -i rl
 * (GSM8K) → report.
 */
class ChatPipelineTest {
    @TempDir
    Path tmp;

    @Test
    void baseThenSftThenEvalThenReportThenAChatAnswer() throws Exception {
        Path data = SharedDir.locate("data");
        assumeTrue(data != null && Files.isDirectory(data.resolve("gsm8k")) && Files.isDirectory(data.resolve("pretrain_text/gutenberg_books")),
                SharedDir.skipMessage("data (gsm8k, arc, mmlu, humaneval, sft, pretrain_text)"));
        Path base = tmp.resolve("base");
        Tokenizer tok = ChatFixtures.tokenizer(base, data);
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);

        BaseTrainOptions bo = new BaseTrainOptions();
        new CommandLine(bo).parseArgs("--depth=2", "--aspect-ratio=32", "--head-dim=32", "--max-seq-len=256", "--window-pattern=L",
                "--device-batch-size=2", "--total-batch-size=512", "--num-iterations=3", "--warmup-steps=1", "--eval-every=-1",
                "--sample-every=-1", "--core-metric-every=-1", "--data=" + data.resolve("pretrain_text/gutenberg_books"),
                "--checkpoint-dir=" + base.resolve("base_checkpoints/d2"));
        BaseTrain.run(bo, new TokenizerView(tok::encode, tok::decode, tok.bosId(), tok.vocabSize(), tok.tokenByteLengths(), "test"), quiet);

        ChatSftOptions so = new ChatSftOptions();
        new CommandLine(so).parseArgs("--task-data=" + data, "--max-conversations=200", "--mmlu-epochs=1", "--gsm8k-epochs=1",
                "--num-iterations=3", "--eval-every=-1", "--eval-tokens=1024", "--chatcore-every=100", "--chatcore-max-cat=2",
                "--chatcore-max-sample=1");
        ByteArrayOutputStream sftLog = new ByteArrayOutputStream();
        ChatSft.Result sft = ChatSft.run(so, base, new PrintStream(sftLog, true, StandardCharsets.UTF_8));
        assertEquals(3, sft.finalStep());
        // ChatCORE at the last step over the five tasks (NaN, and not recorded, only where python3 is missing)
        boolean python = nanochat4j.train.tasks.PythonSandbox.find(nanochat4j.train.tasks.PythonSandbox.Limits.DEFAULT) != null;
        assertEquals(python, sft.chatCore().containsKey(3), sftLog.toString(StandardCharsets.UTF_8));
        assertTrue(sftLog.toString(StandardCharsets.UTF_8).contains("Step 00003 | ChatCORE: "), sftLog.toString(StandardCharsets.UTF_8));
        assertTrue(Files.exists(base.resolve("chatsft_checkpoints/d2/model_000003.safetensors")));

        ByteArrayOutputStream evalLog = new ByteArrayOutputStream();
        ChatEvalCommand eval = new ChatEvalCommand();
        new CommandLine(eval).parseArgs("-i", "sft", "-x", "3", "-m", "8", "-b", "2", "--task-data=" + data.toString());
        ChatEvalCommand.Results r;
        try (Collective comm = Collective.fromEnvironment("test")) {
            r = eval.run(base, new PrintStream(evalLog, true, StandardCharsets.UTF_8), comm);
        }
        String log = evalLog.toString(StandardCharsets.UTF_8);
        java.util.Set<String> ran = new java.util.HashSet<>(r.accuracy().keySet());
        ran.addAll(r.skipped().keySet()); // HumanEval is skipped, with its reason, where python3 is missing
        assertEquals(java.util.Set.of("ARC-Easy", "ARC-Challenge", "MMLU", "GSM8K", "HumanEval"), ran, log);
        for (double a : r.accuracy().values()) assertTrue(a >= 0 && a <= 1, log);
        assertTrue(Files.exists(r.csv()) && Files.exists(Path.of(r.csv().toString().replace(".csv", ".json"))), log);
        assertTrue(log.contains("ARC-Easy accuracy: ") && (log.contains("ChatCORE metric: ") || log.contains("HumanEval: skipped")), log);
        assertTrue(log.contains("step 3 on " + (CudaContext.unavailableReason() == null ? "CUDA" : "CPU")), "--device auto: " + log);

        // one chat answer from the SFT model, as `nanochat4j chat -p` gives it
        ModelSource.Loaded m = ChatModels.load(ModelSource.SFT, base, null, null);
        Conversation c = Conversation.of(Conversation.Message.user("What is 2 + 2?"), Conversation.Message.assistant(""));
        int[] prompt = ChatRenderer.renderForCompletion(m.tokenizer(), c);
        StringBuilder answer = new StringBuilder();
        Engine.Run run = new Engine(m.model(), m.tokenizer()).generate(prompt, new Engine.Settings(1, 8, 0.0, 0, 1),
                (col, sampled) -> answer.append(m.tokenizer().decode(col)));
        assertTrue(run.columns() >= 1 && !answer.isEmpty(), "no answer");

        // a couple of RL steps from the SFT model, then GSM8K on the RL model
        ChatRlOptions ro = new ChatRlOptions();
        new CommandLine(ro).parseArgs("--task-data=" + data, "--examples-per-step=1", "--num-samples=2", "--device-batch-size=2",
                "--max-new-tokens=16", "--num-steps=2", "--eval-every=2", "--eval-examples=2");
        ChatRl.Result rl = ChatRl.run(ro, base, quiet);
        assertEquals(2, rl.finalStep());
        for (double reward : rl.meanReward()) assertTrue(reward >= 0 && reward <= 1, rl.meanReward().toString());
        assertTrue(Files.exists(base.resolve("chatrl_checkpoints/d2/model_000002.safetensors")));
        ChatEvalCommand rlEval = new ChatEvalCommand();
        new CommandLine(rlEval).parseArgs("-i", "rl", "-a", "GSM8K", "-x", "2", "-m", "8", "--task-data=" + data);
        try (Collective comm = Collective.fromEnvironment("test")) {
            assertEquals(java.util.Set.of("GSM8K"), rlEval.run(base, quiet, comm).accuracy().keySet());
        }

        // chat-eval on the device path (the GPU, or StandInCuda without one): the CPU's accuracy on a categorical task (the
        // answer letters' logits), and a generative one runs there (its greedy text may differ where logits nearly tie)
        ChatEvalCommand.Results[] both = new ChatEvalCommand.Results[2];
        for (int d = 0; d < 2; d++) {
            ChatEvalCommand e = new ChatEvalCommand();
            new CommandLine(e).parseArgs("-i", "sft", "-a", "ARC-Easy|GSM8K", "-x", "4", "-m", "8", "--device", d == 0 ? "cpu" : "cuda",
                    "--precision", "fp32", "--task-data=" + data);
            try (var device = d == 1 ? StandInCuda.unlessGpu() : null; Collective comm = Collective.fromEnvironment("test")) {
                both[d] = e.run(base, quiet, comm);
            }
        }
        assertEquals(both[0].accuracy().get("ARC-Easy"), both[1].accuracy().get("ARC-Easy"), "ARC-Easy on either device");
        assertTrue(both[1].accuracy().containsKey("GSM8K"), both[1].accuracy().toString());

        // an unknown task, and a base checkpoint where an SFT one is expected
        ChatEvalCommand wrong = new ChatEvalCommand();
        new CommandLine(wrong).parseArgs("-i", "sft", "-a", "ARC-Hard", "--task-data=" + data);
        try (Collective comm = Collective.fromEnvironment("test")) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> wrong.run(base, quiet, comm));
            assertTrue(e.getMessage().contains("unknown task 'ARC-Hard'"), e.getMessage());
            if (CudaContext.unavailableReason() != null) { // --device cuda without a GPU: the reason, in one line
                ChatEvalCommand noGpu = new ChatEvalCommand();
                new CommandLine(noGpu).parseArgs("-i", "sft", "--device", "cuda", "--task-data=" + data);
                IllegalArgumentException d = assertThrows(IllegalArgumentException.class, () -> noGpu.run(base, quiet, comm));
                assertTrue(d.getMessage().startsWith("--device cuda: ") && d.getMessage().endsWith("(--device cpu always works)"), d.getMessage());
            }
        }
        Files.copy(base.resolve("base_checkpoints/d2/meta_000003.json"), base.resolve("chatsft_checkpoints/d2/meta_000003.json"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        IOException kind = assertThrows(IOException.class, () -> ChatModels.load(ModelSource.SFT, base, null, null));
        assertTrue(kind.getMessage().contains("is a base checkpoint, not a sft one"), kind.getMessage());

        Path report = Report.write(base);
        String md = Files.readString(report);
        for (String s : new String[] {"## System", "## Tokenizer", "## Base model training", "## Chat SFT", "## Chat evaluation", "## Summary",
                "| ARC-Easy |", "bytes/token", "## Chat RL", "mean reward", "### rl"}) {
            assertTrue(md.contains(s), s + " missing from\n" + md);
        }
        assertTrue(Files.exists(base.resolve("chat_sft.png")) && Files.exists(base.resolve("base_train.png")) && Files.exists(base.resolve("chat_rl.png")), md);

    }
}
