package nanochat4j.train.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The HumanEval sandbox's fences: hostile programs end as failed samples within the timeout and leave nothing
 * behind (no file outside the sandbox, no process, no temp dir). Skips without python3 (CI has it).
 */
class PythonSandboxTest {
    static final PythonSandbox.Limits LIMITS = new PythonSandbox.Limits(3.0, 256L << 20, 4096);
    static PythonSandbox sandbox;

    @BeforeAll
    static void find() {
        sandbox = PythonSandbox.find(LIMITS);
        if ("true".equalsIgnoreCase(System.getenv("CI")) && sandbox == null) throw new IllegalStateException("CI=true but " + PythonSandbox.missingReason());
        assumeTrue(sandbox != null, "skipped: " + PythonSandbox.missingReason());
    }

    static PythonSandbox.Result timed(String program) {
        long t0 = System.nanoTime();
        PythonSandbox.Result r = sandbox.run(program);
        double s = (System.nanoTime() - t0) / 1e9;
        assertTrue(s < LIMITS.timeoutSeconds() + 3, "took " + s + " s");
        return r;
    }

    @Test
    void aCorrectProgramPassesAndAFailingOneFails() {
        PythonSandbox.Result ok = timed("def f(x):\n    return x + 1\nassert f(1) == 2\nprint('fine')");
        assertTrue(ok.success(), ok.toString());
        assertEquals("fine\n", ok.stdout());
        PythonSandbox.Result bad = timed("assert 1 == 2, 'nope'");
        assertFalse(bad.success());
        assertEquals("AssertionError: nope", bad.error());
    }

    @Test
    void anInfiniteLoopIsKilledAtTheTimeout() {
        PythonSandbox.Result r = timed("while True:\n    pass");
        assertFalse(r.success());
        assertTrue(r.timedOut(), r.toString());
    }

    @Test
    void aForkBombFails() {
        PythonSandbox.Result r = timed("import os\nwhile True:\n    os.fork()");
        assertFalse(r.success(), r.toString());
        PythonSandbox.Result viaPosix = timed("import sys\nmod = sys.modules['posix']\nwhile True:\n    mod.fork()");
        assertFalse(viaPosix.success(), viaPosix.toString());
        assertTrue(viaPosix.stderr().contains("os.fork is not allowed"), viaPosix.stderr());
    }

    @Test
    void aTenGigabyteAllocationFails() {
        PythonSandbox.Result r = timed("x = bytearray(10 * 1024 ** 3)\nprint(len(x))");
        assertFalse(r.success(), r.toString());
        assertTrue(r.memoryExceeded(), r.stderr());
    }

    @Test
    void aWriteOutsideTheSandboxFails() throws Exception {
        Path outside = Files.createTempFile("nanochat4j-outside-", ".txt");
        Files.delete(outside);
        PythonSandbox.Result r = timed("with open(" + pyString(outside.toString()) + ", 'w') as f:\n    f.write('pwned')");
        assertFalse(r.success(), r.toString());
        assertFalse(Files.exists(outside), "the file outside the sandbox was written");
        PythonSandbox.Result viaOs = timed("import posix\nfd = posix.open(" + pyString(outside.toString()) + ", 0o1101)\n");
        assertFalse(viaOs.success(), viaOs.toString());
        assertFalse(Files.exists(outside));
        PythonSandbox.Result inside = timed("with open('scratch.txt', 'w') as f:\n    f.write('ok')\nprint(open('scratch.txt').read())");
        assertTrue(inside.success(), inside.toString());
    }

    @Test
    void outputIsTruncatedAndTheEnvironmentIsEmpty() {
        PythonSandbox.Result r = timed("import os\nprint(sorted(os.environ))\nprint('x' * 100000)");
        assertTrue(r.success(), r.toString());
        // only what the sandbox sets (and LC_CTYPE, which Python's C-locale coercion adds itself)
        String env = r.stdout().substring(0, r.stdout().indexOf('\n'));
        assertTrue(env.equals("['HOME', 'OMP_NUM_THREADS', 'PATH', 'TMPDIR']") || env.equals("['HOME', 'LC_CTYPE', 'OMP_NUM_THREADS', 'PATH', 'TMPDIR']"), env);
        assertTrue(r.stdout().length() < 5000 && r.stdout().endsWith("[output truncated]"));
    }

    @Test
    void nothingIsLeftBehind() throws Exception {
        // a child that would outlive its parent if fork were possible, and a sleeping program killed at the timeout
        timed("import time\ntime.sleep(60)");
        Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
        try (Stream<Path> s = Files.list(tmp)) {
            assertEquals(0, s.filter(p -> p.getFileName().toString().startsWith("nanochat4j-sandbox-")).count(), "temp dirs left");
        }
        assertEquals(0, ProcessHandle.current().descendants().filter(h -> h.info().command().orElse("").contains("python")).count(),
                "python processes left");
    }

    static String pyString(String s) {
        return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'";
    }

    @Test
    void aMissingInterpreterIsNoSandbox() {
        assertEquals(null, PythonSandbox.find("/nonexistent/python3", LIMITS));
        assertEquals(null, PythonSandbox.find("/bin/false", LIMITS));
        assertTrue(PythonSandbox.missingReason().contains("not on the PATH"));
    }
}
