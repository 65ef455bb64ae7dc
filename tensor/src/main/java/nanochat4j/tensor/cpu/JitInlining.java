package nanochat4j.tensor.cpu;

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import javax.management.ObjectName;

/**
 * Tells C2 to inline the per-row and per-range kernels that the parallel ops share with the decoder into their
 * callers (and to keep a few vector loops out of theirs, {@link #NOT_INLINED}), in every JVM that runs the CPU
 * kernels (the launcher, tests, JMH, an application embedding the library).
 *
 * <p>Why: each of these methods runs a long vector loop per call and is called only a few hundred times per training
 * step, so C2 compiles it on its own first (from its loop's back-edges) and afterwards refuses to inline that
 * compiled code into the parallel ops' lambdas ("already compiled into a big method"). The forward's elementwise ops
 * then ran several times slower (docs/BENCHMARKS.md). A compiler directive, added through the HotSpot diagnostic
 * command {@code Compiler.directives_add} before any kernel is compiled, forces the inlining; it changes no result,
 * only the code C2 emits. Without {@code java.management} (a runtime linked without it) or on a JVM without the
 * command, the kernels still run, slower, and one line on stderr says so.
 */
final class JitInlining {
    private JitInlining() {}

    /** Methods forced inline, in the directive syntax (package/Class.method, {@code *} at either end). */
    static final List<String> METHODS = List.of(
            "nanochat4j/tensor/cpu/Elementwise.*Range",
            "nanochat4j/tensor/cpu/RmsNorm.row",
            "nanochat4j/tensor/cpu/Rotary.head",
            "nanochat4j/tensor/cpu/Broadcast.row",
            // Vector helpers (exp, tanh, sum, …): left out of a kernel they pass their vectors as boxed objects, a
            // heap allocation per call (18 GB over one CE phase of bench kernels, docs/BENCHMARKS.md).
            "nanochat4j/tensor/cpu/VecMath.*");

    /**
     * Methods never inlined: vector loops whose caller, compiled with them, reaches C2's inlining node limit
     * ({@code NodeCountInliningCutoff}, a fixed 18,000 nodes): the vector helpers left over then run on boxed
     * vectors. On their own each compiles with every helper inlined; nothing crosses the call but scalars and arrays.
     */
    static final List<String> NOT_INLINED = List.of(
            "nanochat4j/tensor/cpu/CrossEntropy.cappedQ",
            "nanochat4j/tensor/cpu/CrossEntropy.cappedE",
            "nanochat4j/tensor/cpu/CrossEntropy.cappedGrads");

    private static volatile boolean registered;

    /** Whether the directive was added to this JVM. */
    static boolean registered() {
        return registered;
    }

    static synchronized void register() {
        if (registered || Boolean.getBoolean("nanochat4j.noInlineDirective")) return;
        try {
            Path file = Files.createTempFile("nanochat4j-inline", ".json");
            try {
                Files.writeString(file, directive());
                var server = ManagementFactory.getPlatformMBeanServer();
                Object reply = server.invoke(new ObjectName("com.sun.management:type=DiagnosticCommand"),
                        "compilerDirectivesAdd", new Object[] {new String[] {file.toString()}},
                        new String[] {String[].class.getName()});
                if (!String.valueOf(reply).contains("1 compiler directives added")) {
                    throw new IllegalStateException(String.valueOf(reply).strip());
                }
                registered = true;
            } finally {
                Files.deleteIfExists(file);
            }
        } catch (Exception | LinkageError e) {
            System.err.println("nanochat4j: could not add the C2 inline directive for the CPU kernels (" + e
                    + "); they run correctly but may be several times slower");
        }
    }

    /** Applies to compilations rooted in our own code only, so nothing else in the JVM is affected. */
    static String directive() {
        StringBuilder inline = new StringBuilder();
        for (String m : METHODS) inline.append(inline.isEmpty() ? "" : ", ").append("\"+").append(m).append('"');
        for (String m : NOT_INLINED) inline.append(", \"-").append(m).append('"');
        return "[{ match: \"nanochat4j/*.*\", c2: { inline: [" + inline + "] } }]";
    }
}
