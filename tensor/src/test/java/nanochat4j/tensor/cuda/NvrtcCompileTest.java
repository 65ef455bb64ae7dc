package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every kernel source through NVRTC via our FFM binding, exactly as {@link CudaContext} compiles it at run time
 * (same options, compute_90a PTX, each with the defines the backend launches it with: {@link
 * KernelCompileTest#launchDefines}), and every extern "C" kernel in the PTX: no GPU is needed, only libnvrtc (CUDA toolkit, or the nvidia-cuda-nvrtc pip
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
        int variants = 0;
        for (String name : KernelSources.ALL) {
            String src = KernelSources.source(name);
            Set<String> kernels = KernelSignatures.parse(src).keySet();
            assertTrue(!kernels.isEmpty(), name + ".cu: no kernels found in the source");
            for (Map<String, String> defs : KernelCompileTest.launchDefines(name)) {
                List<String> opts = CudaContext.compileOptions("compute_90a", defs);
                String ptx = new String(nvrtc.compile(name + ".cu", src, opts, false), StandardCharsets.UTF_8);
                for (String k : kernels) assertTrue(ptx.contains(".entry " + k + "("), name + ".cu " + defs + ": PTX has no entry " + k);
                assertTrue(ptx.contains(".target sm_90a"), name + ".cu: PTX not for sm_90a");
                variants++;
            }
        }
        assertTrue(variants >= KernelSources.ALL.size() + 4, "compiled " + variants + " source variants");
    }

    @Test
    void aCompileErrorCarriesTheLog() {
        Assumptions.assumeTrue(nvrtc != null, "NVRTC not found (set -Dnanochat4j.cuda.libdirs): NVRTC compile check skipped");
        CudaException e = assertThrows(CudaException.class, () -> nvrtc.compile("broken.cu",
                "extern \"C\" __global__ void k(float* x) { x[0] = no_such_name; }", List.of("--gpu-architecture=compute_90a"), false));
        assertTrue(e.getMessage().contains("broken.cu") && e.getMessage().contains("no_such_name"), e.getMessage());
    }

    /** The fallback for a driver older than NVRTC's PTX (CudaContext.load): a cubin for the GPU itself, an ELF image. */
    @Test
    void theCubinFallbackCompiles() {
        Assumptions.assumeTrue(nvrtc != null, "NVRTC not found (set -Dnanochat4j.cuda.libdirs): NVRTC compile check skipped");
        List<String> opts = CudaContext.compileOptions("sm_90a", CudaBackend.blockDefines());
        byte[] cubin = nvrtc.compile("elementwise.cu", KernelSources.source("elementwise"), opts, true);
        assertTrue(cubin.length > 1024 && cubin[0] == 0x7f && cubin[1] == 'E' && cubin[2] == 'L' && cubin[3] == 'F',
                "a cubin is an ELF image: " + cubin.length + " bytes");
    }
}
