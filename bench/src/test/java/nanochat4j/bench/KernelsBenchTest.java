package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class KernelsBenchTest {

    private static String run(String... args) {
        CommandLine cl = Main.commandLine();
        StringWriter out = new StringWriter();
        cl.setOut(new PrintWriter(out));
        assertEquals(0, cl.execute(args), "exit code of nanochat4j " + String.join(" ", args));
        return out.toString();
    }

    @Test
    void jsonModePrintsOneObjectPerOpWithTimingsAndPeak() throws Exception {
        String out = run("bench", "kernels", "--quick", "--json");
        ObjectMapper mapper = new ObjectMapper();
        Set<String> ops = new TreeSet<>();
        List<String> lines = out.lines().toList();
        assertTrue(lines.size() >= 10, out);
        boolean cMeasured = false;
        for (String line : lines) {
            JsonNode row = mapper.readTree(line);
            for (String key : List.of("op", "shape", "ms", "gflops", "peak_gflops", "c_peak_gflops", "kernel_gflops")) {
                assertTrue(row.has(key), "key " + key + " in " + line);
            }
            ops.add(row.get("op").asText());
            if (row.get("op").asText().equals("c_fma_peak")) {
                // gcc's FMA loop: a figure where gcc builds it, else the reason in the note
                assertTrue(row.get("ms").isNull(), line);
                if (row.get("gflops").isNumber()) assertTrue(row.get("gflops").asDouble() > 0 && row.get("note").asText().startsWith("gcc -O2 -march=native"), line);
                else assertTrue(row.get("note").asText().startsWith("no C peak: "), line);
                cMeasured = row.get("gflops").isNumber();
                continue;
            }
            if (row.get("op").asText().equals("bandwidth")) {
                // measured, not timed: its figure is in the note, and the memory-bound rows are judged against it
                assertTrue(row.get("ms").isNull() && row.get("note").asText().matches("\\d+\\.\\d GB/s; STREAM triad.*"), line);
                continue;
            }
            if (row.get("op").asText().equals("cross_entropy") && row.get("ms").isNull()) {
                // the fused op minus its GEMMs: at --quick sizes timing noise may exceed it, and then it says so
                assertTrue(row.get("note").asText().startsWith("not resolved: "), line);
                continue;
            }
            assertTrue(row.get("ms").asDouble() > 0, line);
            assertTrue(row.get("peak_gflops").asDouble() > 0, line);
            boolean flopBound = List.of("gemm", "attention", "lm_head_ce").contains(row.get("op").asText());
            assertEquals(flopBound, row.get("gflops").isNumber(), "gflops is a number exactly for flop-bound ops: " + line);
            if (flopBound) assertTrue(row.get("gflops").asDouble() > 0, line);
            // each flop-bound row is judged against the C loop run beside it (the host's speed drifts within minutes)
            assertEquals(flopBound && cMeasured, row.get("c_peak_gflops").isNumber(), line);
            if (flopBound && cMeasured) {
                assertTrue(row.get("c_peak_gflops").asDouble() > 0 && row.get("note").asText().contains("% of the C peak ("), line);
            }
        }
        assertEquals(new TreeSet<>(List.of("attention", "bandwidth", "c_fma_peak", "cross_entropy", "gemm", "lm_head_ce", "rms_norm", "rotary")), ops);
        assertTrue(out.contains("of the triad"), "memory-bound ops say their share of the bandwidth: " + out);
        // the GEMM rows' ceiling comes first: the micro-kernel alone, with its rate; every GEMM row after it is also
        // set against the kernel alone, run right after the row
        List<String> gemms = lines.stream().filter(l -> l.contains("\"op\":\"gemm\"")).toList();
        assertTrue(gemms.get(0).contains("micro-kernel alone") && gemms.get(0).matches(".*\"gflops\":[0-9.]+.*")
                && gemms.get(0).contains("\"kernel_gflops\":null"), out);
        for (String l : gemms.subList(1, gemms.size())) {
            assertTrue(l.matches(".*\"kernel_gflops\":[0-9.]+.*") && l.contains("% of the micro-kernel alone ("), l);
        }
        assertTrue(gemms.size() > 1, out);
        // the CE row kernel timed alone, judged against the lm_head forward GEMM
        assertTrue(lines.stream().anyMatch(l -> l.contains("\"op\":\"cross_entropy\"") && l.contains(" alone\"")
                && l.matches(".*\"note\":\"[^\"]*\\d+\\.\\d\\dx the lm_head fwd GEMM.*")), out);
    }

    @Test
    void tableModeHasAHeaderAndTheRequestedOpsOnly() {
        String out = run("bench", "kernels", "--quick", "--ops", "rms_norm,rotary");
        assertTrue(out.contains("%peak"), out);
        assertTrue(out.contains("paths: GEMM ") && out.contains("micro-kernel") && out.contains("transposed A read in place")
                && out.contains("VecMath"), out);
        assertTrue(out.matches("(?s).*\\(then packed (two panels a vector|a vector a panel|float by float)\\).*"),
                "how a transposed A with 4 KiB rows is packed: " + out);
        assertTrue(out.contains("rms_norm") && out.contains("rotary"), out);
        // the memory-bound rows run as a training step runs them: into recycled outputs, which the JVM does not clear,
        // from rotating inputs (quick: two sets)
        assertTrue(out.lines().filter(l -> l.startsWith("rms_norm ") || l.startsWith("rotary "))
                .allMatch(l -> l.contains("outputs recycled as in a training step, 2 input sets in rotation")), out);
        assertTrue(out.lines().anyMatch(l -> l.startsWith("bandwidth ") && l.contains("GB/s; STREAM triad")), out);
        assertTrue(!out.contains("gemm ") && !out.contains("attention "), out);
    }

    @Test
    void theCFmaLoopBuildsWhereGccIsAndItsFigureIsPlausible() {
        CFmaPeak.Peak p;
        try (CFmaPeak.Loop loop = CFmaPeak.build(1, nanochat4j.tensor.cpu.Vec.F.vectorBitSize())) {
            p = loop.measure(100_000);
        }
        boolean gcc = java.util.stream.Stream.of(System.getenv("PATH").split(java.io.File.pathSeparator))
                .anyMatch(d -> java.nio.file.Files.isExecutable(java.nio.file.Path.of(d, "gcc")));
        if (!gcc) {
            assertTrue(!p.measured() && p.reason().contains("gcc"), "without gcc the reason names it: " + p);
            return;
        }
        assertTrue(p.measured(), "gcc is on the PATH, so the loop must build and run: " + p);
        // one thread's FMA peak: above a scalar core's (~1 GFLOP/s), below any CPU core's (~500 GFLOP/s)
        assertTrue(p.gflops() > 1 && p.gflops() < 500, p.toString());
    }

    @Test
    void unknownOpIsRejected() {
        CommandLine cl = Main.commandLine();
        cl.setErr(new PrintWriter(new StringWriter()));
        assertTrue(cl.execute("bench", "kernels", "--quick", "--ops", "conv") != 0);
    }

    @Test
    void cudaDeviceRunsOnAGpuAndElseFailsWithTheReason() throws Exception {
        String why = nanochat4j.tensor.cuda.CudaContext.unavailableReason();
        if (why == null) {
            String out = run("bench", "kernels", "--quick", "--json", "--device", "cuda");
            ObjectMapper mapper = new ObjectMapper();
            Set<String> ops = new TreeSet<>();
            for (String line : out.lines().toList()) {
                JsonNode row = mapper.readTree(line);
                assertEquals("cuda", row.get("device").asText(), line);
                assertTrue(row.get("ms").asDouble() > 0, line);
                ops.add(row.get("op").asText());
            }
            assertTrue(ops.containsAll(List.of("gemm fp32", "gemm bf16", "attention fwd", "attention bwd", "cross_entropy", "launch")), ops.toString());
            // our GEMM beside cuBLAS on the forward product and, with gemm-bwd (in every op's run), the backward's dx and dW
            assertTrue(ops.containsAll(List.of(CudaKernels.GEMM_CUBLAS, CudaKernels.GEMM_OURS, "gemm pick")), ops.toString());
            for (String product : List.of("tiny 128x128x128", "tiny dx 128x128x128", "tiny dW 128x128x128")) {
                assertTrue(out.contains("\"op\":\"" + CudaKernels.GEMM_OURS + "\",\"shape\":\"d0 " + product + "\""), product + ": " + out);
            }
            // head dim 128 (--quick too): on Hopper both tensor-core kernel families, each with its fwd+bwd figure
            if (nanochat4j.tensor.cuda.CudaBackend.get().context().hopper()) {
                assertTrue(ops.containsAll(List.of("attention fwd tc (wgmma)", "attention bwd tc (wgmma)", "attention fwd+bwd tc (wgmma)",
                        "attention fwd tc (mma.sync)", "attention bwd tc (mma.sync)", "attention fwd+bwd tc (mma.sync)")), ops.toString());
            }
            return;
        }
        CommandLine cl = Main.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        cl.setExecutionExceptionHandler((e, c, p) -> {
            c.getErr().println(e.getMessage());
            return 7;
        });
        assertEquals(7, cl.execute("bench", "kernels", "--quick", "--device", "cuda"));
        assertTrue(err.toString().contains("CUDA"), err.toString());
        assertTrue(cl.execute("bench", "kernels", "--quick", "--device", "tpu") != 0);
    }
}
