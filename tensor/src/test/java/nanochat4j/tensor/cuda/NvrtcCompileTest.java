package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every kernel source through NVRTC via our FFM binding, exactly as {@link CudaContext} compiles it at run time
 * (same options, compute_90a PTX): no GPU is needed, only libnvrtc (CUDA toolkit, or the nvidia-cuda-nvrtc pip
 * wheel — point -Dnanochat4j.cuda.libdirs at its lib folder). Skipped with the discovery message where NVRTC is absent.
 */
class NvrtcCompileTest {
    private static Nvrtc nvrtc;

    @BeforeAll
    static void load() {
        if (KernelCompileTest.variantRun()) return; // sources do not depend on the vector width: default run only
        try {
            nvrtc = Nvrtc.load();
        } catch (CudaUnavailableException e) {
            nvrtc = null;
        }
    }

    @Test
    void everySourceCompilesToPtxWithEveryEntryPoint() {
        Assumptions.assumeTrue(nvrtc != null, "NVRTC not found (set -Dnanochat4j.cuda.libdirs): NVRTC compile check skipped");
        java.util.Set<String> seen = new java.util.HashSet<>();
        Pattern global = Pattern.compile("extern \"C\" __global__ void(?: __launch_bounds__\\([^)]*\\))?\\s+(\\w+)\\(");
        for (String variant : List.of("elementwise", "reduce", "norm", "embedding", "crossentropy", "attention:16", "attention:64", "attention:128")) {
            String name = variant.split(":")[0];
            Map<String, String> defs = name.equals("attention")
                    ? Map.of("BLOCK", "256", "HEAD_DIM", variant.split(":")[1], "ROWS", "8") : Map.of("BLOCK", "256");
            List<String> opts = CudaContext.compileOptions("compute_90a", defs);
            String src = KernelSources.source(name);
            String ptx = new String(nvrtc.compile(name + ".cu", src, opts, false), StandardCharsets.UTF_8);
            Matcher m = global.matcher(src);
            int n = 0;
            while (m.find()) {
                n++;
                assertTrue(ptx.contains(".entry " + m.group(1)), name + ".cu: PTX has no entry " + m.group(1));
            }
            assertTrue(n > 0, name + ".cu: no kernels found in the source");
            seen.add(name);
            assertTrue(ptx.contains(".target sm_90a"), name + ".cu: PTX not for sm_90a");
        }
        assertTrue(seen.containsAll(KernelSources.ALL), "every source compiled: " + seen);
    }

    @Test
    void aCompileErrorCarriesTheLog() {
        Assumptions.assumeTrue(nvrtc != null, "NVRTC not found (set -Dnanochat4j.cuda.libdirs): NVRTC compile check skipped");
        CudaException e = assertThrows(CudaException.class, () -> nvrtc.compile("broken.cu",
                "extern \"C\" __global__ void k(float* x) { x[0] = no_such_name; }", List.of("--gpu-architecture=compute_90a"), false));
        assertTrue(e.getMessage().contains("broken.cu") && e.getMessage().contains("no_such_name"), e.getMessage());
    }
}
