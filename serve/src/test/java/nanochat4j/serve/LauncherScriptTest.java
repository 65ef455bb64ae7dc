package nanochat4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The launcher refuses an explicitly chosen JDK older than 25 at once, with a message naming the fix. */
class LauncherScriptTest {

    @Test
    void oldJdkInJavaHomeFailsFastWithAOneLineFix() throws Exception {
        Path root = Path.of("..").toAbsolutePath().normalize();
        Path launcher = root.resolve("nanochat4j");
        Path jdk17 = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
        assumeTrue(Files.isExecutable(launcher), "skipped: launcher not found at " + launcher);
        assumeTrue(Files.isExecutable(jdk17.resolve("bin/java")), "skipped: no JDK 17 at " + jdk17 + " to test with");
        ProcessBuilder pb = new ProcessBuilder("bash", launcher.toString(), "--help").redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", jdk17.toString());
        Process p = pb.start();
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "launcher must fail fast, not build or hang");
        String out = new String(p.getInputStream().readAllBytes()).trim();
        assertEquals(1, p.exitValue(), out);
        assertEquals(1, out.lines().count(), "one line: " + out);
        assertTrue(out.contains("JDK 17") && out.contains("25"), out);
    }
}
