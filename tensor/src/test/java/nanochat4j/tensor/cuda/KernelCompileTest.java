package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Compiles every kernel source for Hopper with nvcc (as NVRTC will: includes inlined, the same -D constants) and
 * fails on a compile error, a register spill ("N bytes spill stores" with N > 0 in ptxas's resource report) or a
 * wgmma pipeline ptxas had to serialize (its C7511-style "Potential Performance Loss" notes, and the waits it injects
 * when a register a wgmma writes is touched before its wait; {@link JitLog}, which reads the same report from the
 * driver's JIT on a GPU machine) — so a broken or slow kernel fails CI on machines without a GPU. Skipped with a
 * message where nvcc is not on the PATH. Each source is compiled with the defines the backend launches it with (the attention module at each head
 * dim the models and tests use).
 */
class KernelCompileTest {

    /** The kernel sources do not depend on the vector width or test sizes: compile them in the default run only. */
    static boolean variantRun() {
        return System.getProperty("nanochat4j.vectorBits") != null || System.getProperty("nanochat4j.test.sizes") != null;
    }

    static String nvcc() {
        return variantRun() ? null : onPath("nvcc");
    }

    /** The executable {@code exe} on the PATH, or null. */
    static String onPath(String exe) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path p = Path.of(dir, exe);
            if (Files.isExecutable(p)) return p.toString();
        }
        return null;
    }

    @Test
    void everyKernelCompilesForSm90aWithoutSpills(@TempDir Path tmp) throws Exception {
        String nvcc = nvcc();
        Assumptions.assumeTrue(nvcc != null, variantRun() ? "kernel compile check runs in the default surefire execution only" : "nvcc not on the PATH: kernel compile check skipped");
        List<String> failures = new ArrayList<>();
        int kernels = 0;
        for (String name : KernelSources.ALL) {
            List<List<String>> variants = launchDefines(name).stream().map(KernelCompileTest::dashD).toList();
            for (List<String> defs : variants) {
                Path src = tmp.resolve(name + ".cu");
                Files.writeString(src, KernelSources.source(name));
                List<String> cmd = new ArrayList<>(List.of(nvcc, "-arch=sm_90a", "-cubin", "--resource-usage", "-o",
                        tmp.resolve(name + ".cubin").toString()));
                cmd.addAll(defs);
                cmd.add(src.toString());
                String out = run(cmd, tmp);
                String what = name + ".cu " + defs;
                if (out.startsWith("EXIT")) {
                    failures.add(what + " does not compile:\n" + out);
                    continue;
                }
                kernels += JitLog.kernels(out);
                for (String w : JitLog.warnings(out)) failures.add(what + ": " + w); // the report the driver's JIT is asked for too
            }
        }
        if (!failures.isEmpty()) fail(String.join("\n", failures));
        assertTrue(kernels >= 30, "expected every kernel in ptxas's report, saw " + kernels);
    }

    /** The check above sees a serialized wgmma pipeline: an accumulator touched between a wgmma and its wait. */
    @Test
    void aSerializedWgmmaPipelineIsSeen(@TempDir Path tmp) throws Exception {
        String nvcc = nvcc();
        Assumptions.assumeTrue(nvcc != null, variantRun() ? "kernel compile check runs in the default surefire execution only" : "nvcc not on the PATH: kernel compile check skipped");
        Path src = tmp.resolve("serialized.cu");
        Files.writeString(src, KernelSources.raw("common.cuh") + KernelSources.raw("tensorcore.cuh") + """
                extern "C" __global__ void __launch_bounds__(128, 1) touched(float* out, unsigned long long da, unsigned long long db) {
                    float d[32];
                    for (int i = 0; i < 32; i++) d[i] = 0.f;
                    wg_fence();
                    wg_mma<64, 0, 0>(d, da, db, 0);
                    wg_commit();
                    d[0] += 1.f; // no wait before it: ptxas must wait here, and says so
                    wg_fence();
                    wg_mma<64, 0, 0>(d, da, db, 1);
                    wg_commit();
                    wg_wait<0>();
                    wg_fence_operand(d);
                    for (int i = 0; i < 32; i++) out[threadIdx.x * 32 + i] = d[i];
                }
                """);
        String out = run(List.of(nvcc, "-arch=sm_90a", "-cubin", "--resource-usage", "-o", tmp.resolve("s.cubin").toString(), src.toString()), tmp);
        assertTrue(!out.startsWith("EXIT") && !JitLog.warnings(out).isEmpty(), out);
    }

    /**
     * The defines each source is compiled with as the backend launches it (NvrtcCompileTest compiles the same): every
     * generated GEMM tile; the attention module with its defines (ROWS included) at the head dims the models (128; 64
     * at small widths) and the tests (16, 32) use, plus ROWS = 4 at head dim 64, the variant that once spilled; the
     * block size for the others.
     */
    static List<Map<String, String>> launchDefines(String name) {
        return switch (name) {
            case "gemm" -> TensorCoreGemm.TILES.stream().map(TensorCoreGemm.Tile::defines).toList();
            case "gemm_wgmma" -> TensorCoreGemm.WGMMA_TILES.stream().map(TensorCoreGemm.Tile::defines).distinct().toList(); // split-K: the same compile
            case "attention" -> {
                List<Map<String, String>> v = new ArrayList<>();
                for (int d : new int[] {16, 32, 64, 128}) v.add(CudaBackend.attentionDefines(d));
                Map<String, String> rows4 = new TreeMap<>(CudaBackend.attentionDefines(64));
                rows4.put("ROWS", "4");
                v.add(rows4);
                yield v;
            }
            // the tensor-core kernels at head dims 16, 48 (not a power of two), 64 and 128
            case "attention_tc_fwd", "attention_tc_bwd" -> List.of(CudaBackend.attentionDefines(16), CudaBackend.attentionDefines(48),
                    CudaBackend.attentionDefines(64), CudaBackend.attentionDefines(128));
            case "attention_wgmma" -> List.of(CudaBackend.wgmmaAttentionDefines(TensorCoreAttention.WGMMA_HEAD_DIM));
            default -> List.of(CudaBackend.blockDefines());
        };
    }

    static List<List<String>> attentionVariants() {
        return launchDefines("attention").stream().map(KernelCompileTest::dashD).toList();
    }

    /** -DNAME=VALUE flags in NVRTC's order (CudaContext.compileOptions). */
    static List<String> dashD(Map<String, String> defines) {
        return CudaContext.compileOptions("x", defines).stream().filter(o -> o.startsWith("-D")).toList();
    }

    @Test
    void attentionIsCheckedAsLaunched() {
        List<List<String>> v = attentionVariants();
        assertTrue(v.contains(List.of("-DBLOCK=256", "-DHEAD_DIM=128", "-DROWS=" + CudaBackend.ROWS)), v.toString());
        assertTrue(v.contains(List.of("-DBLOCK=256", "-DHEAD_DIM=64", "-DROWS=" + CudaBackend.ROWS)), v.toString());
    }

    @Test
    void aBrokenKernelIsReported(@TempDir Path tmp) throws Exception {
        String nvcc = nvcc();
        Assumptions.assumeTrue(nvcc != null, variantRun() ? "kernel compile check runs in the default surefire execution only" : "nvcc not on the PATH: kernel compile check skipped");
        Path src = tmp.resolve("broken.cu");
        Files.writeString(src, "extern \"C\" __global__ void k(float* x) { x[0] = undefined_name; }\n");
        String out = run(List.of(nvcc, "-arch=sm_90a", "-cubin", "-o", tmp.resolve("b.cubin").toString(), src.toString()), tmp);
        assertTrue(out.startsWith("EXIT") && out.contains("undefined_name"), out);
    }

    @Test
    void includesAreInlinedForNvrtc() {
        for (String name : KernelSources.ALL) {
            String s = KernelSources.source(name);
            assertTrue(!s.contains("#include"), name + ".cu still has an #include after inlining");
            assertTrue(s.contains("warp_sum"), name + ".cu lost common.cuh");
        }
        assertEquals(12, KernelSources.ALL.size()); // elementwise, reduce, norm, embedding, crossentropy, attention (fp32, tc fwd, tc bwd, wgmma bwd), optim, gemm (mma.sync, wgmma)
    }

    /** The command's output (stderr merged), prefixed "EXIT n" when it fails or "EXIT timeout" after 300 s. */
    static String run(List<String> cmd, Path dir) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        Process p = pb.start();
        byte[] out = p.getInputStream().readAllBytes();
        if (!p.waitFor(300, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return "EXIT timeout\n";
        }
        String text = new String(out, StandardCharsets.UTF_8);
        return p.exitValue() == 0 ? text : "EXIT " + p.exitValue() + "\n" + text;
    }
}
