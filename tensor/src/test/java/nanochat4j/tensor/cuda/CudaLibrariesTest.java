package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Library discovery order and its messages, checked with a fake opener (no CUDA needed). */
class CudaLibrariesTest {

    @Test
    void searchOrderIsPropertyThenLoaderThenDirectoriesThenPipWheels(@TempDir Path tmp) throws Exception {
        Path cudaHome = Files.createDirectories(tmp.resolve("cuda/lib64"));
        Path wheel = Files.createDirectories(tmp.resolve("venv/lib/python3.12/site-packages/nvidia/cublas/lib"));
        Files.writeString(wheel.resolve("libcublas.so.13"), "");
        Map<String, String> env = Map.of("CUDA_HOME", tmp.resolve("cuda").toString(), "VIRTUAL_ENV", tmp.resolve("venv").toString());
        List<String> tried = new ArrayList<>();
        SymbolLookup fake = name -> java.util.Optional.empty();
        Function<String, SymbolLookup> opener = c -> {
            tried.add(c);
            return c.endsWith(wheel.resolve("libcublas.so.13").toString()) ? fake : null;
        };
        CudaLibraries.Opened o = CudaLibraries.open(CudaLibraries.CUBLAS, env::get, k -> null, opener);
        assertEquals(wheel.resolve("libcublas.so.13").toString(), o.from());
        assertEquals("libcublas.so.13", tried.getFirst(), "the loader is asked by soname first");
        assertTrue(CudaLibraries.searchDirs(env::get, k -> null).indexOf(cudaHome) < CudaLibraries.searchDirs(env::get, k -> null).indexOf(wheel),
                "CUDA_HOME before pip wheels");
        CudaLibraries.Opened explicit = CudaLibraries.open(CudaLibraries.CUBLAS, env::get,
                k -> k.equals("nanochat4j.cuda.cublas") ? "/opt/x/libcublas.so.13" : null, c -> c.equals("/opt/x/libcublas.so.13") ? fake : null);
        assertEquals("/opt/x/libcublas.so.13", explicit.from());
    }

    /**
     * Where cuBLAS is opened from for a driver of CUDA {@code cudaVersion}, with $CUDA_HOME at tmp/cuda and a Python
     * environment at tmp/venv (a file found is opened; nothing is on the loader path).
     */
    private static String cublasFrom(Path tmp, int cudaVersion) {
        Map<String, String> env = Map.of("CUDA_HOME", tmp.resolve("cuda").toString(), "VIRTUAL_ENV", tmp.resolve("venv").toString());
        SymbolLookup fake = name -> java.util.Optional.empty();
        Function<String, SymbolLookup> files = c -> c.startsWith("/") && Files.exists(Path.of(c)) ? fake : null;
        return CudaLibraries.open(CudaLibraries.CUBLAS, cudaVersion, env::get, k -> null, files).from();
    }

    /** A CUDA 13 cuBLAS fails on a CUDA 12 driver: where both are installed, the driver's major wins, wherever it is. */
    @Test
    void aLibraryTheDriverCanRunComesFirst(@TempDir Path tmp) throws Exception {
        Path cudaHome = Files.createDirectories(tmp.resolve("cuda/lib64"));
        Files.writeString(cudaHome.resolve("libcublas.so.13"), "");
        Path wheel = Files.createDirectories(tmp.resolve("venv/lib64/python3.12/site-packages/nvidia/cublas/lib"));
        Files.writeString(wheel.resolve("libcublas.so.12"), "");
        assertEquals(wheel.resolve("libcublas.so.12").toString(), cublasFrom(tmp, 12080),
                "a CUDA 12.8 driver: the .so.12 in a pip wheel under lib64 before CUDA_HOME's .so.13");
        assertEquals(cudaHome.resolve("libcublas.so.13").toString(), cublasFrom(tmp, 13000),
                "a CUDA 13 driver: the search order as it is");
        assertEquals(cudaHome.resolve("libcublas.so.13").toString(), cublasFrom(tmp, 0),
                "driver version unknown: the search order as it is");
        Files.delete(wheel.resolve("libcublas.so.12"));
        assertEquals(cudaHome.resolve("libcublas.so.13").toString(), cublasFrom(tmp, 12080),
                "nothing the driver runs: what there is (cuBLAS's own error then says why, with Cublas.newerThanDriver)");
        assertEquals(13, CudaLibraries.sonameMajor("libcublas.so.13 (loader path)"));
        assertEquals(-1, CudaLibraries.sonameMajor("/usr/lib/libcublas.so"));
        String hint = Cublas.newerThanDriver(cudaHome.resolve("libcublas.so.13").toString(), 12080);
        assertTrue(hint != null && hint.contains("CUDA 13") && hint.contains("12.8") && hint.contains("-Dnanochat4j.cuda.cublas")
                && hint.contains("libcublas.so.12"), hint);
        assertEquals(null, Cublas.newerThanDriver("libcublas.so.12 (loader path)", 12080));
        assertEquals(null, Cublas.newerThanDriver("libcublas.so.13 (loader path)", 13010));
    }

