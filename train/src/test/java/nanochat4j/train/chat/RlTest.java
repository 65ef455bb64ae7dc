package nanochat4j.train.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.autograd.Autograd;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.Tensor;
import nanochat4j.train.collective.InProcessRing;
import nanochat4j.train.optim.MuonAdamW;
import nanochat4j.train.tasks.Gsm8k;
import nanochat4j.train.tasks.JsonLines;
import nanochat4j.train.tasks.Task;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** chat-rl: the rollout arithmetic by hand, the update's direction, reproducible sampling, the tool mask, resume. */
class RlTest {
    @TempDir
    Path tmp;

    static final Tokenizer TOK = Tokenizer.train(List.of("x"), 256 + Tokenizer.SPECIAL_TOKENS.size());
    static final int PAD = 99;

    @Test
    void advantagesRowsWeightsAndPassAtKMatchAHandComputedGroup() {
        assertArrayEquals(new float[] {0.5f, -0.5f, -0.5f, 0.5f}, Rollouts.advantages(new float[] {1, 0, 0, 1}));
        assertArrayEquals(new float[] {0f, 0f, 0f}, Rollouts.advantages(new float[] {1, 1, 1})); // all right: nothing to learn
        // prompt 5 6; row 2's 8 9 were forced by the calculator (mask 0); rows padded with 99 to length 6
        List<int[]> seqs = List.of(new int[] {5, 6, 7, 8, 9}, new int[] {5, 6, 7}, new int[] {5, 6, 7, 8, 9, 10}, new int[] {5, 6, 11, 12});
        List<int[]> masks = List.of(new int[] {0, 0, 1, 1, 1}, new int[] {0, 0, 1}, new int[] {0, 0, 1, 0, 0, 1}, new int[] {0, 0, 1, 1});
        Rollouts.Group g = Rollouts.group(seqs, masks, PAD);
        assertEquals(4, g.rows());
        assertEquals(5, g.len());
        assertArrayEquals(new int[] {5, 6, 7, 8, 9, 5, 6, 7, PAD, PAD, 5, 6, 7, 8, 9, 5, 6, 11, 12, PAD}, g.inputs());
        assertArrayEquals(new int[] {-1, 7, 8, 9, -1, -1, 7, -1, -1, -1, -1, 7, -1, -1, 10, -1, 11, 12, -1, -1}, g.targets());
        float[] adv = Rollouts.advantages(new float[] {1, 0, 0, 1});
        // device batch 2 → 2 passes; 3 questions per rank; pass 0 has 3 + 1 = 4 trained targets, pass 1 has 2 + 2 = 4
        float d = 4 * 2 * 3;
        assertArrayEquals(new float[] {0, .5f / d, .5f / d, .5f / d, 0, 0, -.5f / d, 0, 0, 0}, Rollouts.lossWeights(g, adv, 0, 2, 2, 3));
        assertArrayEquals(new float[] {0, -.5f / d, 0, 0, -.5f / d, 0, .5f / d, .5f / d, 0, 0}, Rollouts.lossWeights(g, adv, 2, 4, 2, 3));
        // a pass without a trained target divides by 1, as nanochat's clamp(min=1)
        Rollouts.Group none = Rollouts.group(List.of(new int[] {5, 6}), List.of(new int[] {0, 0}), PAD);
        assertEquals(0, none.valid(0, 1));
        assertArrayEquals(new float[] {0}, Rollouts.lossWeights(none, new float[] {1}, 0, 1, 1, 1));
        assertArrayEquals(new long[] {1, 2, 2}, Rollouts.passAtK(List.of(new boolean[] {false, true, false}, new boolean[3],
                new boolean[] {true, true, true}), 3));
        assertNotEquals(Rollouts.seed(0, 1, 2, 0), Rollouts.seed(0, 1, 2, 1));
        // 7 questions, 2 ranks, 2 per rank and step: rank 0 cycles 0 2 4 6, rank 1 cycles 1 3 5
        int[][] seen = new int[2][6];
        for (int rank = 0; rank < 2; rank++) for (int i = 0; i < 6; i++) seen[rank][i] = ChatRl.questionIndex(i / 2, i % 2, rank, 2, 2, 7);
        assertArrayEquals(new int[] {0, 2, 4, 6, 0, 2}, seen[0]);
        assertArrayEquals(new int[] {1, 3, 5, 1, 3, 5}, seen[1]);
        assertEquals(Rollouts.seed(3, 1, 2, 0), Rollouts.seed(3, 1, 2, 0));
    }

