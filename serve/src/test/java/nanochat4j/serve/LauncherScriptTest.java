package nanochat4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.core.io.JsonStringEncoder;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.netty.channel.Channel;
import io.netty.handler.codec.http.HttpServerCodec;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import nanochat4j.serve.web.ChatServer;
import org.junit.jupiter.api.Test;

/**
 * The launcher refuses an explicitly chosen JDK older than 25 at once, with a message naming the fix; it has the JIT
 * compile the serving code early, in packages that still exist; it asks for huge pages only where the kernel has them.
 */
class LauncherScriptTest {
    private static final Path LAUNCHER = Path.of("..").toAbsolutePath().normalize().resolve("nanochat4j");

    @Test
    void oldJdkInJavaHomeFailsFastWithAOneLineFix() throws Exception {
        Path jdk17 = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
        assumeTrue(Files.isExecutable(LAUNCHER), "skipped: launcher not found at " + LAUNCHER);
        assumeTrue(Files.isExecutable(jdk17.resolve("bin/java")), "skipped: no JDK 17 at " + jdk17 + " to test with");
        ProcessBuilder pb = new ProcessBuilder("bash", LAUNCHER.toString(), "--help").redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", jdk17.toString());
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "launcher must fail fast, not build or hang");
        String out = new String(p.getInputStream().readAllBytes()).trim();
        assertEquals(1, p.exitValue(), out);
        assertEquals(1, out.lines().count(), "one line: " + out);
        assertTrue(out.contains("JDK 17") && out.contains("25"), out);
    }

    /**
     * The serving code runs once per token, so at C2's default threshold it would stay interpreted for a server's first
     * ~10,000 tokens and slow the decode (docs/BENCHMARKS.md): the launcher scales the threshold down for its packages.
     * A renamed package would silently drop that, and a malformed option is only a warning: both fail here.
     */
    @Test
    void serveCodeCompilesEarlyWithOptionsTheJvmAccepts() throws Exception {
        assumeTrue(Files.isReadable(LAUNCHER), "skipped: launcher not found at " + LAUNCHER);
        Matcher m = Pattern.compile("-XX:CompileCommand=CompileThresholdScaling,([^,\\s]+),([0-9.]+)").matcher(Files.readString(LAUNCHER));
        List<String> patterns = new ArrayList<>(), options = new ArrayList<>();
        while (m.find()) {
            patterns.add(m.group(1));
            options.add(m.group());
            double scale = Double.parseDouble(m.group(2));
            assertTrue(scale > 0 && scale < 1, m.group() + " must lower the threshold (0 would never compile)");
        }
        for (Class<?> c : List.of(Channel.class, HttpServerCodec.class, ObjectMapper.class, JsonStringEncoder.class, ChatServer.class)) {
            assertTrue(patterns.stream().anyMatch(p -> covers(p, c.getName())), c.getName() + " is not covered by the launcher's " + patterns);
        }
        List<String> cmd = new ArrayList<>(List.of(ProcessHandle.current().info().command().orElseThrow(), "-XX:-TieredCompilation"));
        cmd.addAll(options);
        cmd.add("-version");
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "java -version did not end");
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.exitValue(), out);
        assertEquals(options.size(), out.lines().filter(l -> l.startsWith("CompileCommand: CompileThresholdScaling")).count(),
                "the JVM must echo every option it took: " + out);
    }

    /**
     * Transparent huge pages for the heap only where the kernel offers them ([always] or [madvise]): elsewhere the JVM
     * would print a warning on every command. The launcher's own test of the kernel setting is run here as it stands
     * in the script, and where it adds the flag, the JVM takes it silently.
     */
    @Test
    void hugePagesOnlyWhereTheKernelOffersThemAndWithoutAWarning() throws Exception {
        assumeTrue(Files.isReadable(LAUNCHER), "skipped: launcher not found at " + LAUNCHER);
        String script = Files.readString(LAUNCHER);
        Matcher m = Pattern.compile("(?s)\nthp=\"\"\n(.*?\nfi)\n").matcher(script);
        assertTrue(m.find(), "the launcher's huge-page block (thp=\"\" ... fi) is gone");
        assertTrue(script.contains("$thp"), "the launcher computes $thp but does not pass it");
        Process sh = new ProcessBuilder("bash", "-c", "thp=\"\"\n" + m.group(1) + "\nprintf '%s' \"$thp\"").redirectErrorStream(true).start();
        assertTrue(sh.waitFor(30, TimeUnit.SECONDS), "the block did not end");
        String flag = new String(sh.getInputStream().readAllBytes()).trim();
        Path thp = Path.of("/sys/kernel/mm/transparent_hugepage/enabled");
        String setting = Files.isReadable(thp) ? Files.readString(thp) : "";
        boolean offered = setting.contains("[always]") || setting.contains("[madvise]");
        assertEquals(offered ? "-XX:+UseTransparentHugePages" : "", flag, "kernel setting: " + setting.trim());
        if (!offered) return;
        Process p = new ProcessBuilder(ProcessHandle.current().info().command().orElseThrow(), flag, "-version").redirectErrorStream(true).start();
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "java -version did not end");
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.exitValue(), out);
        assertTrue(!out.toLowerCase(java.util.Locale.ROOT).contains("warning"), "the JVM warned about " + flag + ": " + out);
    }

    /** HotSpot's class pattern: a trailing * matches any rest of the name. */
    private static boolean covers(String pattern, String className) {
        String classPart = pattern.substring(0, pattern.indexOf("::"));
        return classPart.endsWith("*") ? className.startsWith(classPart.substring(0, classPart.length() - 1)) : className.equals(classPart);
    }
}
