package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.serve.Nanochat4j;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cuda.CudaContext;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code nanochat4j serve} end to end: loads a checkpoint per worker, prints the URL, serves, stops on interrupt. */
class ServeCommandTest {
    @TempDir
    static Path base;

    @BeforeAll
    static void tinyBaseCheckpoint() throws Exception {
        TestServers.TOK.save(base.resolve("tokenizer"));
        GPT model = GPT.create(new GPTConfig(64, TestServers.TOK.vocabSize(), 2, 2, 2, 32, "L"), 1);
        Checkpoint.save(base.resolve("base_checkpoints/d2"), model, new Checkpoint.Meta(model.config(), 5, "test", null, null),
                Safetensors.DType.F32);
    }

    private static String[] run(String... args) {
        CommandLine cl = Nanochat4j.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new String[] {Integer.toString(code), err.toString()};
    }

    @Test
    void servesTheLatestBaseCheckpointOnTwoWorkersUntilInterrupted() throws Exception {
        serveTwoWorkers("cpu", "CPU");
    }

    /** The same on the device path: the GPU, or {@link StandInCuda} without one (two workers' models on the device). */
    @Test
    void servesFromTheDeviceToo() throws Exception {
        try (var device = StandInCuda.unlessGpu()) {
            serveTwoWorkers("cuda", "CUDA");
        }
    }

    private static void serveTwoWorkers(String device, String named) throws Exception {
        PrintStream old = System.out;
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        int[] code = {-1};
        Thread t = new Thread(() -> code[0] = Nanochat4j.commandLine().execute("serve", "--base-dir", base.toString(), "-i", "base",
                "--port", "0", "--workers", "2", "--device", device));
        try {
            t.start();
            Pattern url = Pattern.compile("open (http://127\\.0\\.0\\.1:\\d+/)");
            Matcher m = url.matcher("");
            assertTrue(TestServers.eventually(60, () -> m.reset(out.toString(StandardCharsets.UTF_8)).find()), "no URL printed: " + out);
            URI u = URI.create(m.group(1));
            assertTrue(out.toString(StandardCharsets.UTF_8).contains("base model d2 step 5 on 2 workers on " + named + " (model id nanochat4j-base-d2)"),
                    out.toString());
            HttpResponse<String> h = TestServers.HTTP.send(HttpRequest.newBuilder(u.resolve("/health")).build(), HttpResponse.BodyHandlers.ofString());
            JsonNode health = TestServers.JSON.readTree(h.body());
            assertEquals(2, health.get("num_workers").asInt());
            HttpResponse<String> r = TestServers.HTTP.send(HttpRequest.newBuilder(u.resolve("/v1/chat/completions"))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofString(TestServers.chat("\"max_tokens\": 3", "hello"))).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            assertEquals("nanochat4j-base-d2", TestServers.JSON.readTree(r.body()).get("model").asText());
            t.interrupt();
            t.join(10_000);
            assertEquals(0, code[0], "an interrupted serve stops cleanly");
        } finally {
            System.setOut(old);
            t.interrupt();
        }
    }

    @Test
    void aMissingSftSourceIsAOneLineErrorNamingItsFolder() {
        String[] r = run("serve", "--base-dir", base.toString(), "-i", "sft", "--port", "0");
        assertEquals("1", r[0]);
        assertTrue(r[1].contains("chatsft_checkpoints") && r[1].contains("does not exist"), r[1]);
        assertEquals(1, r[1].strip().lines().count(), r[1]);
        r = run("serve", "--base-dir", base.toString(), "-i", "rl", "--port", "0");
        assertTrue(r[1].contains("chatrl_checkpoints"), r[1]);
    }

    @Test
    void unusableCudaAndBadArgumentsAreRefusedWithTheReason() {
        String[] r;
        if (CudaContext.unavailableReason() != null) {
            r = run("serve", "--base-dir", base.toString(), "--device", "cuda");
            assertEquals("1", r[0]);
            assertTrue(r[1].contains("--device cuda: CUDA") && r[1].contains("--device cpu always works"), r[1]);
            assertEquals(1, r[1].strip().lines().count(), r[1]);
        }
        r = run("serve", "--base-dir", base.toString(), "--device", "tpu");
        assertEquals("2", r[0]);
        assertTrue(r[1].contains("--device") && r[1].contains("tpu"), r[1]);
        r = run("serve", "--base-dir", base.toString(), "--workers", "0");
        assertEquals("1", r[0]);
        assertTrue(r[1].contains("--workers 0"), r[1]);
        r = run("serve", "--base-dir", base.toString(), "--port", "70000");
        assertEquals("1", r[0]);
        assertTrue(r[1].contains("port 70000"), r[1]);
    }
}