    @Test
    void theLossIsTheTokenLevelPolicyGradientOfTheModelsLogProbs() {
        GPT model = GPT.create(GPTConfig.fromDepth(1, 32, 16, 16, "L", TOK.vocabSize()), 3);
        List<int[]> seqs = List.of(new int[] {1, 2, 3, 4, 5}, new int[] {1, 2, 6}, new int[] {1, 2, 3, 7, 8, 9}, new int[] {1, 2, 10, 11});
        List<int[]> masks = List.of(new int[] {0, 0, 1, 1, 1}, new int[] {0, 0, 1}, new int[] {0, 0, 1, 0, 0, 1}, new int[] {0, 0, 1, 1});
        Rollouts.Group g = Rollouts.group(seqs, masks, PAD);
        float[] adv = Rollouts.advantages(new float[] {1, 0, 0, 1});
        ChatRl.StepRollouts ro = new ChatRl.StepRollouts(List.of(g), List.of(adv), List.of(5, 3, 6, 4), 2, 0, 0, 0);
        double loss = ChatRl.update(model, ro, 2, 1);
        // by hand: logp of each trained target from the full logits, −Σ logp·adv / (valid · passes · examples)
        float[] logits = model.logits(Tensor.ofInts(g.inputs(), 4, g.len())).toFloatArray();
        int v = TOK.vocabSize();
        double expected = 0;
        for (int pass = 0; pass < 2; pass++) {
            double obj = 0;
            int valid = 0;
            for (int r = 2 * pass; r < 2 * pass + 2; r++) {
                for (int t = 0; t < g.len(); t++) {
                    int target = g.targets()[r * g.len() + t];
                    if (target < 0) continue;
                    int off = (r * g.len() + t) * v;
                    double max = Double.NEGATIVE_INFINITY, sum = 0;
                    for (int j = 0; j < v; j++) max = Math.max(max, logits[off + j]);
                    for (int j = 0; j < v; j++) sum += Math.exp(logits[off + j] - max);
                    obj += (logits[off + target] - max - Math.log(sum)) * adv[r];
                    valid++;
                }
            }
            expected += -obj / (valid * 2 * 1);
        }
        assertEquals(expected, loss, 1e-5);
        boolean anyGrad = false;
        for (var p : model.parameters()) if (p.grad() != null) for (float x : p.grad().toFloatArray()) anyGrad |= x != 0;
        assertTrue(anyGrad, "the loss reached no parameter");
        // a group whose samples all got the same reward teaches nothing: loss 0, gradients exactly 0 (passes skipped)
        model.zeroGrad();
        ChatRl.StepRollouts same = new ChatRl.StepRollouts(List.of(g), List.of(Rollouts.advantages(new float[] {1, 1, 1, 1})), List.of(5, 3, 6, 4), 4, 0, 0, 0);
        assertEquals(0.0, ChatRl.update(model, same, 2, 1));
        for (var p : model.parameters()) for (float x : p.grad().toFloatArray()) assertEquals(0f, x, p.name());
    }

    @Test
    void anUpdateRaisesTheLogProbsOfRewardedRowsAndLowersTheOthers() {
        GPT model = GPT.create(GPTConfig.fromDepth(1, 32, 16, 16, "L", TOK.vocabSize()), 5);
        List<int[]> seqs = List.of(new int[] {1, 2, 30, 31, 32}, new int[] {1, 2, 40, 41, 42}, new int[] {1, 2, 50, 51, 52}, new int[] {1, 2, 60, 61, 62});
        List<int[]> masks = new ArrayList<>();
        for (int i = 0; i < 4; i++) masks.add(new int[] {0, 0, 1, 1, 1});
        Rollouts.Group g = Rollouts.group(seqs, masks, PAD);
        float[] adv = Rollouts.advantages(new float[] {1, 0, 1, 0});
        ChatRl.StepRollouts ro = new ChatRl.StepRollouts(List.of(g), List.of(adv), List.of(5, 5, 5, 5), 2, 0, 0, 0);
        double[] before = rowLogProbs(model, g);
        MuonAdamW opt = new MuonAdamW(ChatRl.scaled(model.paramGroups(0.004, 0.2, 0.02, 0, 0.5), 0.05)); // chat-rl's defaults
        for (int gi = 0; gi < opt.groupCount(); gi++) assertEquals(model.paramGroups(0.004, 0.2, 0.02, 0, 0.5).get(gi).lr() * 0.05, opt.lr(gi), 1e-15);
        ChatRl.update(model, ro, 4, 1);
        opt.step();
        double[] after = rowLogProbs(model, g);
        for (int r = 0; r < 4; r++) {
            double delta = after[r] - before[r];
            assertTrue(adv[r] > 0 ? delta > 0 : delta < 0, "row " + r + " (advantage " + adv[r] + "): log-prob " + before[r] + " → " + after[r]);
        }
    }

