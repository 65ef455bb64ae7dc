package nanochat4j.train.eval;

import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.time.Duration;
import java.util.Comparator;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipInputStream;

/**
 * Fetches nanochat's CORE eval bundle (a zip of core.yaml, eval_meta_data.csv and eval_data/) into
 * {@code <base>/eval_bundle}. Nothing half-written is ever left at the destination: the zip is downloaded to a temp
 * file, unpacked into a temp folder next to the destination, checked, then moved into place in one rename.
 */
public final class EvalBundleDownload {
    public static final String URL = "https://karpathy-public.s3.us-west-2.amazonaws.com/eval_bundle.zip";

    private EvalBundleDownload() {}

    public static void download(String url, Path dest) throws IOException {
        Path parent = dest.toAbsolutePath().getParent();
        Files.createDirectories(parent);
        Path zip = Files.createTempFile(parent, "eval_bundle", ".zip.tmp");
        Path staging = Files.createTempDirectory(parent, "eval_bundle.tmp");
        try {
            HttpClient http = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(30))
                    .followRedirects(HttpClient.Redirect.NORMAL).build();
            HttpResponse<Path> r;
            try {
                r = http.send(HttpRequest.newBuilder(URI.create(url)).timeout(Duration.ofMinutes(10)).build(),
                        HttpResponse.BodyHandlers.ofFile(zip));
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IOException("interrupted while downloading " + url, e);
            }
            if (r.statusCode() != 200) throw new IOException("downloading " + url + ": HTTP " + r.statusCode());
            try (FileChannel ch = FileChannel.open(zip, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            unzip(zip, staging, url);
            Path root = bundleRoot(staging);
            if (root == null) throw new IOException(url + ": the zip holds no core.yaml; not an eval bundle");
            CoreBundle.load(root); // validates core.yaml and eval_meta_data.csv before anything is moved
            if (Files.exists(dest)) deleteTree(dest);
            Files.move(root, dest, StandardCopyOption.ATOMIC_MOVE);
        } finally {
            Files.deleteIfExists(zip);
            if (Files.exists(staging)) deleteTree(staging);
        }
    }

    private static void unzip(Path zip, Path into, String url) throws IOException {
        try (InputStream in = Files.newInputStream(zip); ZipInputStream z = new ZipInputStream(in)) {
            ZipEntry e;
            int entries = 0;
            while ((e = z.getNextEntry()) != null) {
                entries++;
                Path target = into.resolve(e.getName()).normalize();
                if (!target.startsWith(into)) throw new IOException(url + ": zip entry " + e.getName() + " escapes the target folder");
                if (e.isDirectory()) {
                    Files.createDirectories(target);
                } else {
                    Files.createDirectories(target.getParent());
                    Files.copy(z, target);
                }
            }
            if (entries == 0) throw new IOException(url + ": not a zip file (or an empty one)");
        }
    }

    /** The folder holding core.yaml: the staging dir itself or its single top-level folder. */
    private static Path bundleRoot(Path staging) throws IOException {
        if (Files.isRegularFile(staging.resolve("core.yaml"))) return staging;
        try (Stream<Path> s = Files.list(staging)) {
            for (Path p : (Iterable<Path>) s::iterator) {
                if (Files.isRegularFile(p.resolve("core.yaml"))) return p;
            }
        }
        return null;
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
        }
    }
}
