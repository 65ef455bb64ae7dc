package nanochat4j.tensor.cpu;

import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs a test class's {@code main} in a child JVM (for JIT settings a running JVM cannot change: -Xint, a
 * recompilation cutoff, …) with this JVM's vector flags passed on ({@code -XX:UseAVX}, {@code -XX:MaxVectorSize},
 * {@code -Dnanochat4j.*}: the width a surefire execution tests at; {@code -XX:+IgnoreUnrecognizedVMOptions} where this
 * JVM has it), and returns what it printed. Other modules'
 * tests take it from this module's test-jar.
 */
public final class ChildJvm {
    private ChildJvm() {}

    /**
     * {@code main}'s output (stdout and stderr); fails when the child runs past {@code timeoutSeconds} or exits non-zero.
     * The classpath is the code sources of {@code main} and {@code alsoFrom} (surefire's own class path may be a
     * manifest-only jar) before this JVM's.
     */
    public static String run(Class<?> main, int timeoutSeconds, List<String> jvmFlags, Class<?>... alsoFrom) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--add-modules=jdk.incubator.vector");
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            // this JVM's vector flags, not surefire's agent or debug options; and IgnoreUnrecognizedVMOptions with them,
            // which lets the avx2 execution's -XX:UseAVX=2 start a JVM on arm64, where the flag does not exist
            if (arg.startsWith("-XX:UseAVX") || arg.startsWith("-XX:MaxVectorSize") || arg.startsWith("-Dnanochat4j.")
                    || arg.equals("-XX:+IgnoreUnrecognizedVMOptions")) {
                cmd.add(arg);
            }
        }
        cmd.addAll(jvmFlags);
        StringBuilder cp = new StringBuilder(codeSource(main));
        for (Class<?> c : alsoFrom) cp.append(java.io.File.pathSeparator).append(codeSource(c));
        cmd.add("-cp");
        cmd.add(cp + java.io.File.pathSeparator + System.getProperty("java.class.path"));
        cmd.add(main.getName());
        Path log = Files.createTempFile("child-jvm", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError(jvmFlags + " child JVM did not finish in " + timeoutSeconds + " s:\n" + Files.readString(log));
            }
            String out = Files.readString(log, StandardCharsets.UTF_8);
            if (p.exitValue() != 0) throw new AssertionError(jvmFlags + " child JVM exited " + p.exitValue() + ":\n" + out);
            return out;
        } finally {
            Files.deleteIfExists(log);
        }
    }

    private static String codeSource(Class<?> c) throws java.net.URISyntaxException {
        return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI()).toString();
    }
}
