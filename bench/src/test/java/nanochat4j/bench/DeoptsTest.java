package nanochat4j.bench;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.LongAdder;
import org.junit.jupiter.api.Test;

/** The bench's deoptimization counter: JFR events land in the window they happened in; a storm gets a note. */
class DeoptsTest {
    /** Hot with x >= 0 only, so C2 compiles the other branch as a trap; x < 0 then deoptimizes it. */
    static int branchy(int x) {
        return x < 0 ? -x * 31 : x + 1;
    }

    /**
     * Child JVM entry (compiling in the foreground, C2 only, so branchy is compiled before the loop ends): a window
     * that ends before anything happens, then one in which branchy takes the branch its compiled code never saw.
     */
    public static void main(String[] args) {
        try (Deopts d = Deopts.start()) {
            Deopts.Window before = d.open();
            long b = d.close(before, false);
            Deopts.Window w = d.open();
            long sink = 0;
            for (int i = 0; i < 200_000; i++) sink += branchy(i & 0xFFFF);
            sink += branchy(-1);
            long n = d.close(w);
            System.out.println("BEFORE " + b + " " + before.count.sum());
            System.out.println("WINDOW " + n + " " + w.sites.keySet() + " " + (sink != 0));
            System.out.println("NOTE " + Deopts.note(w, "the test"));
        }
    }

    @Test
    void countsTheDeoptimizationsOfItsWindowAndNamesTheSite() throws Exception {
        List<String> cmd = List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-XX:-TieredCompilation", "-Xbatch", "-cp", System.getProperty("java.class.path"), DeoptsTest.class.getName());
        Path log = Files.createTempFile("deopts", ".log");
        try {
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            if (!p.waitFor(120, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new AssertionError("child JVM did not finish in 120 s");
            }
            String out = Files.readString(log);
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("BEFORE 0 0\n"), "nothing counted in a window that ended before: " + out);
            String window = out.lines().filter(l -> l.startsWith("WINDOW ")).findFirst().orElseThrow(() -> new AssertionError(out));
            assertTrue(Long.parseLong(window.split(" ")[1]) >= 1, out);
            assertTrue(window.matches("WINDOW \\d+ \\[.*DeoptsTest\\.branchy line \\d+: unstable_if, action \\w+.*] true"), out);
            assertTrue(out.contains("NOTE null\n"), "a deoptimization or two is the JIT settling, not a storm: " + out);
        } finally {
            Files.deleteIfExists(log);
        }
    }

    @Test
    void aStormGetsANoteNamingItsWorstSite() {
        Deopts.Window w = new Deopts.Window();
        w.count.add(276_480);
        w.sites.computeIfAbsent("Gemv.quadF32 line 195: unstable_if, action none", k -> new LongAdder()).add(276_470);
        w.sites.computeIfAbsent("Other.f line 1: class_check, action maybe_recompile", k -> new LongAdder()).add(10);
        assertEquals("the JIT deoptimized 276,480 times during the timed runs (276,470 at Gemv.quadF32 line 195: "
                + "unstable_if, action none): compiled code is falling back to the interpreter, so this timing is not the kernel's",
                Deopts.note(w, "the timed runs"));
    }
}
