package nanochat4j.train.data;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Pattern;
import nanochat4j.model.BaseDir;
import nanochat4j.train.ProgressBar;

/**
 * Downloads nanochat's pretraining shards (nanochat/dataset.py): ClimbMix-400B repackaged as
 * {@code shard_00000.parquet … shard_06542.parquet}; {@code -n N} fetches shards 0..min(N, 6542)−1 plus the
 * validation shard 06542, always. Per shard, as in nanochat: stream to {@code <name>.tmp}, up to 5 attempts with
 * 2^attempt s backoff, 30 s timeouts. Beyond nanochat:
 * <ul>
 *   <li>resumable — a {@code .tmp} left by a dropped connection or a killed run continues with an HTTP Range
 *       request (a server that ignores the range gets the file from the start);
 *   <li>checked — the finished file must be a readable parquet file (magic bytes, footer); its SHA-256 is
 *       compared with the server's when it sends one (Hugging Face's LFS {@code X-Linked-ETag}/{@code ETag}
 *       carries it) and written to a {@code <name>.sha256} sidecar either way;
 *   <li>atomic — fsync, then rename {@code .tmp} to the shard's name, so a shard that exists is complete;
 *   <li>a stalled body (no byte for the timeout) is cut and retried; 404 fails at once, naming the URL.
 * </ul>
 */
public final class DatasetDownload {
    public static final String URL_TEMPLATE = "https://huggingface.co/datasets/karpathy/climbmix-400b-shuffle/resolve/main/shard_%05d.parquet";
    /** The last shard, used for validation. */
    public static final int MAX_SHARD = 6542;
    public static final int ATTEMPTS = 5;

    private static final Pattern SHA256 = Pattern.compile("[0-9a-f]{64}");

    private final String urlTemplate;
    private final Path dir;
    private final int workers;
    private final Duration backoffUnit;
    private final Duration timeout;
    private final PrintStream log;
    private final HttpClient client;

    /** nanochat's settings: the ClimbMix URL, 4 workers, 2^attempt s backoff, 30 s timeouts, into {@link #defaultDir()}. */
    public DatasetDownload(PrintStream log) {
        this(URL_TEMPLATE, defaultDir(), 4, Duration.ofSeconds(1), Duration.ofSeconds(30), log);
    }

    /**
     * @param urlTemplate a {@link String#format} pattern taking the shard index
     * @param backoffUnit the wait after attempt k is 2^k units (nanochat: 1 s)
     * @param timeout     connect timeout, time to the response headers, and longest pause inside the body
     */
    public DatasetDownload(String urlTemplate, Path dir, int workers, Duration backoffUnit, Duration timeout, PrintStream log) {
        if (workers < 1) throw new IllegalArgumentException("workers must be ≥ 1: " + workers);
        this.urlTemplate = urlTemplate;
        this.dir = dir;
        this.workers = workers;
        this.backoffUnit = backoffUnit;
        this.timeout = timeout;
        this.log = log;
        this.client = HttpClient.newBuilder()
                .connectTimeout(timeout)
                .followRedirects(HttpClient.Redirect.NORMAL)
                .build();
    }

    /** {@code $NANOCHAT_BASE_DIR/base_data_climbmix}. */
    public static Path defaultDir() {
        return BaseDir.get().resolve("base_data_climbmix");
    }

    /** The shard indices for {@code -n N}: 0..min(N, 6542)−1 (all 6542 when N = −1) plus the validation shard. */
    public static List<Integer> shards(int n) {
        if (n < -1) throw new IllegalArgumentException("-n must be ≥ 1, or −1 for all shards: " + n);
        int train = n == -1 ? MAX_SHARD : Math.min(n, MAX_SHARD);
        List<Integer> ids = new ArrayList<>(train + 1);
        for (int i = 0; i < train; i++) ids.add(i);
        ids.add(MAX_SHARD);
        return ids;
    }

    public static String fileName(int shard) {
        return String.format(Locale.ROOT, "shard_%05d.parquet", shard);
    }

    /** Thrown for a shard the server does not have: retrying will not help. */
    static final class NotFound extends IOException {
        NotFound(String message) {
            super(message);
        }
    }