    /** Σ log p of each row's trained targets. */
    static double[] rowLogProbs(GPT model, Rollouts.Group g) {
        float[] nll;
        try (var ng = Autograd.noGrad()) {
            nll = model.loss(Tensor.ofInts(g.inputs(), g.rows(), g.len()), Tensor.ofInts(g.targets(), g.rows(), g.len()), Reduction.NONE).value().toFloatArray();
        }
        double[] out = new double[g.rows()];
        for (int i = 0; i < nll.length; i++) out[i / g.len()] -= nll[i];
        return out;
    }

    /** GSM8K-shaped questions "a+b?" answered with one calculator call; the test data of the runs below. */
    static Path taskData(Path dir, int train, int test) throws IOException {
        Path gsm = dir.resolve("gsm8k");
        Files.createDirectories(gsm);
        for (String split : List.of("train", "test")) {
            StringBuilder sb = new StringBuilder();
            int n = split.equals("train") ? train : test;
            for (int i = 0; i < n; i++) {
                int a = i % 3 + 1, b = (i + 1) % 2 + 1;
                sb.append(String.format("{\"question\": \"%d+%d?\", \"answer\": \"<<%d+%d=%d>>%d\\n#### %d\"}%n", a, b, a, b, a + b, a + b, a + b));
            }
            Files.writeString(gsm.resolve(split + ".jsonl"), sb.toString());
        }
        return dir;
    }

    /** A depth-1 model taught (in a few hundred tiny steps) to answer "2+3?" with a calculator call: it emits python blocks. */
    static GPT toolUser() {
        GPT model = GPT.create(GPTConfig.fromDepth(1, 32, 16, 64, "L", TOK.vocabSize()), 11);
        var conv = Gsm8k.conversation("2+3?", "<<2+3=5>>5\n#### 5");
        ChatRenderer.Rendered r = ChatRenderer.render(TOK, conv, 64);
        int t = r.ids().length - 1;
        int[] in = java.util.Arrays.copyOf(r.ids(), t), tg = new int[t];
        for (int i = 0; i < t; i++) tg[i] = r.mask()[i + 1] == 1 ? r.ids()[i + 1] : -1;
        MuonAdamW opt = new MuonAdamW(model.paramGroups(0.02, 0.3, 0.04, 0, 0.5));
        for (int s = 0; s < 150; s++) {
            model.loss(Tensor.ofInts(in, 1, t), Tensor.ofInts(tg, 1, t), Reduction.MEAN).backward();
            opt.step();
            opt.zeroGrad();
        }
        return model;
    }

