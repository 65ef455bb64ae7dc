package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.util.stream.Stream;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.cpu.Vec;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class InferBenchTest {
    @Test
    void jsonReportHasEveryKeyWithPlausibleValues() throws Exception {
        JsonNode j = tinyRun();
        for (String k : new String[] {"depth", "prefill_ms", "decode_tok_per_sec", "batch8_tok_per_sec", "weights_gb_per_s", "mem_bw_gb_per_s"}) {
            assertTrue(j.has(k), k);
        }
        assertEquals(1, j.get("depth").asInt());
        assertTrue(j.get("decode_tok_per_sec").asDouble() > 0 && j.get("mem_bw_gb_per_s").asDouble() > 0, j.toString());
        assertEquals("fp32", j.get("weights").asText());
        assertTrue(j.get("path").asText().startsWith("GEMV " + Vec.F.vectorBitSize() + "-bit: batch 1 "), j.toString());
        // the JIT's deoptimizations during the timed batch-1 decode: counted (jdk.jfr is in the full JDK), no storm
        long deopts = j.get("decode_deopts").asLong();
        assertTrue(deopts >= 0 && deopts < Deopts.STORM, j.toString());
    }

    @Test
    void bf16WeightsAreReportedAndAnotherValueIsRejected() throws Exception {
        JsonNode j = tinyRun("--weights", "bf16");
        assertEquals("bf16", j.get("weights").asText());
        assertTrue(j.get("weights_gb_per_s").asDouble() > 0, j.toString());

        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(new InferBench());
        cl.setErr(new PrintWriter(err));
        assertEquals(2, cl.execute("--weights", "int8"));
        assertTrue(err.toString().contains("Invalid value for option '--weights'") && err.toString().contains("'int8'"), err.toString());
    }

    /** On a GPU, and on {@link StandInCuda} elsewhere: the device path reports, at bf16 unless told fp32. */
    @Test
    void cudaDeviceRunsOnTheDevicePathAtItsPrecision() throws Exception {
        try (var device = StandInCuda.unlessGpu()) {
            JsonNode j = tinyRun("--device", "cuda");
            assertEquals("cuda", j.get("device").asText());
            assertEquals("bf16", j.get("precision").asText(), j.toString());
            assertTrue(j.get("decode_tok_per_sec").asDouble() > 0 && j.get("issued_tok_per_sec").asDouble() > 0, j.toString());
            assertTrue(j.has("launch_ms_per_step"), j.toString());   // replayed against issued kernel by kernel
            // a run's kernels timed one by one on a GPU (the stand-in runs no kernels: none, and no busy time)
            assertEquals(StandInCuda.gpu(), !j.get("decode_kernels").isEmpty(), j.toString());
            assertEquals(StandInCuda.gpu(), j.get("device_busy_ms_per_step").isNumber(), j.toString());
            if (StandInCuda.gpu()) assertTrue(j.get("decode_kernels").get(0).get("ms_per_step").asDouble() > 0, j.toString());
            assertEquals("fp32", tinyRun("--device", "cuda", "--precision", "fp32").get("precision").asText());
        }
    }

    @Test
    void cudaDeviceElseFailsWithTheReason() throws Exception {
        Assumptions.assumeTrue(!StandInCuda.gpu(), "a GPU is usable here");
        CommandLine cl = new CommandLine(new InferBench());
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        cl.setExecutionExceptionHandler((e, c, p) -> {
            c.getErr().println(e.getMessage());
            return 7;
        });
        assertEquals(7, cl.execute("--depth", "1", "--device", "cuda"));
        assertTrue(err.toString().startsWith("CUDA"), err.toString());
    }

    /** A d1 run small enough for a test, with {@code extra} options; returns its JSON report. */
    static JsonNode tinyRun(String... extra) throws Exception {
        InferBench b = new InferBench();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        b.out = new PrintStream(buf, true, StandardCharsets.UTF_8);
        String[] args = Stream.concat(Stream.of("--depth", "1", "--vocab", "512", "--seq", "64",
                "--prompt-tokens", "8", "--decode-tokens", "8", "--iters", "1", "--bandwidth-mb", "32", "--json"),
                Stream.of(extra)).toArray(String[]::new);
        assertEquals(0, new CommandLine(b).execute(args));
        return new ObjectMapper().readTree(buf.toString(StandardCharsets.UTF_8));
    }
}
