package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TokenizerFilesTest {

    static Tokenizer tok;

    @BeforeAll
    static void train() {
        tok = Tokenizer.train(TokenizerTest.CORPUS, 400);
    }

    private static void assertSameTokenizer(Tokenizer a, Tokenizer b) {
        assertEquals(a.vocabSize(), b.vocabSize());
        assertEquals(a.pattern(), b.pattern());
        assertEquals(a.specialTokens(), b.specialTokens());
        for (int id = 0; id < a.vocabSize(); id++) assertArrayEquals(a.tokenBytes(id), b.tokenBytes(id), "token " + id);
        Random r = new Random(1);
        for (int t = 0; t < 300; t++) {
            String s = TextGen.random(r, 30);
            assertArrayEquals(a.encode(s), b.encode(s), s);
        }
    }

    @Test
    void saveThenLoadGivesTheSameTokenizer(@TempDir Path dir) throws IOException {
        tok.save(dir);
        Tokenizer back = Tokenizer.load(dir);
        assertSameTokenizer(tok, back);
        assertArrayEquals(tok.merges(), back.merges());
        assertArrayEquals(tok.tokenByteLengths(), tokenBytes(dir.resolve(TokenizerFiles.TOKEN_BYTES_FILE)));
        String text = Files.readString(dir.resolve(TokenizerFiles.MODEL_FILE));
        assertTrue(text.startsWith("nanochat4j-bpe 1\npattern " + Pretokenizer.NANOCHAT_PATTERN + "\nspecials 9\n<|bos|>\n"), text.substring(0, 200));
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "no temp files left behind");
        }
    }

    @Test
    void tiktokenExportImportRoundTrips(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("ours.tiktoken");
        TiktokenFormat.write(tok, f);
        String first = Files.readAllLines(f).get(0);
        assertEquals("AA== 0", first, "base64 of byte 0, rank 0");
        assertEquals(tok.mergeableCount(), Files.readAllLines(f).size());
        Tokenizer back = TiktokenFormat.read(f);
        assertSameTokenizer(tok, back);
        // an imported merge-free vocabulary still saves in our format (merges derived from the token bytes)
        back.save(dir.resolve("again"));
        assertSameTokenizer(tok, Tokenizer.load(dir.resolve("again")));
    }

    @Test
    void aFileFromAnotherVersionIsRefusedByName(@TempDir Path dir) throws IOException {
        tok.save(dir);
        Path f = dir.resolve(TokenizerFiles.MODEL_FILE);
        String text = Files.readString(f);
        Files.writeString(f, text.replaceFirst("nanochat4j-bpe 1", "nanochat4j-bpe 2"));
        var e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("format version 2; this build reads version 1"), e.getMessage());

        Files.writeString(f, "{\"not\": \"ours\"}\n");
        e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("is not a nanochat4j tokenizer file"), e.getMessage());

        Files.writeString(f, text.substring(0, text.length() / 2));
        e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("truncated") || e.getMessage().contains("expected a merge"), e.getMessage());

        Files.writeString(f, text.replaceFirst("\n97 ", "\n97x "));
        e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("line "), e.getMessage());

        Files.write(f, new byte[] {(byte) 0xFF, (byte) 0xFE, 0, 1});
        e = assertThrows(IOException.class, () -> Tokenizer.load(dir));
        assertTrue(e.getMessage().contains("not a nanochat4j tokenizer file"), e.getMessage());

        e = assertThrows(IOException.class, () -> Tokenizer.load(dir.resolve("missing")));
        assertTrue(e.getMessage().contains("tok-train"), e.getMessage());
    }

    @Test
    void badTiktokenFilesNameTheLine(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("bad.tiktoken");
        Files.writeString(f, "AA== 0\nAQ== 2\n");
        var e = assertThrows(IOException.class, () -> TiktokenFormat.read(f));
        assertTrue(e.getMessage().contains("rank 1 is missing"), e.getMessage());
        Files.writeString(f, "AA== 0\n!!! 1\n");
        e = assertThrows(IOException.class, () -> TiktokenFormat.read(f));
        assertTrue(e.getMessage().contains("line 2"), e.getMessage());
    }

    /** token_bytes.bin as written: the line {@code nanochat4j-token-bytes 1 <n>}, then n little-endian int32. */
    private static int[] tokenBytes(Path f) throws IOException {
        byte[] all = Files.readAllBytes(f);
        int nl = 0;
        while (all[nl] != '\n') nl++;
        String[] head = new String(all, 0, nl, StandardCharsets.US_ASCII).split(" ");
        assertEquals("nanochat4j-token-bytes", head[0]);
        assertEquals("1", head[1]);
        int n = Integer.parseInt(head[2]);
        assertEquals(4L * n, all.length - nl - 1);
        java.nio.ByteBuffer buf = java.nio.ByteBuffer.wrap(all, nl + 1, 4 * n).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) out[i] = buf.getInt();
        return out;
    }
}
