package nanochat4j.tensor.cuda;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * The kernel sources shipped as resources under {@code nanochat4j/cuda/}. NVRTC gets no include path, so a local
 * {@code #include "x.cuh"} is replaced by that resource's text (once) before compiling.
 */
public final class KernelSources {
    /** Every .cu source, for the compile test and the GPU check. */
    public static final List<String> ALL = List.of("elementwise", "reduce", "norm", "embedding", "crossentropy", "attention",
            "attention_tc_fwd", "attention_tc_bwd", "attention_wgmma", "optim", "gemm", "gemm_wgmma");
    private static final Pattern INCLUDE = Pattern.compile("(?m)^#include \"([A-Za-z0-9_]+\\.cuh)\"\\s*$");

    private KernelSources() {}

    /** The raw resource text of {@code file} (e.g. "attention.cu"). */
    public static String raw(String file) {
        try (InputStream in = KernelSources.class.getResourceAsStream("/nanochat4j/cuda/" + file)) {
            if (in == null) throw new IllegalStateException("kernel source nanochat4j/cuda/" + file + " missing from the classpath (broken jar?)");
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read kernel source nanochat4j/cuda/" + file + ": " + e.getMessage(), e);
        }
    }

    /** {@code name}.cu with its local includes inlined: one self-contained translation unit. */
    public static String source(String name) {
        String src = raw(name + ".cu");
        Matcher m = INCLUDE.matcher(src);
        StringBuilder sb = new StringBuilder();
        while (m.find()) m.appendReplacement(sb, Matcher.quoteReplacement(raw(m.group(1))));
        m.appendTail(sb);
        return sb.toString();
    }
}