    /**
     * Downloads the shards that are not there yet with {@code workers} threads, with a progress bar on a terminal.
     * Throws after all shards were tried when any failed, listing each failure.
     */
    public void download(List<Integer> shards) throws IOException {
        Files.createDirectories(dir);
        log.printf("Downloading %d shards to %s with %d workers%n", shards.size(), dir, workers);
        ProgressBar bar = new ProgressBar(log);
        AtomicInteger done = new AtomicInteger();
        AtomicLong bytes = new AtomicLong();
        long start = System.nanoTime();
        List<String> failures = new ArrayList<>();
        ExecutorService pool = Executors.newFixedThreadPool(workers);
        try {
            List<Future<?>> futures = new ArrayList<>();
            for (int shard : shards) {
                futures.add(pool.submit(() -> {
                    String what = downloadShard(shard, bytes, () -> {
                        double s = (System.nanoTime() - start) / 1e9;
                        bar.update(done.get(), shards.size(), String.format(Locale.ROOT, "shards  %.1f MB  %.1f MB/s",
                                bytes.get() / 1e6, bytes.get() / 1e6 / Math.max(s, 1e-3)), false);
                    });
                    int n = done.incrementAndGet();
                    bar.clear();
                    log.printf("[%d/%d] %s %s%n", n, shards.size(), fileName(shard), what);
                    return null;
                }));
            }
            for (int i = 0; i < futures.size(); i++) {
                try {
                    futures.get(i).get();
                } catch (ExecutionException e) {
                    bar.clear();
                    String msg = e.getCause() == null ? String.valueOf(e) : e.getCause().getMessage();
                    failures.add(msg);
                    log.println("FAILED " + fileName(shards.get(i)) + ": " + msg);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IOException("download interrupted", e);
                }
            }
        } finally {
            pool.shutdownNow();
            bar.clear();
        }
        if (!failures.isEmpty()) {
            throw new IOException(failures.size() + " of " + shards.size() + " shards failed:\n  " + String.join("\n  ", failures));
        }
        log.printf("Done: %d shards in %s (%.1f MB fetched in %.1f s)%n", shards.size(), dir, bytes.get() / 1e6,
                (System.nanoTime() - start) / 1e9);
    }

    /** One shard, with retries. Returns a short note for the log ("ok", "already there"). */
    String downloadShard(int shard, AtomicLong bytes, Runnable progress) throws IOException, InterruptedException {
        Path target = dir.resolve(fileName(shard));
        if (Files.exists(target)) {
            try {
                ParquetFile.open(target);
                return "already there";
            } catch (IOException e) {
                log.println("re-downloading " + target.getFileName() + ": " + e.getMessage());
                Files.delete(target);
            }
        }
        Path tmp = dir.resolve(fileName(shard) + ".tmp");
        String url = String.format(Locale.ROOT, urlTemplate, shard);
        IOException last = null;
        for (int attempt = 1; attempt <= ATTEMPTS; attempt++) {
            try {
                fetch(url, tmp, target, bytes, progress);
                return "ok";
            } catch (NotFound e) {
                throw e;
            } catch (IOException e) {
                last = e;
                if (attempt < ATTEMPTS) {
                    long waitMs = backoffUnit.toMillis() << attempt;
                    log.printf("%s: attempt %d/%d failed (%s), retrying in %.1f s%n", fileName(shard), attempt, ATTEMPTS,
                            e.getMessage(), waitMs / 1e3);
                    Thread.sleep(waitMs);
                }
            }
        }
        throw new IOException(fileName(shard) + " failed after " + ATTEMPTS + " attempts from " + url + ": " + last.getMessage(), last);
    }

