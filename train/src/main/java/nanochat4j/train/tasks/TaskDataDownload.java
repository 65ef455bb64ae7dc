package nanochat4j.train.tasks;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.net.ConnectException;
import java.net.URI;
import java.net.UnknownHostException;
import java.net.http.HttpClient;
import java.net.http.HttpConnectTimeoutException;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;

/**
 * Fetches the chat tasks' files into a task-data folder: each file of {@code task_data.tsv} (ARC, MMLU, GSM8K,
 * HumanEval, alpaca_5000) from a commit-pinned GitHub raw URL — the very bytes of this project's {@code shared/data},
 * checked against their SHA-256. nanochat instead reads Hugging Face parquet exports; these are the same datasets in
 * their original formats.
 * <ul>
 *   <li>a file already present with the right checksum is skipped (re-running is cheap);</li>
 *   <li>resumable: bytes go to {@code <name>.part}; a later attempt or run continues it with an HTTP Range request
 *       (a server that ignores the range sends the whole file, which then replaces the part);</li>
 *   <li>up to {@code attempts} tries per file with doubling backoff; a wrong checksum deletes the part and fails
 *       naming the file; the finished file is fsynced and renamed into place;</li>
 *   <li>offline (unknown host, refused connection) stops at once with a message saying how to place the files.</li>
 * </ul>
 */
public final class TaskDataDownload {
    /** One file: where it goes under the task-data folder, its SHA-256 and size, where it comes from. */
    public record Entry(String path, String sha256, long bytes, String url) {}

    static final String GITHUB_RAW = "https://raw.githubusercontent.com";

    private final HttpClient client;
    private final String mirror;
    private final int attempts;
    private final Duration backoff;
    private final PrintStream log;

    /** {@code mirror} (null = none) replaces {@value #GITHUB_RAW} in every URL. */
    public TaskDataDownload(String mirror, int attempts, Duration backoff, PrintStream log) {
        this.client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(30)).followRedirects(HttpClient.Redirect.NORMAL).build();
        this.mirror = mirror;
        this.attempts = attempts;
        this.backoff = backoff;
        this.log = log;
    }

    /** The manifest shipped in the jar. */
    public static List<Entry> manifest() throws IOException {
        List<Entry> out = new ArrayList<>();
        try (InputStream in = TaskDataDownload.class.getResourceAsStream("task_data.tsv")) {
            if (in == null) throw new IOException("task_data.tsv is missing from the build");
            BufferedReader r = new BufferedReader(new InputStreamReader(in, StandardCharsets.UTF_8));
            for (String line; (line = r.readLine()) != null; ) {
                if (line.isBlank() || line.startsWith("#")) continue;
                String[] f = line.split("\t");
                out.add(new Entry(f[0], f[1], Long.parseLong(f[2]), f[3]));
            }
        }
        return out;
    }

    public void download(List<Entry> entries, Path root) throws IOException {
        int fetched = 0;
        for (Entry e : entries) {
            Path target = root.resolve(e.path());
            if (Files.isRegularFile(target) && Files.size(target) == e.bytes() && sha256(target).equals(e.sha256())) continue;
            Files.createDirectories(target.getParent());
            fetch(e, target);
            fetched++;
        }
        log.printf(Locale.ROOT, "task data: %d file(s) fetched, %d already present, in %s%n", fetched, entries.size() - fetched, root);
    }

    private void fetch(Entry e, Path target) throws IOException {
        String url = mirror == null ? e.url() : e.url().replace(GITHUB_RAW, mirror);
        Path part = target.resolveSibling(target.getFileName() + ".part");
        IOException last = null;
        for (int attempt = 1; attempt <= attempts; attempt++) {
            try {
                long have = Files.exists(part) ? Files.size(part) : 0;
                if (have > e.bytes()) {
                    Files.delete(part);
                    have = 0;
                }
                HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofSeconds(60)).GET();
                if (have > 0) req.header("Range", "bytes=" + have + "-");
                HttpResponse<InputStream> resp = client.send(req.build(), HttpResponse.BodyHandlers.ofInputStream());
                int code = resp.statusCode();
                try (InputStream body = resp.body()) {
                    if (code == 404) throw new IOException(url + ": 404 not found");
                    boolean append = code == 206;
                    if (code != 200 && code != 206) throw new IOException(url + ": HTTP " + code);
                    try (FileChannel ch = FileChannel.open(part, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                            append ? StandardOpenOption.APPEND : StandardOpenOption.TRUNCATE_EXISTING)) {
                        byte[] buf = new byte[1 << 16];
                        for (int n; (n = body.read(buf)) > 0; ) ch.write(java.nio.ByteBuffer.wrap(buf, 0, n));
                        ch.force(true);
                    }
                }
                if (Files.size(part) < e.bytes()) throw new IOException(url + ": connection closed after " + Files.size(part) + " of " + e.bytes() + " bytes");
                String got = sha256(part);
                if (!got.equals(e.sha256())) {
                    Files.delete(part);
                    throw new ChecksumException(target + ": SHA-256 " + got + " from " + url + " is not the expected " + e.sha256());
                }
                Files.move(part, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
                log.println("task data: " + e.path() + " (" + e.bytes() + " bytes)");
                return;
            } catch (UnknownHostException | ConnectException | HttpConnectTimeoutException ex) {
                throw new IOException("cannot reach " + URI.create(url).getHost() + " (offline?): " + ex
                        + ". Place the files by hand under " + target.getParent().getParent() + " (layout: arc/ARC-Easy/ARC-Easy-Test.jsonl, "
                        + "mmlu/test/<subject>_test.csv, gsm8k/test.jsonl, humaneval/HumanEval.jsonl.gz, sft/alpaca_5000/alpaca_5000.json) "
                        + "or point --task-data at a folder that has them", ex);
            } catch (ChecksumException ex) {
                throw ex;
            } catch (IOException ex) {
                last = ex;
                if (ex.getMessage() != null && ex.getMessage().endsWith("404 not found")) throw ex;
                log.println("task data: " + e.path() + " attempt " + attempt + " failed: " + ex.getMessage());
                sleep(backoff.multipliedBy(1L << (attempt - 1)));
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while downloading " + url, ex);
            }
        }
        throw new IOException(url + ": failed after " + attempts + " attempts (the partial file " + part + " is kept for the next run)", last);
    }

    static final class ChecksumException extends IOException {
        ChecksumException(String m) {
            super(m);
        }
    }

    private static void sleep(Duration d) throws IOException {
        try {
            Thread.sleep(d.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IOException("interrupted", e);
        }
    }

    static String sha256(Path file) throws IOException {
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), MessageDigest.getInstance("SHA-256"))) {
            in.transferTo(java.io.OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(((DigestInputStream) in).getMessageDigest().digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
