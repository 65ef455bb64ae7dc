package nanochat4j.train.eval;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaContext;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class BaseEvalCommandTest {
    @TempDir
    static Path base;

    static final String MC = "{\"query\":\"The sky is\",\"choices\":[\"blue\",\"green\"],\"gold\":0}\n";
    static final String LM = "{\"context\":\"one two\",\"continuation\":\"three\"}\n";

    @BeforeAll
    static void tinyWorld() throws IOException {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 20; i++) docs.add("The sky is blue. One two three four. Hello world number " + i + ".");
        Tokenizer tok = Tokenizer.train(docs, 300);
        tok.save(base.resolve("tokenizer"));
        GPT model = GPT.create(new GPTConfig(64, tok.vocabSize(), 2, 2, 2, 32, "L"), 3);
        Checkpoint.save(base.resolve("base_checkpoints/d2"), model, new Checkpoint.Meta(model.config(), 7, "test", null, null),
                Safetensors.DType.F32);
        Path data = Files.createDirectories(base.resolve("base_data_climbmix"));
        Files.writeString(data.resolve("a_train.txt"), String.join("\n\n", docs));
        Files.writeString(data.resolve("b_val.txt"), String.join("\n\n", docs.subList(0, 10)));
        Path bundle = base.resolve("eval_bundle");
        Files.createDirectories(bundle.resolve("eval_data/x"));
        Files.writeString(bundle.resolve("core.yaml"), """
                icl_tasks:
                - {label: sky, dataset_uri: x/sky.jsonl, num_fewshot: [0], icl_task_type: multiple_choice}
                - {label: count, dataset_uri: x/count.jsonl, num_fewshot: [1], icl_task_type: language_modeling}
                - {label: absent, dataset_uri: x/absent.jsonl, num_fewshot: [0], icl_task_type: schema}
                """);
        Files.writeString(bundle.resolve("eval_meta_data.csv"), "Eval Task,Random baseline\nsky,50\ncount,0\nabsent,50\n");
        Files.writeString(bundle.resolve("eval_data/x/sky.jsonl"), MC.repeat(3));
        Files.writeString(bundle.resolve("eval_data/x/count.jsonl"), LM.repeat(3));
    }

    private static String run(String... args) {
        BaseEvalCommand cmd = new BaseEvalCommand();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        cmd.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        int code = new CommandLine(cmd).execute(args);
        assertEquals(0, code, buf.toString(StandardCharsets.UTF_8));
        return buf.toString(StandardCharsets.UTF_8);
    }

    @Test
    void evaluatesCoreBpbAndSamplesAndWritesTheTables() throws IOException {
        String out = run("--base-dir", base.toString(), "--device-batch-size", "2", "--split-tokens", "256");
        assertTrue(out.contains("train_bpb") && out.contains("val_bpb"), out);
        assertTrue(out.contains("[absent]"), "missing tasks are named: " + out);
        assertTrue(out.contains("CORE "), out);
        List<String> csv = Files.readAllLines(base.resolve("base_eval/base_model_000007.csv"));
        assertEquals("Task, Accuracy, Centered", csv.get(0));
        assertTrue(csv.get(1).startsWith("sky, ") && csv.get(2).startsWith("count, ") && csv.get(3).startsWith("CORE, "), csv.toString());
        JsonNode j = new ObjectMapper().readTree(base.resolve("base_eval/base_model_000007.json").toFile());
        assertEquals(7, j.get("step").asInt());
        assertEquals(BaseEvalCommand.PROMPTS.size(), j.get("samples").size());
        double bpb = j.get("val_bpb").asDouble();
        assertTrue(bpb > 0 && Double.isFinite(bpb), "an untrained model has a finite positive bpb: " + bpb);
        double sky = j.get("core").get("tasks").get("sky").get("accuracy").asDouble();
        double count = j.get("core").get("tasks").get("count").get("accuracy").asDouble();
        assertEquals((new CoreTask("s", base, 0, CoreTask.Type.MULTIPLE_CHOICE, " ", 50).centered(sky) + count) / 2,
                j.get("core").get("core").asDouble(), 1e-9);
    }

    @Test
    void unknownTaskFilterAndBadFlagsAreClearErrors() {
        BaseEvalCommand cmd = new BaseEvalCommand();
        CommandLine cl = new CommandLine(cmd);
        java.io.StringWriter err = new java.io.StringWriter();
        cl.setErr(new java.io.PrintWriter(err));
        cl.setExecutionExceptionHandler((e, c, p) -> {
            err.write(e.getMessage());
            return 1;
        });
        assertEquals(1, cl.execute("--base-dir", base.toString(), "--eval", "core", "--tasks", "nope"));
        assertTrue(err.toString().contains("no task 'nope'"), err.toString());
        assertEquals(1, cl.execute("--base-dir", base.toString(), "--eval", "vibes"));
        assertTrue(err.toString().contains("unknown 'vibes'"), err.toString());
    }

    private static byte[] zipOf(String... nameAndText) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        try (ZipOutputStream z = new ZipOutputStream(b)) {
            for (int i = 0; i < nameAndText.length; i += 2) {
                z.putNextEntry(new ZipEntry(nameAndText[i]));
                z.write(nameAndText[i + 1].getBytes(StandardCharsets.UTF_8));
                z.closeEntry();
            }
        }
        return b.toByteArray();
    }

    @Test
    void bundleDownloadUnpacksAtomicallyAndRefusesBadResponses(@TempDir Path dir) throws Exception {
        byte[] good = zipOf("eval_bundle/core.yaml", "icl_tasks:\n- {label: sky, dataset_uri: x/sky.jsonl, num_fewshot: [0], icl_task_type: multiple_choice}\n",
                "eval_bundle/eval_meta_data.csv", "Eval Task,Random baseline\nsky,50\n", "eval_bundle/eval_data/x/sky.jsonl", MC);
        HttpServer server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/ok.zip", ex -> {
            ex.sendResponseHeaders(200, good.length);
            ex.getResponseBody().write(good);
            ex.close();
        });
        server.createContext("/junk.zip", ex -> {
            byte[] junk = "<html>not a zip</html>".getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, junk.length);
            ex.getResponseBody().write(junk);
            ex.close();
        });
        server.start();
        String root = "http://127.0.0.1:" + server.getAddress().getPort();
        try {
            Path dest = dir.resolve("eval_bundle");
            IOException missing = assertThrows(IOException.class, () -> EvalBundleDownload.download(root + "/nothing.zip", dest));
            assertTrue(missing.getMessage().contains("HTTP 404"), missing.getMessage());
            IOException junk = assertThrows(IOException.class, () -> EvalBundleDownload.download(root + "/junk.zip", dest));
            assertTrue(junk.getMessage().contains("not a zip"), junk.getMessage());
            assertTrue(Files.notExists(dest), "nothing half-written at the destination");
            EvalBundleDownload.download(root + "/ok.zip", dest);
            CoreBundle b = CoreBundle.load(dest);
            assertEquals(1, b.tasks().size());
            try (var s = Files.list(dir)) {
                assertEquals(List.of(dest), s.toList(), "no temp files left behind");
            }
        } finally {
            server.stop(0);
        }
    }
    /**
     * --device: the CPU always; CUDA where it is usable (the same bpb as the CPU), else a one-line reason and the same
     * run on {@link StandInCuda}.
     */
    @Test
    void theModelRunsOnTheDeviceAsked() throws IOException {
        String cpu = run("--base-dir", base.toString(), "--eval", "bpb", "--device", "cpu", "--device-batch-size", "2", "--split-tokens", "256");
        assertTrue(cpu.contains(") on CPU"), cpu);
        double cpuBpb = new ObjectMapper().readTree(base.resolve("base_eval/base_model_000007.json").toFile()).get("val_bpb").asDouble();
        String why = CudaContext.unavailableReason();
        if (why != null) {
            BaseEvalCommand cmd = new BaseEvalCommand();
            new CommandLine(cmd).parseArgs("--base-dir", base.toString(), "--device", "cuda");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, cmd::call);
            assertTrue(e.getMessage().startsWith("--device cuda: ") && e.getMessage().endsWith("(--device cpu always works)"), e.getMessage());
        }
        String gpu;
        try (var device = StandInCuda.unlessGpu()) {   // without a GPU: the device code path with the CPU's arithmetic
            gpu = run("--base-dir", base.toString(), "--eval", "bpb", "--device", "cuda", "--precision", "fp32", "--device-batch-size", "2",
                    "--split-tokens", "256");
        }
        assertTrue(gpu.contains(") on CUDA"), gpu);
        double gpuBpb = new ObjectMapper().readTree(base.resolve("base_eval/base_model_000007.json").toFile()).get("val_bpb").asDouble();
        assertEquals(cpuBpb, gpuBpb, 1e-4 * cpuBpb, "val bpb on the GPU");
    }
}
