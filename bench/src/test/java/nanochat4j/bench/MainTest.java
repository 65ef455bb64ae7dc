package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class MainTest {
    @Test
    void theTestJvmHasTheVectorModule() {
        assertNull(Main.missingJvmOption());
    }

    @Test
    void aJvmWithoutTheVectorModuleGetsOneClearLineInsteadOfAStackTrace() throws Exception {
        // A child JVM on the test class path without --add-modules: what a plain `java -jar` user sees.
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path err = Files.createTempFile("main-test", ".err");
        try {
            Process p = new ProcessBuilder(java, "-cp", System.getProperty("java.class.path"), Main.class.getName(), "--help")
                    .redirectErrorStream(true).redirectOutput(err.toFile()).start();
            assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the child JVM did not exit");
            String out = Files.readString(err);
            assertEquals(2, p.exitValue(), out);
            assertTrue(out.contains("nanochat4j: the JVM was started without the Vector API module"), out);
            assertTrue(!out.contains("NoClassDefFoundError"), out);
        } finally {
            Files.deleteIfExists(err);
        }
    }
}