    /**
     * A CUDA 13 toolkit's unversioned libcublas.so links to its .so.13: on a CUDA 12 driver the .so.12 of a pip wheel
     * found after it comes first; with nothing else, the unversioned one opens under a name that says which it is, so
     * cuBLAS's failure carries the hint.
     */
    @Test
    void anUnversionedNameCountsAsTheLibraryItLinksTo(@TempDir Path tmp) throws Exception {
        Path cudaHome = Files.createDirectories(tmp.resolve("cuda/lib64"));
        Files.writeString(cudaHome.resolve("libcublas.so.13.1.0.3"), "");
        Files.createSymbolicLink(cudaHome.resolve("libcublas.so"), Path.of("libcublas.so.13.1.0.3"));
        Path wheel = Files.createDirectories(tmp.resolve("venv/lib/python3.12/site-packages/nvidia/cublas/lib"));
        Files.writeString(wheel.resolve("libcublas.so.12"), "");
        assertEquals(wheel.resolve("libcublas.so.12").toString(), cublasFrom(tmp, 12080),
                "a CUDA 12.8 driver: the wheel's .so.12, not CUDA_HOME's libcublas.so (a .so.13)");
        String unversioned = cudaHome.resolve("libcublas.so") + " -> libcublas.so.13.1.0.3";
        assertEquals(unversioned, cublasFrom(tmp, 13000), "a CUDA 13 driver");
        Files.delete(wheel.resolve("libcublas.so.12"));
        assertEquals(unversioned, cublasFrom(tmp, 12080),
                "nothing the driver runs: what there is");
        String hint = Cublas.newerThanDriver(unversioned, 12080);
        assertTrue(hint != null && hint.contains("CUDA 13") && hint.contains("libcublas.so.12"), hint);
        assertEquals(13, CudaLibraries.fileMajor(cudaHome.resolve("libcublas.so")));
        assertEquals(-1, CudaLibraries.fileMajor(tmp.resolve("missing/libcublas.so")));
    }

    @Test
    void condaEnvironmentsLibFolderIsSearched(@TempDir Path tmp) throws Exception {
        Path lib = Files.createDirectories(tmp.resolve("env/lib"));
        Files.writeString(lib.resolve("libnvrtc.so.13"), "");
        Map<String, String> env = Map.of("CONDA_PREFIX", tmp.resolve("env").toString());
        SymbolLookup fake = name -> java.util.Optional.empty();
        assertEquals(lib.resolve("libnvrtc.so.13").toString(), CudaLibraries.open(CudaLibraries.NVRTC, env::get, k -> null,
                c -> c.startsWith("/") && Files.exists(Path.of(c)) ? fake : null).from());
    }

    @Test
    void aMissingLibraryIsOneClearLine() {
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class,
                () -> CudaLibraries.open(CudaLibraries.DRIVER, k -> null, k -> null, c -> null));
        String m = e.getMessage();
        assertFalse(m.contains("\n"), m);
        assertTrue(m.contains("libcuda.so.1") && m.contains("-Dnanochat4j.cuda.driver="), m);
        CudaUnavailableException bad = assertThrows(CudaUnavailableException.class,
                () -> CudaLibraries.open(CudaLibraries.NVRTC, k -> null, k -> k.equals("nanochat4j.cuda.nvrtc") ? "/nope/libnvrtc.so" : null, c -> null));
        assertTrue(bad.getMessage().contains("/nope/libnvrtc.so"), bad.getMessage());
    }

    @Test
    void withoutADriverTheCudaBackendSaysWhyAndTheCpuPathKeepsWorking() {
        String why = CudaContext.unavailableReason();
        if (why == null) return; // a GPU machine: the conformance suite covers the backend itself
        assertTrue(why.startsWith("CUDA"), why);
        assertFalse(why.contains("\n"), why);
        assertThrows(CudaUnavailableException.class, CudaBackend::get);
        Tensor y = Backend.cpu().relu2(Tensor.of(new float[] {-1f, 2f}));
        assertEquals(4f, y.getFlat(1));
    }

    @Test
    void outOfMemoryNamesSizesAndTheFlag() {
        CudaOutOfMemoryException e = new CudaOutOfMemoryException(3L << 30, 1L << 30, 141L << 30);
        assertTrue(e.getMessage().contains("3.00 GiB") && e.getMessage().contains("1.00 GiB free") && e.getMessage().contains("--device-batch-size"),
                e.getMessage());
    }

    /** The allocation policy on a full device, with a fake driver: free the cache, retry once, then say the sizes. */
    @Test
    void aFullDeviceFreesTheCacheRetriesOnceThenNamesTheSizes() {
        int[] calls = new int[2];
        long p = CudaContext.allocateOrThrow(1000, 1024, size -> ++calls[0] == 1 ? 0L : 0x7000L, () -> calls[1]++,
                () -> new long[] {0, 0});
        assertEquals(0x7000L, p, "the retry after freeing the cache succeeds");
        assertEquals(2, calls[0]);
        assertEquals(1, calls[1]);
        calls[0] = calls[1] = 0;
        CudaOutOfMemoryException e = assertThrows(CudaOutOfMemoryException.class, () -> CudaContext.allocateOrThrow(6L << 30,
                6L << 30, size -> { calls[0]++; return 0L; }, () -> calls[1]++, () -> new long[] {5L << 29, 141L << 30}));
        assertEquals(2, calls[0], "one retry, not a loop");
        assertEquals(1, calls[1], "the cache freed once");
        assertTrue(e.getMessage().contains("asked for 6.00 GiB") && e.getMessage().contains("2.50 GiB free of 141.00 GiB")
                && e.getMessage().contains("smaller --device-batch-size"), e.getMessage());
    }
}
