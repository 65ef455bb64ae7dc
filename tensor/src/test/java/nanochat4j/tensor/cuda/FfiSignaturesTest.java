package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.File;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The FFM bindings (Driver, Nvrtc, Cublas) without a GPU. A downcall whose descriptor disagrees with the C function
 * (an argument too few, an int where C takes a size_t) crashes or corrupts memory on the GPU machine, and an
 * {@code invokeExact} whose Java types differ from its handle's fails there at the first call: both would show only
 * on a GPU. Here every class binds to a recorder instead of a library:
 * <ul>
 *   <li>each recorded descriptor is checked against its C prototype in CUDA's headers, by ABI class (pointer,
 *       float, or integer of a size, as gcc classifies the header's own types; no library linked), where gcc and
 *       the header are found (the property {@code nanochat4j.cuda.include}, path-separated, then the include folder
 *       beside each place {@link CudaLibraries} looks for the libraries: $CUDA_HOME, /usr/local/cuda, NVIDIA's pip
 *       wheels), skipped with the reason where not;</li>
 *   <li>the enum values the bindings pass or test for (error codes, attributes, cuBLAS's data and compute types)
 *       are checked against the same headers;</li>
 *   <li>every public method runs against handles that return success, so each call site's {@code invokeExact}
 *       matches its descriptor exactly.</li>
 * </ul>
 */
class FfiSignaturesTest {

    /**
     * Records each binding (first name → descriptor; later names, tried where the first is missing, → the first) and
     * hands back a handle of its type that returns 0 / NULL.
     */
    static final class Recorder implements Ffi.Binder {
        final Map<String, FunctionDescriptor> bound = new LinkedHashMap<>();
        final Map<String, String> alternates = new LinkedHashMap<>();

        @Override
        public MethodHandle fn(FunctionDescriptor fd, String... names) {
            bound.put(names[0], fd);
            for (int i = 1; i < names.length; i++) alternates.put(names[i], names[0]);
            return MethodHandles.empty(fd.toMethodType());
        }
    }

    /**
     * A fallback name is bound with its first name's descriptor, but the header check reads only first names: a
     * fallback that is another function (cuBLAS's legacy {@code cublasSgemm}: no handle, scalars by value) would pass
     * unseen. So each one is listed here with why its prototype is the first name's; a new one must be added by hand.
     */
    @Test
    void everyFallbackNameIsTheSameFunctionUnderAnOlderName() {
        Map<String, String> reviewed = Map.of(
                // cuda.h (13.0) #defines cuEventElapsedTime to _v2; cudaTypedefs.h's PFN_cuEventElapsedTime_v2000 and
                // PFN_cuEventElapsedTime_v12080 take the same (float*, CUevent, CUevent): a driver older than 12.8 has the first only
                "cuEventElapsedTime", "cuEventElapsedTime_v2");
        Recorder r = new Recorder();
        new Driver(r, "recorder");
        new Nvrtc(r, "recorder");
        new Cublas.Api(r);
        assertEquals(reviewed, r.alternates);
    }

    // ------------------------------------------------------------------ descriptors against the headers

    @Test
    void driverDescriptorsMatchCudaH(@TempDir Path tmp) throws Exception {
        Recorder r = new Recorder();
        new Driver(r, "recorder");
        assertEquals(37, r.bound.size(), "driver entry points bound: " + r.bound.keySet());
        matchHeader(tmp, "cuda.h", r.bound, Map.ofEntries(
                Map.entry("CUDA_ERROR_OUT_OF_MEMORY", Driver.CUDA_ERROR_OUT_OF_MEMORY),
                Map.entry("CUDA_ERROR_NO_DEVICE", Driver.CUDA_ERROR_NO_DEVICE),
                Map.entry("CUDA_ERROR_INVALID_PTX", Driver.CUDA_ERROR_INVALID_PTX),
                Map.entry("CUDA_ERROR_UNSUPPORTED_PTX_VERSION", Driver.CUDA_ERROR_UNSUPPORTED_PTX_VERSION),
                Map.entry("CUDA_ERROR_STUB_LIBRARY", Driver.CUDA_ERROR_STUB_LIBRARY),
                Map.entry("CUDA_ERROR_SYSTEM_DRIVER_MISMATCH", Driver.CUDA_ERROR_SYSTEM_DRIVER_MISMATCH),
                Map.entry("CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT", Driver.ATTR_MULTIPROCESSOR_COUNT),
                Map.entry("CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE", Driver.ATTR_L2_CACHE_SIZE),
                Map.entry("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR", Driver.ATTR_CC_MAJOR),
                Map.entry("CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR", Driver.ATTR_CC_MINOR),
                Map.entry("CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN", Driver.ATTR_MAX_SHARED_PER_BLOCK_OPTIN),
                Map.entry("CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES", Driver.FUNC_ATTR_MAX_DYNAMIC_SHARED),
                Map.entry("CU_STREAM_CAPTURE_MODE_RELAXED", Driver.STREAM_CAPTURE_MODE_RELAXED),
                Map.entry("CU_JIT_INFO_LOG_BUFFER", Driver.JIT_INFO_LOG_BUFFER),
                Map.entry("CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES", Driver.JIT_INFO_LOG_BUFFER_SIZE_BYTES),
                Map.entry("CU_JIT_ERROR_LOG_BUFFER", Driver.JIT_ERROR_LOG_BUFFER),
                Map.entry("CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES", Driver.JIT_ERROR_LOG_BUFFER_SIZE_BYTES),
                Map.entry("CU_JIT_LOG_VERBOSE", Driver.JIT_LOG_VERBOSE),
                Map.entry("CU_TENSOR_MAP_NUM_QWORDS", (int) Driver.TENSOR_MAP_BYTES / 8),
                Map.entry("CU_TENSOR_MAP_DATA_TYPE_BFLOAT16", Driver.TENSOR_MAP_BFLOAT16),
                Map.entry("CU_TENSOR_MAP_SWIZZLE_128B", Driver.TENSOR_MAP_SWIZZLE_128B),
                Map.entry("CU_TENSOR_MAP_L2_PROMOTION_L2_256B", Driver.TENSOR_MAP_L2_256B)));
    }

    @Test
    void nvrtcDescriptorsMatchNvrtcH(@TempDir Path tmp) throws Exception {
        Recorder r = new Recorder();
        new Nvrtc(r, "recorder");
        assertEquals(11, r.bound.size(), "NVRTC entry points bound: " + r.bound.keySet());
        matchHeader(tmp, "nvrtc.h", r.bound, Map.of());
    }

    @Test
    void cublasDescriptorsMatchCublasApiH(@TempDir Path tmp) throws Exception {
        Recorder r = new Recorder();
        new Cublas.Api(r);
        assertEquals(8, r.bound.size(), "cuBLAS entry points bound: " + r.bound.keySet());
        matchHeader(tmp, "cublas_api.h", r.bound, Map.of("CUBLAS_OP_N", Cublas.OP_N, "CUBLAS_OP_T", Cublas.OP_T,
                "CUDA_R_32F", Cublas.R_32F, "CUDA_R_16BF", Cublas.R_16BF, "CUBLAS_COMPUTE_32F", Cublas.COMPUTE_32F,
                "CUBLAS_COMPUTE_32F_FAST_TF32", Cublas.COMPUTE_32F_FAST_TF32, "CUBLAS_GEMM_DEFAULT", Cublas.GEMM_DEFAULT));
    }

    /** Prints the ABI class of a C expression's type: P pointer, F/D float/double, B/S/I/J integers of 1/2/4/8 bytes. */
    private static final String C_PRELUDE = """
            #include <stdio.h>
            static char cls(int k, unsigned long size) {
                if (k == 5) return 'P'; /* gcc's pointer_type_class */
                if (k == 8) return size == 4 ? 'F' : 'D'; /* real_type_class */
                if (k >= 1 && k <= 4) return size == 8 ? 'J' : size == 4 ? 'I' : size == 2 ? 'S' : 'B'; /* integer, char, enum, bool */
                return k == 0 ? 'V' : '?';
            }
            #define CLS(e) cls(__builtin_classify_type(e), sizeof(e))
            """;

    /**
     * Reads each bound function's prototype in {@code header} (preprocessed as C, so no C++ convenience overloads),
     * and has gcc print it as ABI classes: every parameter type by {@code __builtin_classify_type} and size, the
     * return type from a call with those types (which also fails to compile where the parameters were misread).
     * Compares with the descriptors. Allowed differences: a 64-bit integer for a pointer (device addresses are longs,
     * and cuBLAS's operands are device pointers: the same register either way), and an int for a char or short (the
     * callee reads the low bits of the same register).
     */
    private static void matchHeader(Path tmp, String header, Map<String, FunctionDescriptor> bound,
            Map<String, Integer> constants) throws Exception {
        String gcc = KernelCompileTest.onPath("gcc");
        Assumptions.assumeTrue(gcc != null, "gcc not on the PATH: " + header + " prototypes not checked");
        List<Path> dirs = includeDirs();
        Assumptions.assumeTrue(dirs.stream().anyMatch(d -> Files.isRegularFile(d.resolve(header))),
                header + " not found in " + dirs + " (set -Dnanochat4j.cuda.include=DIR): its prototypes not checked");
        List<String> includes = dirs.stream().map(d -> "-I" + d).toList();
        Path inc = tmp.resolve("inc.c"), pre = tmp.resolve("inc.i");
        Files.writeString(inc, "#include <" + header + ">\n");
        List<String> cmd = new ArrayList<>(List.of(gcc, "-E", "-P", "-x", "c", "-o", pre.toString()));
        cmd.addAll(includes);
        cmd.add(inc.toString());
        String out = KernelCompileTest.run(cmd, tmp);
        assertTrue(Files.isRegularFile(pre), "gcc could not preprocess " + header + ":\n" + out);
        String text = Files.readString(pre);
        StringBuilder src = new StringBuilder("#include <" + header + ">\n").append(C_PRELUDE).append("int main(void) {\n");
        for (String name : bound.keySet()) {
            List<String> params = parameterTypes(text, name);
            assertTrue(params != null, header + " declares no " + name);
            StringBuilder call = new StringBuilder(name).append('(');
            for (int i = 0; i < params.size(); i++) call.append(i == 0 ? "" : ", ").append("*(").append(params.get(i)).append(" *) 0");
            call.append(')');
            src.append("    printf(\"%s %c\", \"").append(name).append("\", CLS(").append(call).append("));\n");
            for (String t : params) src.append("    putchar(CLS(*(").append(t).append(" *) 0));\n");
            src.append("    putchar('\\n');\n");
        }
        for (String k : constants.keySet()) src.append("    printf(\"= ").append(k).append(" %d\\n\", (int) ").append(k).append(");\n");
        src.append("    return 0;\n}\n");
        Path c = tmp.resolve("sig.c"), exe = tmp.resolve("sig");
        Files.writeString(c, src);
        cmd = new ArrayList<>(List.of(gcc, "-std=gnu11", "-o", exe.toString()));
        cmd.addAll(includes);
        cmd.add(c.toString());
        out = KernelCompileTest.run(cmd, tmp);
        assertTrue(Files.isExecutable(exe), "gcc could not compile the prototypes read from " + header + ":\n" + out);
        Map<String, String> proto = new LinkedHashMap<>(), value = new LinkedHashMap<>();
        for (String line : KernelCompileTest.run(List.of(exe.toString()), tmp).split("\n")) {
            String[] f = line.trim().split(" ");
            if (f.length == 2) proto.put(f[0], f[1]);
            if (f.length == 3 && f[0].equals("=")) value.put(f[1], f[2]);
        }
        List<String> wrong = new ArrayList<>();
        for (var e : constants.entrySet()) {
            if (!String.valueOf(e.getValue()).equals(value.get(e.getKey()))) {
                wrong.add(e.getKey() + ": ours " + e.getValue() + ", the header's " + value.get(e.getKey()));
            }
        }
        for (var e : bound.entrySet()) {
            String java = classes(e.getValue()), cp = proto.get(e.getKey());
            if (cp == null || !compatible(java, cp)) wrong.add(e.getKey() + ": descriptor " + java + ", C prototype " + cp);
        }
        if (!wrong.isEmpty()) {
            fail("descriptors (return class, then one per argument) and constants that disagree with " + header + ":\n  "
                    + String.join("\n  ", wrong));
        }
    }

    /**
     * The parameter types of {@code name}'s declaration in preprocessed C (each parameter without its name), or null
     * where there is none. Skips mentions that are not a declaration (a pointer typedef's {@code (*name)}).
     */
    static List<String> parameterTypes(String text, String name) {
        Matcher m = Pattern.compile("(?<!\\w)" + Pattern.quote(name) + "\\s*\\(").matcher(text);
        while (m.find()) {
            String before = text.substring(Math.max(0, m.start() - 80), m.start()).stripTrailing();
            if (before.endsWith("*") && before.substring(0, before.length() - 1).stripTrailing().endsWith("(")) continue;
            int depth = 1, i = m.end();
            while (i < text.length() && depth > 0) {
                char ch = text.charAt(i++);
                if (ch == '(') depth++;
                else if (ch == ')') depth--;
            }
            String inside = text.substring(m.end(), i - 1).replaceAll("\\s+", " ").trim();
            if (!text.substring(i).stripLeading().startsWith(";") && !text.substring(i).stripLeading().startsWith("__attribute__")) continue;
            List<String> types = new ArrayList<>();
            if (inside.isEmpty() || inside.equals("void")) return types;
            for (String p : inside.split(",")) {
                // "const char * const * headers" -> "const char * const *": the last identifier is the parameter's name
                Matcher last = Pattern.compile("^(.*?[\\w*\\s])\\s*([A-Za-z_]\\w*)$").matcher(p.trim());
                types.add(last.matches() && !last.group(1).isBlank() ? last.group(1).trim() : p.trim());
            }
            return types;
        }
        return null;
    }

    static boolean compatible(String java, String c) {
        if (java.length() != c.length()) return false;
        for (int i = 0; i < java.length(); i++) {
            char j = java.charAt(i), k = c.charAt(i);
            boolean ok = j == k || (j == 'J' && k == 'P') || (j == 'I' && (k == 'B' || k == 'S'));
            if (!ok) return false;
        }
        return true;
    }

    /** "I" + one letter per argument, as {@link #C_PRELUDE} prints a prototype ('V' for a void return). */
    static String classes(FunctionDescriptor fd) {
        StringBuilder s = new StringBuilder(fd.returnLayout().map(FfiSignaturesTest::cls).orElse("V"));
        for (MemoryLayout a : fd.argumentLayouts()) s.append(cls(a));
        return s.toString();
    }

    private static String cls(MemoryLayout l) {
        if (l instanceof ValueLayout.OfInt) return "I";
        if (l instanceof ValueLayout.OfLong) return "J";
        if (l instanceof ValueLayout.OfFloat) return "F";
        if (l instanceof ValueLayout.OfDouble) return "D";
        if (l instanceof java.lang.foreign.AddressLayout) return "P";
        return "?" + l;
    }

    @Test
    void theComparisonCatchesWhatWouldCrashOnTheGpu() {
        assertTrue(compatible("IPJ", "IPJ"));
        assertTrue(compatible("IJJP", "IJPP"), "a device pointer passed as a long");
        assertTrue(compatible("IJIJP", "IJBJP"), "cuMemsetD8's unsigned char passed as an int");
        assertTrue(!compatible("IPI", "IPJ"), "an int where C takes a size_t");
        assertTrue(!compatible("IPJ", "IPJI"), "an argument too few");
        assertTrue(!compatible("IPJ", "IP"), "an argument too many");
        assertTrue(!compatible("IF", "II"), "a float where C takes an int");
        assertTrue(!compatible("IP", "IJ"), "a pointer where C takes a 64-bit integer is not allowed (only the reverse)");
        assertEquals("IPJ", classes(FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG)));
    }

    /** The property's folders, then the include folder beside each folder CudaLibraries searches for the libraries. */
    private static List<Path> includeDirs() {
        List<Path> dirs = new ArrayList<>();
        String prop = System.getProperty("nanochat4j.cuda.include");
        if (prop != null) for (String d : prop.split(File.pathSeparator)) if (!d.isBlank()) dirs.add(Path.of(d));
        for (Path lib : CudaLibraries.searchDirs(System::getenv, System.getProperties()::getProperty)) {
            dirs.add(lib.resolveSibling("include")); // $CUDA_HOME/include, /usr/local/cuda/include, nvidia/<wheel>/include
        }
        return dirs.stream().filter(Files::isDirectory).distinct().toList();
    }

    // ------------------------------------------------------------------ every call site against its handle

    @Test
    void everyDriverCallSiteMatchesItsHandle() {
        Driver d = new Driver(new Recorder(), "recorder");
        d.init();
        assertEquals(0, d.driverVersion());
        assertEquals(0, d.deviceCount());
        assertEquals(0, d.device(0));
        d.deviceName(0);
        assertEquals(0, d.attribute(0, Driver.ATTR_CC_MAJOR));
        MemorySegment ctx = d.primaryContext(0);
        d.setCurrent(ctx);
        assertEquals(0L, d.allocOrZero(1 << 20));
        d.free(0L);
        assertArrayEquals(new long[] {0L, 0L}, d.memoryInfo());
        try (Arena a = Arena.ofConfined()) {
            MemorySegment host = a.allocate(64);
            MemorySegment stream = d.streamCreate();
            d.copyHtoDAsync(0L, host, 64, stream);
            d.copyDtoHAsync(host, 0L, 64, stream);
            d.copyDtoDAsync(0L, 0L, 64, stream);
            d.memsetAsync(0L, 0, 64, stream);
            d.memsetAsync(0L, 0xFF, 64, stream);
            d.memsetAsync(0L, 0x7F7F7F7F, 64, stream);
            d.streamSynchronize(stream);
            MemorySegment e0 = d.eventCreate(), e1 = d.eventCreate();
            d.eventRecord(e0, stream);
            d.eventRecord(e1, stream);
            d.eventSynchronize(e1);
            assertEquals(0f, d.eventElapsedMs(e0, e1));
            d.eventDestroy(e0);
            d.eventDestroy(e1);
            Driver.Loaded module = d.moduleLoad(a.allocateFrom("ptx"));
            assertEquals(0, module.result());
            assertEquals("", module.infoLog());
            MemorySegment fn = d.function(module.module(), "k");
            d.functionAttribute(fn, Driver.FUNC_ATTR_MAX_DYNAMIC_SHARED, 1 << 16, "k");
            d.launch("k", fn, 1, 1, 1, 32, 1, 1, 0, stream, a.allocate(ValueLayout.ADDRESS, 2));
            d.streamDestroy(stream);
        }
        d.check("cuInit", 0);
        // describe swallows a failed call and says "CUresult 2"; the recorder's handles succeed with NULL names
        assertEquals(" ()", d.describe(2), "cuGetErrorName / cuGetErrorString called as bound");
    }

    @Test
    void everyNvrtcCallSiteMatchesItsHandle() {
        Nvrtc n = new Nvrtc(new Recorder(), "recorder");
        assertEquals("0.0", n.version());
        n.compile("k", "extern \"C\" __global__ void k() {}", List.of("--gpu-architecture=compute_90a"), false);
        n.compile("k", "extern \"C\" __global__ void k() {}", List.of("--gpu-architecture=sm_90a"), true);
    }

    @Test
    void everyCublasCallSiteMatchesItsHandle() {
        try (Cublas b = new Cublas(new Cublas.Api(new Recorder()), MemorySegment.NULL, Cublas.OutOfMemory.NONE)) {
            b.sgemm(Cublas.OP_N, Cublas.OP_T, 4, 4, 4, 1f, 0L, 4, 0L, 4, 0f, 0L, 4);
            b.sgemmStridedBatched(Cublas.OP_N, Cublas.OP_N, 4, 4, 4, 1f, 0L, 4, 16L, 0L, 4, 16L, 0f, 0L, 4, 16L, 2);
            b.gemmEx(Cublas.OP_T, Cublas.OP_N, 4, 4, 4, 1f, 0L, Cublas.R_16BF, 4, 0L, Cublas.R_16BF, 4, 0f, 0L, Cublas.R_32F, 4,
                    Cublas.COMPUTE_32F);
            b.gemmStridedBatchedEx(Cublas.OP_N, Cublas.OP_N, 4, 4, 4, 1f, 0L, Cublas.R_16BF, 4, 16L, 0L, Cublas.R_16BF, 4, 16L,
                    0f, 0L, Cublas.R_32F, 4, 16L, 2, Cublas.COMPUTE_32F);
        }
    }
}