    @Test
    void rolloutsOfAToolUsingModelAreSeededRewardedAndNeverTrainOnTheCalculatorsOutput() throws IOException {
        GPT model = toolUser();
        Engine engine = new Engine(model, TOK);
        Task train = new Gsm8k(taskData(tmp.resolve("data"), 4, 2), "train", JsonLines.OnBadLine.STOP, new ArrayList<>());
        Task twoPlusThree = Task.slice(train, 0, 1, 1);
        for (int i = 0; i < train.size(); i++) if (train.get(i).conversation().messages().get(0).text().equals("2+3?")) twoPlusThree = Task.slice(train, i, i + 1, 1);
        ChatRlOptions o = new ChatRlOptions();
        new CommandLine(o).parseArgs("--num-samples=8", "--device-batch-size=4", "--max-new-tokens=24", "--temperature=1.0");
        ChatRl.StepRollouts a = ChatRl.rollouts(engine, twoPlusThree, o, 0, 0, 1, 1);
        ChatRl.StepRollouts b = ChatRl.rollouts(engine, twoPlusThree, o, 0, 0, 1, 1);
        assertArrayEquals(a.groups().get(0).inputs(), b.groups().get(0).inputs(), "same step and seed, same samples");
        assertArrayEquals(a.advantages().get(0), b.advantages().get(0));
        ChatRl.StepRollouts c = ChatRl.rollouts(engine, twoPlusThree, o, 1, 0, 1, 1);
        // Whether the taught model draws other samples at another step depends on how peaked it came out (at 128-bit
        // rounding it once drew the same 8), so the per-step seeding is checked on an untrained model, whose next-token
        // distribution is near uniform: two steps drawing the same 8 × 24 tokens there means the step is not in the seed.
        Engine fresh = new Engine(GPT.create(GPTConfig.fromDepth(1, 32, 16, 64, "L", TOK.vocabSize()), 11), TOK);
        assertArrayEquals(ChatRl.rollouts(fresh, twoPlusThree, o, 0, 0, 1, 1).groups().get(0).inputs(),
                ChatRl.rollouts(fresh, twoPlusThree, o, 0, 0, 1, 1).groups().get(0).inputs(), "same step and seed, same samples");
        assertTrue(!java.util.Arrays.equals(ChatRl.rollouts(fresh, twoPlusThree, o, 0, 0, 1, 1).groups().get(0).inputs(),
                ChatRl.rollouts(fresh, twoPlusThree, o, 1, 0, 1, 1).groups().get(0).inputs()), "another step samples anew");
        double meanReward = a.rewardSum() / 8;
        assertTrue(Double.isFinite(meanReward) && meanReward > 0, "the taught model solves some of its own question: " + meanReward);
        // every <|output_start|> … <|output_end|> span the calculator forced has no target
        int outStart = TOK.encodeSpecial("<|output_start|>"), outEnd = TOK.encodeSpecial("<|output_end|>");
        int forced = 0;
        for (ChatRl.StepRollouts ro : List.of(a, c)) {
            Rollouts.Group g = ro.groups().get(0);
            for (int r = 0; r < g.rows(); r++) {
                boolean inside = false;
                for (int t = 0; t < g.len(); t++) {
                    int next = t + 1 < g.len() ? g.inputs()[r * g.len() + t + 1] : -1;
                    if (next == outStart) inside = true;
                    if (inside) {
                        assertEquals(-1, g.targets()[r * g.len() + t], "row " + r + " position " + t + " trains on calculator output");
                        forced++;
                    }
                    if (next == outEnd) inside = false;
                }
            }
        }
        assertTrue(forced > 0, "no calculator call in the rollouts");
    }

    /** base/tokenizer, an SFT checkpoint (depth 1) and GSM8K-shaped data. */
    Path sftBase() throws IOException {
        Path base = tmp.resolve("base");
        TOK.save(base.resolve("tokenizer"));
        GPT model = toolUser();
        Path dir = base.resolve("chatsft_checkpoints/d1");
        Files.createDirectories(dir);
        Checkpoint.save(dir, model, new Checkpoint.Meta(model.config(), 0, "test", Map.of(), Map.of("source", "chat_sft")), Safetensors.DType.F32);
        taskData(base.resolve("task_data"), 6, 4);
        return base;
    }

    static ChatRlOptions options(Path base, String... more) {
        ChatRlOptions o = new ChatRlOptions();
        List<String> args = new ArrayList<>(List.of("--task-data=" + base.resolve("task_data"), "--examples-per-step=2", "--num-samples=4",
                "--device-batch-size=2", "--max-new-tokens=16", "--eval-every=2", "--eval-examples=2", "--save-every=1", "--num-steps=3"));
        args.addAll(List.of(more));
        new CommandLine(o).setOverwrittenOptionsAllowed(true).parseArgs(args.toArray(String[]::new)); // later flags override
        return o;
    }

