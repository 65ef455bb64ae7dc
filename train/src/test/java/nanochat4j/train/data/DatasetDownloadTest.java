package nanochat4j.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.parquet.format.CompressionCodec;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Downloads against a local HTTP server on 127.0.0.1 that serves shard files with Range support and can drop a
 * connection midway, stall, lie about the checksum, or not have a shard.
 */
class DatasetDownloadTest {
    @TempDir
    Path tmp;

    private HttpServer server;
    private Path served;
    private final Set<String> dropOnce = ConcurrentHashMap.newKeySet();
    private final Set<String> stallOnce = ConcurrentHashMap.newKeySet();
    private final Map<String, String> etags = new ConcurrentHashMap<>();
    private final List<String> requests = Collections.synchronizedList(new ArrayList<>());
    private final ByteArrayOutputStream log = new ByteArrayOutputStream();

    @BeforeEach
    void startServer() throws IOException {
        served = Files.createDirectory(tmp.resolve("served"));
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::serve);
        server.setExecutor(java.util.concurrent.Executors.newCachedThreadPool());
        server.start();
    }

    @AfterEach
    void stopServer() {
        server.stop(0);
    }

    private void serve(HttpExchange ex) throws IOException {
        String name = ex.getRequestURI().getPath().substring(1);
        String range = ex.getRequestHeaders().getFirst("Range");
        requests.add(name + (range == null ? "" : " " + range));
        Path file = served.resolve(name);
        if (!Files.exists(file)) {
            ex.sendResponseHeaders(404, -1);
            ex.close();
            return;
        }
        byte[] all = Files.readAllBytes(file);
        int from = 0;
        if (range != null) {
            from = Integer.parseInt(range.substring("bytes=".length(), range.indexOf('-')));
            ex.getResponseHeaders().add("Content-Range", "bytes " + from + "-" + (all.length - 1) + "/" + all.length);
        }
        if (etags.containsKey(name)) ex.getResponseHeaders().add("ETag", "\"" + etags.get(name) + "\"");
        ex.sendResponseHeaders(range == null ? 200 : 206, all.length - from);
        OutputStream out = ex.getResponseBody();
        int half = from + (all.length - from) / 2;
        if (dropOnce.remove(name)) { // send half, then cut the connection
            out.write(all, from, half - from);
            out.flush();
            closeShort(ex); // fewer bytes than announced: the server closes the connection
            return;
        }
        if (stallOnce.remove(name)) { // send half, then go quiet
            out.write(all, from, half - from);
            out.flush();
            try {
                Thread.sleep(1500);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            closeShort(ex);
            return;
        }
        out.write(all, from, all.length - from);
        out.close();
    }

    private static void closeShort(HttpExchange ex) {
        try {
            ex.close();
        } catch (RuntimeException e) {
            // "insufficient bytes written": expected, the connection is gone
        }
    }

    private byte[] shard(int index, int docs) throws IOException {
        List<String> text = new ArrayList<>();
        java.util.Random r = new java.util.Random(index);
        for (int i = 0; i < docs; i++) text.add("shard " + index + " doc " + i + " " + Long.toHexString(r.nextLong()).repeat(20));
        Path p = served.resolve(DatasetDownload.fileName(index));
        ParquetTextWriter.write(p, text, 1024, CompressionCodec.ZSTD);
        return Files.readAllBytes(p);
    }

    private DatasetDownload downloader(Path dir, Duration timeout) {
        String url = "http://127.0.0.1:" + server.getAddress().getPort() + "/shard_%05d.parquet";
        return new DatasetDownload(url, dir, 2, Duration.ofMillis(1), timeout, new PrintStream(log, true, StandardCharsets.UTF_8));
    }

    @Test
    void shardListMatchesNanochat() {
        assertEquals(List.of(0, 1, 2, 6542), DatasetDownload.shards(3));
        assertEquals(6543, DatasetDownload.shards(-1).size());
        assertEquals(6543, DatasetDownload.shards(99999).size());
        assertEquals("shard_06542.parquet", DatasetDownload.fileName(6542));
        assertTrue(DatasetDownload.URL_TEMPLATE.endsWith("climbmix-400b-shuffle/resolve/main/shard_%05d.parquet"));
    }

    @Test
    void downloadsResumesADroppedConnectionWithARangeAndWritesChecksums() throws Exception {
        byte[] s0 = shard(0, 3000), s1 = shard(1, 500), val = shard(6542, 200);
        dropOnce.add("shard_00000.parquet");
        etags.put("shard_00001.parquet", DatasetDownload.sha256(served.resolve("shard_00001.parquet")));
        Path dir = tmp.resolve("data");
        downloader(dir, Duration.ofSeconds(10)).download(DatasetDownload.shards(2));
        assertEquals(List.of(s0.length, s1.length, val.length), List.of(
                (int) Files.size(dir.resolve("shard_00000.parquet")), (int) Files.size(dir.resolve("shard_00001.parquet")),
                (int) Files.size(dir.resolve("shard_06542.parquet"))));
        assertTrue(java.util.Arrays.equals(s0, Files.readAllBytes(dir.resolve("shard_00000.parquet"))));
        // the second request for shard 0 asked only for the missing half
        List<String> shard0 = requests.stream().filter(r -> r.startsWith("shard_00000")).toList();
        assertEquals(2, shard0.size(), requests.toString());
        assertEquals("shard_00000.parquet bytes=" + (s0.length / 2) + "-", shard0.get(1));
        assertEquals(DatasetDownload.sha256(dir.resolve("shard_00000.parquet")) + "  shard_00000.parquet\n",
                Files.readString(dir.resolve("shard_00000.parquet.sha256")));
        try (var files = Files.list(dir)) {
            assertFalse(files.anyMatch(p -> p.toString().endsWith(".tmp")), "no .tmp left");
        }
        assertEquals(3000, ParquetFile.open(dir.resolve("shard_00000.parquet")).rowCount());
        // a second run finds everything there and fetches nothing
        requests.clear();
        downloader(dir, Duration.ofSeconds(10)).download(DatasetDownload.shards(2));
        assertEquals(List.of(), requests);
        assertTrue(log.toString().contains("already there"), log.toString());
    }

    @Test
    void aPartialTmpFromAKilledRunIsContinued() throws Exception {
        byte[] s0 = shard(0, 2000);
        shard(6542, 10);
        Path dir = Files.createDirectory(tmp.resolve("data"));
        Files.write(dir.resolve("shard_00000.parquet.tmp"), java.util.Arrays.copyOf(s0, 1000));
        downloader(dir, Duration.ofSeconds(10)).download(DatasetDownload.shards(1));
        assertTrue(requests.contains("shard_00000.parquet bytes=1000-"), requests.toString());
        assertTrue(java.util.Arrays.equals(s0, Files.readAllBytes(dir.resolve("shard_00000.parquet"))));
    }

    @Test
    void aStalledConnectionIsCutAfterTheTimeoutAndRetried() throws Exception {
        byte[] s0 = shard(0, 2000);
        shard(6542, 10);
        stallOnce.add("shard_00000.parquet");
        Path dir = tmp.resolve("data");
        long t0 = System.nanoTime();
        downloader(dir, Duration.ofMillis(300)).download(DatasetDownload.shards(1));
        assertTrue((System.nanoTime() - t0) / 1e9 < 10, "must not wait for the stalled server");
        assertTrue(log.toString().contains("no data for"), log.toString());
        assertTrue(java.util.Arrays.equals(s0, Files.readAllBytes(dir.resolve("shard_00000.parquet"))));
    }

    @Test
    void missingShardFailsAtOnceNamingTheUrlWhileTheOthersComplete() throws Exception {
        shard(0, 10);
        shard(6542, 10); // shard 1 does not exist on the server
        Path dir = tmp.resolve("data");
        IOException e = assertThrows(IOException.class, () -> downloader(dir, Duration.ofSeconds(10)).download(DatasetDownload.shards(2)));
        assertTrue(e.getMessage().contains("1 of 3 shards failed") && e.getMessage().contains("HTTP 404")
                && e.getMessage().contains("/shard_00001.parquet"), e.getMessage());
        assertEquals(1, requests.stream().filter(r -> r.startsWith("shard_00001")).count(), "404 is not retried");
        assertTrue(Files.exists(dir.resolve("shard_00000.parquet")) && Files.exists(dir.resolve("shard_06542.parquet")));
    }

    @Test
    void aChecksumMismatchOrANonParquetBodyIsRetriedThenReported() throws Exception {
        shard(0, 10);
        shard(6542, 10);
        etags.put("shard_00000.parquet", "ab".repeat(32));
        Files.writeString(served.resolve("shard_06542.parquet"), "<html>rate limited</html>");
        Path dir = tmp.resolve("data");
        IOException e = assertThrows(IOException.class, () -> downloader(dir, Duration.ofSeconds(10)).download(DatasetDownload.shards(1)));
        assertTrue(e.getMessage().contains("SHA-256 mismatch") && e.getMessage().contains("shard_00000.parquet failed after 5 attempts"),
                e.getMessage());
        assertTrue(e.getMessage().contains("not valid parquet") && e.getMessage().contains("shard_06542.parquet"), e.getMessage());
        assertEquals(5, requests.stream().filter(r -> r.startsWith("shard_00000")).count());
        assertFalse(Files.exists(dir.resolve("shard_00000.parquet")) || Files.exists(dir.resolve("shard_00000.parquet.tmp")));
    }
}
