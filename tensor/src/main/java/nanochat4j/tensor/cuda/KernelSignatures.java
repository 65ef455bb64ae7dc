package nanochat4j.tensor.cuda;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Tensor;

/**
 * The parameter lists of a CUDA source's {@code extern "C" __global__} kernels, read from the source text, so a
 * launch can be checked against them before it reaches the driver. cuLaunchKernel takes an untyped array of
 * argument pointers: a missing argument, or an {@code int} passed where the kernel reads a pointer, is not an
 * error there but a wrong result or an illegal address later. Checked here, it is a message naming the kernel and
 * the argument.
 */
public final class KernelSignatures {
    /**
     * What one kernel parameter takes from Java: the boxed type {@link CudaContext.Module#launch} marshals; a pointer
     * also takes the {@link Tensor}, {@link DevicePtr} or {@link DeviceStorage} it points into.
     */
    public enum Kind {
        POINTER(Long.class), INT(Integer.class), LONG(Long.class), FLOAT(Float.class), DOUBLE(Double.class), STRUCT(MemorySegment.class);

        final Class<?> java;

        Kind(Class<?> java) {
            this.java = java;
        }

        boolean accepts(Object arg) {
            return java.isInstance(arg) || this == POINTER && (arg instanceof Tensor || arg instanceof DevicePtr || arg instanceof DeviceStorage);
        }

        String wants() {
            return this == POINTER ? "Tensor, DevicePtr, DeviceStorage or Long address" : java.getSimpleName();
        }
    }

    /** One parameter: its declaration as written and its kind. */
    public record Param(String declaration, Kind kind) {}

    private static final Pattern KERNEL = Pattern.compile(
            "extern\\s+\"C\"\\s+__global__\\s+void\\s+(?:__launch_bounds__\\s*\\((?:[^()]|\\([^()]*\\))*\\)\\s+)?(\\w+)\\s*\\(([^)]*)\\)");
    private static final Pattern WORD = Pattern.compile("[A-Za-z_]\\w*");

    private KernelSignatures() {}

    /** Every extern "C" kernel of {@code source} (comments removed first), by name, in source order. */
    public static Map<String, List<Param>> parse(String source) {
        String code = source.replaceAll("(?s)/\\*.*?\\*/", " ").replaceAll("//[^\\n]*", " ");
        Map<String, List<Param>> kernels = new LinkedHashMap<>();
        Matcher m = KERNEL.matcher(code);
        while (m.find()) {
            List<Param> params = new ArrayList<>();
            String list = m.group(2).strip();
            if (!list.isEmpty() && !list.equals("void")) {
                for (String p : list.split(",")) params.add(new Param(p.strip().replaceAll("\\s+", " "), kind(p, m.group(1))));
            }
            kernels.put(m.group(1), List.copyOf(params));
        }
        return kernels;
    }

    /** The kind of a declaration such as {@code const float* __restrict__ x} or {@code const __grid_constant__ Bcast s}. */
    static Kind kind(String declaration, String kernel) {
        if (declaration.contains("*")) return Kind.POINTER;
        List<String> words = new ArrayList<>();
        Matcher w = WORD.matcher(declaration);
        while (w.find()) {
            String t = w.group();
            if (!t.equals("const") && !t.equals("__restrict__") && !t.equals("__grid_constant__") && !t.equals("volatile")) words.add(t);
        }
        if (words.size() < 2) throw new IllegalArgumentException("kernel " + kernel + ": cannot read the parameter '" + declaration.strip() + "'");
        String type = String.join(" ", words.subList(0, words.size() - 1)); // the last word is the name
        return switch (type) {
            case "int", "unsigned", "unsigned int", "int32_t", "uint32_t" -> Kind.INT;
            case "long long", "unsigned long long", "long long int", "int64_t", "uint64_t", "size_t" -> Kind.LONG;
            case "float" -> Kind.FLOAT;
            case "double" -> Kind.DOUBLE;
            default -> Kind.STRUCT; // a struct passed by value (its bytes in a MemorySegment)
        };
    }

    /**
     * Throws, naming the kernel and the argument, unless {@code args} has one value of the right boxed type per
     * parameter of {@code params}.
     */
    public static void check(String kernel, List<Param> params, Object[] args) {
        if (args.length != params.size()) {
            throw new IllegalArgumentException("kernel " + kernel + " takes " + params.size() + " arguments " + params.stream().map(Param::declaration).toList()
                    + ", the launch passed " + args.length);
        }
        for (int i = 0; i < args.length; i++) {
            Param p = params.get(i);
            if (args[i] == null || !p.kind().accepts(args[i])) {
                throw new IllegalArgumentException("kernel " + kernel + ": argument " + i + " (" + p.declaration() + ") needs a Java "
                        + p.kind().wants() + ", the launch passed " + (args[i] == null ? "null" : args[i].getClass().getSimpleName() + " " + args[i]));
            }
        }
    }
}