    @Test
    void aRunLogsRewardsPassAtKAndTimesAndResumesOnTheSameQuestionsAndSamples() throws IOException {
        Path base = sftBase();
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ChatRl.Result full = ChatRl.run(options(base, "--checkpoint-dir=" + tmp.resolve("full")), base, new PrintStream(log, true, StandardCharsets.UTF_8));
        String text = log.toString(StandardCharsets.UTF_8);
        assertEquals(3, full.finalStep(), text);
        for (double r : full.meanReward()) assertTrue(r >= 0 && r <= 1, text);
        assertEquals(List.of(0, 2), List.copyOf(full.passAtK().keySet()), text);
        assertEquals(2, full.passAtK().get(0).length);
        assertTrue(full.passAtK().get(0)[1] >= full.passAtK().get(0)[0], text);
        List<String> metrics = Files.readAllLines(tmp.resolve("full/metrics.jsonl"));
        assertTrue(metrics.stream().anyMatch(l -> l.contains("\"pass@2\"")), String.join("\n", metrics));
        for (String key : List.of("\"reward\"", "\"sequence_length\"", "\"sampling_seconds\"", "\"scoring_seconds\"", "\"update_seconds\"",
                "\"sampling_tok_per_sec\"")) {
            assertEquals(3, metrics.stream().filter(l -> l.contains(key)).count(), key + " in\n" + String.join("\n", metrics));
        }
        assertTrue(Files.exists(tmp.resolve("full/chat_rl.png")));
        assertEquals(ChatRl.SOURCE, Checkpoint.readMeta(tmp.resolve("full"), 3).extra().get("source"));

        // a second run resumes from the first one's step-1 checkpoint (model, optimizer, data position) and ends bitwise equal
        Path resumed = tmp.resolve("resumed");
        Files.createDirectories(resumed);
        for (String f : List.of("model_000001.safetensors", "meta_000001.json", "optim_000001_rank0.safetensors", "metrics.jsonl")) {
            Files.copy(tmp.resolve("full").resolve(f), resumed.resolve(f));
        }
        ChatRl.Result r = ChatRl.run(options(base, "--checkpoint-dir=" + resumed, "--resume-from-step=1"), base, new PrintStream(new ByteArrayOutputStream()));
        assertEquals(full.meanReward().subList(1, 3), r.meanReward());
        // the same questions, samples and rewards, hence the same loss, at every step after the resume
        List<com.fasterxml.jackson.databind.JsonNode> fullSteps = stepMetrics(tmp.resolve("full/metrics.jsonl")), resumedSteps = stepMetrics(resumed.resolve("metrics.jsonl"));
        assertEquals(3, resumedSteps.size(), "the interrupted run's lines after step 1 are replaced, not duplicated");
        resumedSteps = resumedSteps.subList(1, 3);
        for (int i = 0; i < 2; i++) {
            for (String k : List.of("reward", "sequence_length", "sampled_tokens", "lrm")) {
                assertEquals(fullSteps.get(i + 1).get(k).asDouble(), resumedSteps.get(i).get(k).asDouble(), 0, "step " + (i + 1) + " " + k);
            }
            assertEquals(fullSteps.get(i + 1).get("loss").asDouble(), resumedSteps.get(i).get("loss").asDouble(), 0, "step " + (i + 1) + " loss");
        }
        Map<?, ?> loop = (Map<?, ?>) Checkpoint.readMeta(resumed, 3).extra().get("loop_state");
        assertEquals(6, ((Number) loop.get("questions_consumed_per_rank")).intValue(), loop.toString());
        assertTrue(Files.exists(resumed.resolve("optim_000003_rank0.safetensors")));
        // the parameters to the bit: every kernel sums in a fixed order in every JIT tier (VecMath, ordered partials)
        Map<String, float[]> pa = Checkpoint.load(tmp.resolve("full"), 3).params(), pb = Checkpoint.load(resumed, 3).params();
        for (String k : pa.keySet()) assertArrayEquals(pa.get(k), pb.get(k), k + " differs after resume");
        // the RL checkpoint is what `chat-eval -i rl` loads; an SFT folder is no place to resume RL from
        assertEquals(3, ChatModels.load(nanochat4j.model.checkpoint.ModelSource.RL, copyTo(base, tmp.resolve("full")), null, null).step());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ChatRl.run(options(base, "--checkpoint-dir="
                + base.resolve("chatsft_checkpoints/d1"), "--resume-from-step=0"), base, new PrintStream(new ByteArrayOutputStream())));
        assertTrue(e.getMessage().contains("is not a chat-rl checkpoint"), e.getMessage());
        IllegalArgumentException odd = assertThrows(IllegalArgumentException.class, () -> ChatRl.run(options(base, "--num-samples=3"), base,
                new PrintStream(new ByteArrayOutputStream())));
        assertTrue(odd.getMessage().contains("--num-samples 3 must be a positive multiple of --device-batch-size 2"), odd.getMessage());
    }

    private static List<com.fasterxml.jackson.databind.JsonNode> stepMetrics(Path file) throws IOException {
        List<com.fasterxml.jackson.databind.JsonNode> out = new ArrayList<>();
        for (String line : Files.readAllLines(file)) {
            var n = new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
            if (n.has("reward")) out.add(n);
        }
        return out;
    }

    /** The run's checkpoints placed where `chat-eval -i rl` looks: base/chatrl_checkpoints/d1. */
    private static Path copyTo(Path base, Path ckpt) throws IOException {
        Path dir = base.resolve("chatrl_checkpoints/d1");
        Files.createDirectories(dir);
        for (String f : List.of("model_000003.safetensors", "meta_000003.json")) Files.copy(ckpt.resolve(f), dir.resolve(f));
        return base;
    }

    /**
     * --device cuda: the same run on the GPU in fp32 (without one on {@link StandInCuda}, the device code path with
     * the CPU's arithmetic): sampled rollouts of the taught model give the CPU's first-step rewards, losses agree to
     * summation-order tolerance, the run resumes on the device and its checkpoint loads on the CPU. Without a GPU the
     * real --device cuda gives the one-line reason.
     */
    @Test
    void aRunOnTheGpuMatchesTheCpuAndResumesThere() throws IOException {
        Path base = sftBase();
        PrintStream quiet = new PrintStream(new ByteArrayOutputStream(), true, StandardCharsets.UTF_8);
        // sampled from the same seeds: a draw lands on another token only if it falls within the devices' rounding of a
        // boundary of the distribution (~1e-6 in fp32)
        String[] sampled = {"--eval-every=-1", "--precision=fp32"};
        if (!StandInCuda.gpu()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> ChatRl.run(options(base, concat(sampled, "--device=cuda", "--checkpoint-dir=" + tmp.resolve("none"))), base, quiet));
            assertTrue(e.getMessage().startsWith("--device cuda: ") && e.getMessage().endsWith("(--device cpu always works)"), e.getMessage());
        }
        ChatRl.Result cpu = ChatRl.run(options(base, concat(sampled, "--checkpoint-dir=" + tmp.resolve("cpu"))), base, quiet);
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        ChatRl.Result gpu, resumed;
        try (var device = StandInCuda.unlessGpu()) {
            gpu = ChatRl.run(options(base, concat(sampled, "--device=cuda", "--checkpoint-dir=" + tmp.resolve("gpu"))), base,
                    new PrintStream(log, true, StandardCharsets.UTF_8));
            Path again = tmp.resolve("again");
            Files.createDirectories(again);
            for (String f : List.of("model_000001.safetensors", "meta_000001.json", "optim_000001_rank0.safetensors", "metrics.jsonl")) {
                Files.copy(tmp.resolve("gpu").resolve(f), again.resolve(f));
            }
            resumed = ChatRl.run(options(base, concat(sampled, "--device=cuda", "--checkpoint-dir=" + again, "--resume-from-step=1")), base, quiet);
        }
        String text = log.toString(StandardCharsets.UTF_8);
        assertTrue(text.contains("Device: CUDA") && text.contains("linear layers in fp32"), text);
        // up to the first step that trains (its samples neither all right nor all wrong; whether one does depends on
        // how sure the taught model came out at this vector width) both devices hold the same parameters, so they draw
        // the same rollouts and compute the same loss to summation order; the update itself is compared on fixed
        // rollouts in anUpdateOnTheGpuGivesTheCpusLossAndGradients
        List<com.fasterxml.jackson.databind.JsonNode> c = stepMetrics(tmp.resolve("cpu/metrics.jsonl")), g = stepMetrics(tmp.resolve("gpu/metrics.jsonl"));
        boolean trained = false;
        for (int i = 0; i < c.size() && !trained; i++) {
            assertEquals(cpu.meanReward().get(i), gpu.meanReward().get(i), "rollouts of step " + i + " on either device");
            double lc = c.get(i).get("loss").asDouble(), lg = g.get(i).get("loss").asDouble();
            assertEquals(lc, lg, 2e-3 * Math.abs(lc), "loss of step " + i);
            trained = lc != 0;
        }
        assertEquals(gpu.meanReward().subList(1, 3), resumed.meanReward(), "resumed on the device: the same steps 1 and 2");
        Map<String, float[]> a = Checkpoint.load(tmp.resolve("gpu"), 3).params(), b = Checkpoint.load(tmp.resolve("again"), 3).params();
        for (String k : a.keySet()) assertArrayEquals(a.get(k), b.get(k), k + " differs after resuming on the device");
        assertEquals(Checkpoint.load(tmp.resolve("cpu"), 3).params().keySet(), a.keySet(), "the device checkpoint loads on the CPU");
    }

    /**
     * chat-rl's update on the device (GPU, or {@link StandInCuda} without one) over fixed rollouts whose advantages
     * differ: the CPU's loss and every gradient, to summation order — the path a run takes only when a group's samples
     * disagree.
     */
    @Test
    void anUpdateOnTheGpuGivesTheCpusLossAndGradients() {
        // perturbed, and three layers: at init the lambdas' gradients are exactly zero, and with fewer than three layers
        // the backout subtracts a multiple of the last block's output, a rescaling the final norm undoes — either way
        // two devices would compare rounding noise
        GPT cpu = nanochat4j.model.gpt.TestModels.perturbed(GPTConfig.fromDepth(3, 32, 16, 16, "L", TOK.vocabSize()), 3);
        List<int[]> seqs = List.of(new int[] {1, 2, 3, 4, 5}, new int[] {1, 2, 6}, new int[] {1, 2, 3, 7, 8, 9}, new int[] {1, 2, 10, 11});
        List<int[]> masks = List.of(new int[] {0, 0, 1, 1, 1}, new int[] {0, 0, 1}, new int[] {0, 0, 1, 0, 0, 1}, new int[] {0, 0, 1, 1});
        ChatRl.StepRollouts ro = new ChatRl.StepRollouts(List.of(Rollouts.group(seqs, masks, PAD)),
                List.of(Rollouts.advantages(new float[] {1, 0, 0, 1})), List.of(5, 3, 6, 4), 2, 0, 0, 0);
        double want = ChatRl.update(cpu, ro, 2, 1);
        try (var device = StandInCuda.unlessGpu()) {
            GPT gpu = nanochat4j.model.gpt.TestModels.perturbed(GPTConfig.fromDepth(3, 32, 16, 16, "L", TOK.vocabSize()), 3).to(nanochat4j.tensor.Device.CUDA);
            double got = ChatRl.update(gpu, ro, 2, 1);
            assertTrue(want != 0, "the rollouts train");
            assertEquals(want, got, 2e-4 * Math.abs(want), "the update's loss on the device");
            for (int i = 0; i < cpu.parameters().size(); i++) {
                float[] a = cpu.parameters().get(i).grad().toFloatArray(), b = gpu.parameters().get(i).grad().toFloatArray();
                double num = 0, den = 0;
                for (int j = 0; j < a.length; j++) {
                    num += (double) (a[j] - b[j]) * (a[j] - b[j]);
                    den += (double) a[j] * a[j];
                }
                assertTrue(num <= 4e-6 * den, cpu.parameters().get(i).name() + ": relative error " + Math.sqrt(num / Math.max(den, 1e-30))
                        + (a.length <= 4 ? " (CPU " + java.util.Arrays.toString(a) + ", device " + java.util.Arrays.toString(b) + ")" : ""));
            }
        }
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void twoRanksSampleTheirOwnQuestionsAndKeepOneModel() throws Exception {
        Path base = sftBase();
        List<ChatRl.Result> results = InProcessRing.run(2, "chat-rl test", comm -> ChatRl.run(options(base, "--checkpoint-dir=" + tmp.resolve("dp"),
                "--num-steps=2", "--eval-every=-1"), base, new PrintStream(new ByteArrayOutputStream()), comm));
        assertEquals(results.get(0).meanReward(), results.get(1).meanReward(), "the logged mean reward is averaged over the ranks");
        assertEquals(2, Checkpoint.lastStep(tmp.resolve("dp")));
        assertTrue(Files.exists(tmp.resolve("dp/optim_000002_rank1.safetensors")));
    }
}