    /** One attempt: GET (ranged when a partial .tmp exists), append to .tmp, check, rename. */
    private void fetch(String url, Path tmp, Path target, AtomicLong bytes, Runnable progress) throws IOException, InterruptedException {
        long have = Files.exists(tmp) ? Files.size(tmp) : 0;
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url)).timeout(timeout).GET();
        if (have > 0) req.header("Range", "bytes=" + have + "-");
        HttpResponse<InputStream> resp;
        try {
            resp = client.send(req.build(), HttpResponse.BodyHandlers.ofInputStream());
        } catch (IOException e) {
            throw new IOException("request failed: " + e, e);
        }
        int status = resp.statusCode();
        try (InputStream body = resp.body()) {
            if (status == 404) throw new NotFound("not found (HTTP 404): " + url);
            if (status == 416) { // our partial file is not a prefix the server can continue: start over
                Files.deleteIfExists(tmp);
                throw new IOException("HTTP 416 for range " + have + "-, restarting from byte 0");
            }
            if (status != 200 && status != 206) throw new IOException("HTTP " + status + " from " + url);
            boolean append = status == 206;
            if (append) {
                String range = resp.headers().firstValue("Content-Range").orElse("");
                if (!range.startsWith("bytes " + have + "-")) {
                    Files.deleteIfExists(tmp);
                    throw new IOException("server answered range " + have + "- with \"" + range + "\", restarting from byte 0");
                }
            } else {
                have = 0;
            }
            long expectedLength = resp.headers().firstValueAsLong("Content-Length").orElse(-1);
            long got = copyWithStallTimeout(body, tmp, append, bytes, progress);
            if (expectedLength >= 0 && got != expectedLength) {
                throw new IOException("connection dropped after " + (have + got) + " of " + (have + expectedLength) + " bytes");
            }
        }
        try {
            ParquetFile.open(tmp);
        } catch (IOException e) {
            Files.deleteIfExists(tmp); // a wrong prefix must not be resumed
            throw new IOException("downloaded file is not valid parquet (" + e.getMessage() + ")", e);
        }
        String sha = sha256(tmp);
        Optional<String> expected = serverSha256(resp);
        if (expected.isPresent() && !expected.get().equals(sha)) {
            Files.deleteIfExists(tmp);
            throw new IOException("SHA-256 mismatch: server says " + expected.get() + ", file has " + sha);
        }
        Path sidecar = target.resolveSibling(target.getFileName() + ".sha256");
        ParquetTextWriter.writeAtomically(sidecar, (sha + "  " + target.getFileName() + "\n").getBytes(StandardCharsets.US_ASCII));
        Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE);
        fsyncDir(dir);
    }

    /** Streams the body into the file in 1 MiB chunks; a watchdog closes the body when no byte comes for the timeout. */
    private long copyWithStallTimeout(InputStream body, Path tmp, boolean append, AtomicLong bytes, Runnable progress) throws IOException {
        AtomicLong lastByte = new AtomicLong(System.nanoTime());
        AtomicBoolean stalled = new AtomicBoolean();
        ScheduledExecutorService watchdog = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "nanochat4j-download-watchdog");
            t.setDaemon(true);
            return t;
        });
        long period = Math.max(10, timeout.toMillis() / 10);
        watchdog.scheduleAtFixedRate(() -> {
            if (System.nanoTime() - lastByte.get() > timeout.toNanos()) {
                stalled.set(true);
                try {
                    body.close();
                } catch (IOException ignored) {
                    // closing is the whole point; the reader sees the stall flag
                }
            }
        }, period, period, TimeUnit.MILLISECONDS);
        long got = 0;
        var options = append
                ? new StandardOpenOption[] {StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.APPEND}
                : new StandardOpenOption[] {StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING};
        try (FileChannel ch = FileChannel.open(tmp, options); OutputStream out = Channels.newOutputStream(ch)) {
            byte[] buf = new byte[1 << 20];
            for (int n; (n = body.read(buf)) > 0; ) {
                out.write(buf, 0, n);
                got += n;
                bytes.addAndGet(n);
                lastByte.set(System.nanoTime());
                progress.run();
            }
            out.flush();
            ch.force(true);
        } catch (IOException e) {
            if (stalled.get()) throw new IOException("no data for " + timeout.toSeconds() + " s, connection cut", e);
            throw new IOException("connection dropped: " + e.getMessage(), e);
        } finally {
            watchdog.shutdownNow();
        }
        if (stalled.get()) throw new IOException("no data for " + timeout.toMillis() + " ms, connection cut");
        return got;
    }

    /** The SHA-256 the server vouches for, if any: an ETag (or Hugging Face's X-Linked-ETag) that is 64 hex digits. */
    private static Optional<String> serverSha256(HttpResponse<?> resp) {
        for (HttpResponse<?> r = resp; r != null; r = r.previousResponse().orElse(null)) {
            for (String h : List.of("X-Linked-ETag", "ETag")) {
                Optional<String> v = r.headers().firstValue(h).map(s -> s.replace("\"", "").replaceFirst("^W/", "").toLowerCase(Locale.ROOT));
                if (v.isPresent() && SHA256.matcher(v.get()).matches()) return v;
            }
        }
        return Optional.empty();
    }

    static String sha256(Path file) throws IOException {
        try (InputStream in = Files.newInputStream(file)) {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            byte[] buf = new byte[1 << 20];
            for (int n; (n = in.read(buf)) > 0; ) md.update(buf, 0, n);
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static void fsyncDir(Path dir) {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        } catch (IOException e) {
            // not every platform can open a directory; the rename itself is still atomic
        }
    }
}
