package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * The chat page in a real browser: {@code src/test/browser/chat-page.mjs} drives Debian's chromium through
 * playwright-core (installed here with {@code npm ci} from the committed lockfile into {@code target/browser-test})
 * against a running server, and leaves screenshots in {@code target/browser-test/}. Chromium is installed with apt
 * when missing. Without node, npm or chromium the test skips with the reason — except under {@code CI=true}, where
 * that is a failure.
 */
class ChatPageBrowserTest {
    static final Path WORK = Path.of("target/browser-test").toAbsolutePath();
    static final Path CHROMIUM = Path.of("/usr/bin/chromium");

    @Test
    void typeSeeTheReplyStreamStopItAndStartANewChatOnDesktopAndPhone() throws Exception {
        require(run(List.of("node", "--version"), Path.of("."), 30).ok(), "node is not installed (apt-get install nodejs npm)");
        if (!Files.isExecutable(CHROMIUM)) installChromium();
        require(Files.isExecutable(CHROMIUM), "chromium is missing at " + CHROMIUM + " and apt-get could not install it");
        Files.createDirectories(WORK);
        for (String f : List.of("package.json", "package-lock.json", "chat-page.mjs")) {
            Files.copy(Path.of("src/test/browser", f), WORK.resolve(f), StandardCopyOption.REPLACE_EXISTING);
        }
        if (!Files.exists(WORK.resolve("node_modules/playwright-core/package.json"))) {
            Result npm = run(List.of("npm", "ci", "--no-audit", "--no-fund"), WORK, 300);
            require(npm.ok(), "npm ci of playwright-core failed (no registry?):\n" + npm.output());
        }
        Path desktop = WORK.resolve("chat-desktop.png"), phone = WORK.resolve("chat-phone.png");
        Files.deleteIfExists(desktop);
        Files.deleteIfExists(phone);
        // One worker with long default replies: the random model, greedy, streams for many seconds until Stop.
        try (ChatServer server = TestServers.start(TestServers.config(null, null, 2000), TestServers.engines(1))) {
            Result r = run(List.of("node", "chat-page.mjs", server.url().toString(), WORK.toString()), WORK, 240);
            assertTrue(r.ok(), "the browser run failed:\n" + r.output());
            assertTrue(r.output().contains("\"ok\":true"), r.output());
        }
        assertPng(desktop, 1280, 800);
        assertPng(phone, 390, 844);
    }

    /** A non-empty PNG of the viewport's size. */
    private static void assertPng(Path file, int width, int height) throws IOException {
        assertTrue(Files.isRegularFile(file), file + " was not written");
        byte[] b = Files.readAllBytes(file);
        assertTrue(b.length > 10_000, file + " is only " + b.length + " bytes");
        assertArrayEquals(new byte[] {(byte) 0x89, 'P', 'N', 'G'}, Arrays.copyOf(b, 4), file + " is not a PNG");
        ByteBuffer ihdr = ByteBuffer.wrap(b, 16, 8);
        assertEquals(width, ihdr.getInt(), file + " width");
        assertEquals(height, ihdr.getInt(), file + " height");
    }

    private static void installChromium() throws Exception {
        List<String> sudo = "root".equals(System.getProperty("user.name")) ? List.of() : List.of("sudo", "-n");
        String cmd = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium";
        List<String> argv = new java.util.ArrayList<>(sudo);
        argv.addAll(List.of("sh", "-c", cmd));
        Result r = run(argv, Path.of("."), 900);
        if (!r.ok()) System.err.println("ChatPageBrowserTest: installing chromium failed:\n" + r.output());
    }

    private static void require(boolean ok, String why) {
        if (ok) return;
        if ("true".equalsIgnoreCase(System.getenv("CI"))) fail(why + " — CI=true, so the browser test must run");
        assumeTrue(false, "skipped: " + why);
    }

    record Result(boolean ok, String output) {}

    private static Result run(List<String> argv, Path dir, int seconds) throws InterruptedException {
        try {
            Path log = Files.createTempFile("browser-test", ".log");
            Process p = new ProcessBuilder(argv).directory(dir.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
            boolean done = p.waitFor(seconds, TimeUnit.SECONDS);
            if (!done) p.destroyForcibly().waitFor();
            String out = Files.readString(log, StandardCharsets.UTF_8);
            Files.deleteIfExists(log);
            return new Result(done && p.exitValue() == 0, (done ? "" : "timed out after " + seconds + " s\n") + out);
        } catch (IOException e) {
            return new Result(false, argv.get(0) + ": " + e.getMessage());
        }
    }
}
