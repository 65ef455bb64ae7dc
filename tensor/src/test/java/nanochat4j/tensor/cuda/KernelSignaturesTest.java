package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.KernelSignatures.Kind;
import nanochat4j.tensor.cuda.KernelSignatures.Param;
import org.junit.jupiter.api.Test;

/**
 * The launch checks that stand in for a GPU here: every kernel's parameter list parses, and every
 * {@code launch("kernel", grid…, args…)} in the backend's source passes as many arguments as the kernel takes — the
 * mistake a merge or a signature change makes silently, which cuLaunchKernel would not catch either.
 */
class KernelSignaturesTest {

    private static Map<String, List<Param>> allKernels() {
        Map<String, List<Param>> all = new HashMap<>();
        for (String name : KernelSources.ALL) {
            Map<String, List<Param>> k = KernelSignatures.parse(KernelSources.source(name));
            assertFalse(k.isEmpty(), name + ".cu has extern \"C\" kernels");
            for (var e : k.entrySet()) {
                List<Param> before = all.put(e.getKey(), e.getValue());
                assertTrue(before == null || before.equals(e.getValue()), "kernel " + e.getKey() + " declared twice differently");
            }
        }
        return all;
    }

    @Test
    void parsesPointersScalarsStructsAndLaunchBounds() {
        String src = """
                // a comment with extern "C" __global__ void fake(int x)
                struct Bcast { int rank; };
                extern "C" __global__ void __launch_bounds__(ROWS * 32)
                k1(const float* __restrict__ x, int n, float s, double d, long long big,
                   const __grid_constant__ Bcast b, unsigned short* __restrict__ y) {}
                extern "C" __global__ void k2() {}
                extern "C" __global__ void __launch_bounds__(ROWS * 32, 1024 / (ROWS * 32)) k3(float* y, int n) {}
                """;
        Map<String, List<Param>> k = KernelSignatures.parse(src);
        assertEquals(List.of("k1", "k2", "k3"), List.copyOf(k.keySet()));
        assertEquals(List.of(Kind.POINTER, Kind.INT), k.get("k3").stream().map(Param::kind).toList(), "bounds with nested parentheses");
        assertEquals(List.of(Kind.POINTER, Kind.INT, Kind.FLOAT, Kind.DOUBLE, Kind.LONG, Kind.STRUCT, Kind.POINTER),
                k.get("k1").stream().map(Param::kind).toList());
        assertEquals(List.of(), k.get("k2"));
    }

    @Test
    void aLaunchWithTheWrongCountOrTypeNamesTheKernelAndTheArgument() {
        List<Param> ps = KernelSignatures.parse("extern \"C\" __global__ void f(const float* x, int n, float s) {}").get("f");
        KernelSignatures.check("f", ps, new Object[] {1L, 2, 3f});
        var count = assertThrows(IllegalArgumentException.class, () -> KernelSignatures.check("f", ps, new Object[] {1L, 2}));
        assertTrue(count.getMessage().contains("kernel f takes 3 arguments") && count.getMessage().contains("passed 2"), count.getMessage());
        var type = assertThrows(IllegalArgumentException.class, () -> KernelSignatures.check("f", ps, new Object[] {1L, 2L, 3f}));
        assertTrue(type.getMessage().contains("argument 1 (int n) needs a Java Integer") && type.getMessage().contains("Long 2"), type.getMessage());
        assertThrows(IllegalArgumentException.class, () -> KernelSignatures.check("f", ps, new Object[] {1, 2, 3f}), "an int where a pointer goes");
        // a pointer also takes the tensor it points into (launch keeps it reachable), an integer never does
        Tensor t = Tensor.zeros(2);
        KernelSignatures.check("f", ps, new Object[] {t, 2, 3f});
        KernelSignatures.check("f", ps, new Object[] {new DevicePtr(t, 4), 2, 3f});
        var tensorAsInt = assertThrows(IllegalArgumentException.class, () -> KernelSignatures.check("f", ps, new Object[] {t, t, 3f}));
        assertTrue(tensorAsInt.getMessage().contains("argument 1 (int n) needs a Java Integer"), tensorAsInt.getMessage());
        List<Param> st = KernelSignatures.parse("extern \"C\" __global__ void g(const __grid_constant__ S s) {}").get("g");
        KernelSignatures.check("g", st, new Object[] {MemorySegment.ofArray(new byte[4])});
    }

    @Test
    void everyKernelOfEverySourceParses() {
        Map<String, List<Param>> all = allKernels();
        assertTrue(all.size() >= 25, "kernels found: " + all.keySet());
        assertEquals(List.of(Kind.POINTER, Kind.INT, Kind.INT, Kind.POINTER, Kind.FLOAT, Kind.FLOAT, Kind.POINTER, Kind.POINTER, Kind.POINTER, Kind.POINTER,
                        Kind.INT),
                all.get("softcap_ce").stream().map(Param::kind).toList(), "softcap_ce as declared in crossentropy.cu");
    }

    /** launch("name", gx, gy, gz, block, shared, args…) in the main sources that launch kernels. */
    private static final Pattern LAUNCH = Pattern.compile("\\.launch\\(\"(\\w+)\",");

