package nanochat4j.tensor.cuda;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.List;

/**
 * On-disk cache of compiled kernels: one file per (source, options, driver, NVRTC) — the key is a SHA-256 of all
 * four, so editing a kernel, changing a tile size or updating the driver compiles afresh. Writes are atomic (temp
 * file, fsync, rename) so two processes compiling the same kernel never see half a file. An unreadable or
 * unwritable cache only costs a recompile.
 */
public final class PtxCache {
    private final Path dir;

    public PtxCache(Path dir) {
        this.dir = dir;
    }

    /** The default directory: {@code -Dnanochat4j.cuda.cache}, else $NANOCHAT_BASE_DIR/cuda-cache, else ~/.cache/nanochat4j/cuda-cache. */
    public static Path defaultDir() {
        String p = System.getProperty("nanochat4j.cuda.cache");
        if (p != null && !p.isBlank()) return Path.of(p);
        String base = System.getenv("NANOCHAT_BASE_DIR");
        if (base != null && !base.isBlank()) return Path.of(base, "cuda-cache");
        return Path.of(System.getProperty("user.home"), ".cache", "nanochat4j", "cuda-cache");
    }

    public Path dir() {
        return dir;
    }

    /** Hex SHA-256 over the parts, each length-prefixed so no two part lists collide. */
    public static String key(String source, List<String> options, String driver, String nvrtc) {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            for (String part : List.of(source, String.join("\u0000", options), driver, nvrtc)) {
                byte[] b = part.getBytes(StandardCharsets.UTF_8);
                md.update(ByteBuffer.allocate(8).putLong(b.length).array());
                md.update(b);
            }
            return HexFormat.of().formatHex(md.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 missing from this JDK", e);
        }
    }

    private Path file(String name, String key, String ext) {
        return dir.resolve(name + "-" + key.substring(0, 32) + "." + ext);
    }

    /** The cached image, or null. */
    public byte[] get(String name, String key, String ext) {
        Path f = file(name, key, ext);
        try {
            return Files.isRegularFile(f) ? Files.readAllBytes(f) : null;
        } catch (IOException e) {
            return null;
        }
    }

    /** Stores an image atomically; false (and nothing written) when the directory is not writable. */
    public boolean put(String name, String key, String ext, byte[] image) {
        Path f = file(name, key, ext);
        Path tmp = null;
        try {
            Files.createDirectories(dir);
            tmp = Files.createTempFile(dir, name + "-", ".tmp");
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE)) {
                ByteBuffer buf = ByteBuffer.wrap(image);
                while (buf.hasRemaining()) ch.write(buf);
                ch.force(true);
            }
            try {
                Files.move(tmp, f, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, f, StandardCopyOption.REPLACE_EXISTING);
            }
            return true;
        } catch (IOException e) {
            if (tmp != null) {
                try {
                    Files.deleteIfExists(tmp);
                } catch (IOException ignored) {
                    // best effort: a stray temp file is harmless
                }
            }
            return false;
        }
    }
}
