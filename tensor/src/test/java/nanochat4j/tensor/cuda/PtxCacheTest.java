package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PtxCacheTest {
    @Test
    void keyCoversSourceOptionsDriverAndCompiler() {
        String k = PtxCache.key("src", List.of("-DA=1"), "13000", "13.0");
        assertNotEquals(k, PtxCache.key("src2", List.of("-DA=1"), "13000", "13.0"));
        assertNotEquals(k, PtxCache.key("src", List.of("-DA=2"), "13000", "13.0"));
        assertNotEquals(k, PtxCache.key("src", List.of("-DA=1"), "12080", "13.0"));
        assertNotEquals(k, PtxCache.key("src", List.of("-DA=1"), "13000", "13.1"));
        assertNotEquals(PtxCache.key("ab", List.of(), "c", "d"), PtxCache.key("a", List.of(), "bc", "d"), "parts are delimited");
    }

    @Test
    void putThenGetRoundTripsAndLeavesNoTempFiles(@TempDir Path tmp) throws Exception {
        PtxCache c = new PtxCache(tmp.resolve("cache"));
        String k = PtxCache.key("s", List.of(), "1", "2");
        assertNull(c.get("attention", k, "ptx"));
        byte[] img = "// PTX\n.version 9.0\n".getBytes();
        assertTrue(c.put("attention", k, "ptx", img));
        assertArrayEquals(img, c.get("attention", k, "ptx"));
        try (var files = Files.list(tmp.resolve("cache"))) {
            assertTrue(files.allMatch(p -> p.toString().endsWith(".ptx")));
        }
    }

    @Test
    void anUnwritableCacheIsOnlyAMiss(@TempDir Path tmp) throws Exception {
        Path file = Files.writeString(tmp.resolve("not-a-dir"), "x");
        PtxCache c = new PtxCache(file.resolve("sub"));
        assertFalse(c.put("x", PtxCache.key("s", List.of(), "1", "2"), "ptx", new byte[] {1}));
    }
}