    @Test
    void everyLaunchInTheBackendPassesAsManyArgumentsAsItsKernelTakes() throws IOException {
        Map<String, List<Param>> all = allKernels();
        Path dir = Path.of("src/main/java/nanochat4j/tensor/cuda");
        assertTrue(Files.isDirectory(dir), "run from the tensor module: " + dir.toAbsolutePath());
        int checked = 0, typed = 0;
        List<String> wrong = new ArrayList<>();
        try (var files = Files.list(dir)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".java")).toList()) {
                String src = Files.readString(f);
                Matcher m = LAUNCH.matcher(src);
                while (m.find()) {
                    String kernel = m.group(1);
                    List<String> args = arguments(src, m.start() + ".launch".length());
                    List<Param> params = all.get(kernel);
                    int line = (int) src.substring(0, m.start()).chars().filter(c -> c == '\n').count() + 1;
                    if (params == null) {
                        wrong.add(f.getFileName() + ":" + line + " launches " + kernel + ", which no .cu source declares");
                    } else if (args.size() - 6 != params.size()) {
                        wrong.add(f.getFileName() + ":" + line + " passes " + (args.size() - 6) + " arguments to " + kernel + ", which takes "
                                + params.size() + " " + params.stream().map(Param::declaration).toList());
                    } else {
                        for (int i = 0; i < params.size(); i++) {
                            String javaType = javaType(args.get(6 + i), src.substring(0, m.start()));
                            String wants = switch (params.get(i).kind()) {
                                case POINTER -> javaType != null && javaType.equals("pointer") ? "pointer" : "long";
                                case LONG -> "long";
                                case INT -> "int";
                                case FLOAT -> "float";
                                case DOUBLE -> "double";
                                case STRUCT -> null;
                            };
                            if (javaType != null && wants != null && !javaType.equals(wants)) {
                                wrong.add(f.getFileName() + ":" + line + " passes a " + javaType + " (" + args.get(6 + i) + ") as " + kernel
                                        + "'s " + params.get(i).declaration());
                            }
                            if (javaType != null) typed++;
                        }
                    }
                    checked++;
                }
            }
        }
        assertTrue(wrong.isEmpty(), String.join("\n", wrong));
        assertTrue(checked >= 30, "launch sites found: " + checked);
        assertTrue(typed >= 100, "arguments whose Java type the check could tell: " + typed);
    }

    private static final Pattern NAME = Pattern.compile("[A-Za-z_]\\w*");

    /**
     * The primitive type a launch argument has in Java, where the text tells it (null otherwise): literals by their
     * suffix, casts, the backend's address helper {@code p(…)}, int-valued tensor accessors, and a plain name by its
     * nearest declaration before the call. Boxed, a long and an int differ: cuLaunchKernel would read either's bytes.
     */
    static String javaType(String arg, String before) {
        String a = arg.strip();
        if (a.matches("-?\\d+L")) return "long";
        if (a.matches("-?\\d+")) return "int";
        if (a.matches("-?[\\d.]+f")) return "float";
        if (a.startsWith("(long)")) return "long";
        if (a.startsWith("(int)")) return "int";
        if (a.matches("p\\([^()]*\\)") || a.matches("p\\([^()]*\\)\\s*\\+.*") || a.endsWith(".address()")) return "long";
        if (a.matches("\\w+\\.(numel|cols|rows)\\(\\)") || a.matches("\\w+\\.shape\\(\\d+\\)")) return "int";
        if (a.startsWith("new DevicePtr(")) return "pointer";
        if (!NAME.matcher(a).matches()) return null;
        Matcher d = Pattern.compile("\\b(int|long|float|double|Tensor|DevicePtr|CudaContext\\.Memory)\\s+(?:\\w+\\s*=(?:[^,;()]|\\([^()]*\\))*,\\s*)*"
                + a + "\\b").matcher(before);
        String type = null;
        while (d.find()) type = d.group(1);   // the nearest declaration before the call
        // a tensor (or memory) passed whole: launch takes its address and keeps it reachable
        return type == null || Character.isLowerCase(type.charAt(0)) ? type : "pointer";
    }

    @Test
    void javaTypesOfLaunchArgumentsAreReadFromTheText() {
        assertEquals("long", javaType("0L", ""));
        assertEquals("int", javaType("x.numel()", ""));
        assertEquals("long", javaType("p(y) + 4L * r0", ""));
        assertEquals("long", javaType("n", "void f(long src, long n) {"));
        assertEquals("int", javaType("n", "long n = 3; int k; int n = 2;"));
        assertEquals("float", javaType("scale", "float scale, int w"));
        assertEquals(null, javaType("a ? b : c", ""));
        assertEquals("pointer", javaType("y", "Tensor x = f(), y = g();"));
        assertEquals("pointer", javaType("new DevicePtr(loss, 4L * r0)", ""));
    }

    /** The top-level comma-separated arguments of the call whose '(' is at {@code open}. */
    private static List<String> arguments(String src, int open) {
        assertEquals('(', src.charAt(open), "a call's parenthesis at " + open);
        List<String> args = new ArrayList<>();
        int depth = 0, start = open + 1;
        boolean inString = false;
        for (int i = open; i < src.length(); i++) {
            char c = src.charAt(i);
            if (inString) {
                if (c == '\\') i++;
                else if (c == '"') inString = false;
                continue;
            }
            switch (c) {
                case '"' -> inString = true;
                case '(', '[', '{' -> depth++;
                case ')', ']', '}' -> {
                    depth--;
                    if (depth == 0) {
                        args.add(src.substring(start, i).strip());
                        return args;
                    }
                }
                case ',' -> {
                    if (depth == 1) {
                        args.add(src.substring(start, i).strip());
                        start = i + 1;
                    }
                }
                default -> { }
            }
        }
        throw new AssertionError("unclosed call at " + open);
    }
}
