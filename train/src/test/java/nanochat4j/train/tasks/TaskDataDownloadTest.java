package nanochat4j.train.tasks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** chat-data against a local mirror serving shared/data: fresh, resumed, corrupted and offline downloads. */
class TaskDataDownloadTest {
    @TempDir
    Path tmp;
    HttpServer server;
    final AtomicInteger ranges = new AtomicInteger();
    volatile boolean corrupt;

    @AfterEach
    void stop() {
        if (server != null) server.stop(0);
    }

    /** Serves {@code <data>/<manifest path>} for the URL path after the GitHub prefix; honours Range. */
    String mirror(Path data, List<TaskDataDownload.Entry> entries) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", ex -> {
            String path = ex.getRequestURI().getPath();
            TaskDataDownload.Entry e = entries.stream().filter(x -> x.url().endsWith(path)).findFirst().orElse(null);
            if (e == null) {
                ex.sendResponseHeaders(404, -1);
                ex.close();
                return;
            }
            byte[] all = Files.readAllBytes(data.resolve(e.path()));
            if (corrupt) all[all.length / 2] ^= 1;
            String range = ex.getRequestHeaders().getFirst("Range");
            int from = 0;
            if (range != null) {
                from = Integer.parseInt(range.replaceAll("bytes=(\\d+)-", "$1"));
                ranges.incrementAndGet();
            }
            ex.sendResponseHeaders(range != null ? 206 : 200, all.length - from);
            try (OutputStream o = ex.getResponseBody()) {
                o.write(all, from, all.length - from);
            }
        });
        server.start();
        return "http://127.0.0.1:" + server.getAddress().getPort();
    }

    @Test
    void downloadsResumesAndChecksTheManifestFiles() throws Exception {
        Path data = SharedDir.locate("data");
        assumeTrue(data != null && Files.isDirectory(data.resolve("gsm8k")), SharedDir.skipMessage("data"));
        List<TaskDataDownload.Entry> all = TaskDataDownload.manifest();
        assertEquals(125 - 1, all.size());
        List<TaskDataDownload.Entry> some = new ArrayList<>();
        for (TaskDataDownload.Entry e : all) {
            if (e.path().startsWith("gsm8k/test") || e.path().startsWith("humaneval/") || e.path().equals("mmlu/dev/anatomy_dev.csv")) some.add(e);
        }
        assertEquals(3, some.size());
        String mirror = mirror(data, some);
        Path root = tmp.resolve("task_data");
        // a part file left by an interrupted run: its first 1000 bytes
        Path gsm = root.resolve("gsm8k/test.jsonl");
        Files.createDirectories(gsm.getParent());
        Files.write(gsm.resolveSibling("test.jsonl.part"), java.util.Arrays.copyOf(Files.readAllBytes(data.resolve("gsm8k/test.jsonl")), 1000));
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        new TaskDataDownload(mirror, 2, Duration.ofMillis(10), new PrintStream(log, true)).download(some, root);
        for (TaskDataDownload.Entry e : some) assertEquals(-1, Files.mismatch(data.resolve(e.path()), root.resolve(e.path())), e.path());
        assertEquals(1, ranges.get(), "the part file was continued with a Range request");
        assertFalse(Files.exists(gsm.resolveSibling("test.jsonl.part")));
        // a second run finds everything in place
        new TaskDataDownload(mirror, 2, Duration.ofMillis(10), new PrintStream(log, true)).download(some, root);
        assertTrue(log.toString().contains("0 file(s) fetched, 3 already present"), log.toString());
        // the tasks read the downloaded folder
        assertEquals(1319, new Gsm8k(root, "test", JsonLines.OnBadLine.STOP, new ArrayList<>()).size());

        // a server sending other bytes: a checksum error naming the file, nothing left in place
        corrupt = true;
        Path other = tmp.resolve("other");
        IOException e = assertThrows(IOException.class, () -> new TaskDataDownload(mirror, 2, Duration.ofMillis(10), new PrintStream(log, true))
                .download(some.subList(0, 1), other));
        assertTrue(e.getMessage().contains("SHA-256") && e.getMessage().contains(some.get(0).path().replace('/', java.io.File.separatorChar)), e.getMessage());
        assertFalse(Files.exists(other.resolve(some.get(0).path())));
    }

    @Test
    void offlineIsAClearMessage() throws Exception {
        List<TaskDataDownload.Entry> one = TaskDataDownload.manifest().subList(0, 1);
        int port;
        try (var s = new java.net.ServerSocket(0)) {
            port = s.getLocalPort(); // closed again: nothing listens there
        }
        IOException e = assertThrows(IOException.class, () -> new TaskDataDownload("http://127.0.0.1:" + port, 2, Duration.ofMillis(10),
                new PrintStream(new ByteArrayOutputStream())).download(one, tmp.resolve("td")));
        assertTrue(e.getMessage().contains("offline?") && e.getMessage().contains("--task-data"), e.getMessage());
    }
}
