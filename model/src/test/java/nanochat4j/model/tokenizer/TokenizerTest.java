package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.stream.Stream;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Encoding and decoding; the first tests mirror nanochat's tests/test_tokenizer.py. */
class TokenizerTest {

    static final List<String> CORPUS;

    static {
        List<String> c = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            c.add("The quick brown fox jumps over the lazy dog.");
            c.add("hello world, hello tokenizer, hello hello hello");
            c.add("Numbers like 12345 and unicode like naïve café 你好 🙂 should survive.");
            c.add("def f(x):\n    return x + 1\n");
        }
        CORPUS = List.copyOf(c);
    }

    static Tokenizer tok;
    static Tokenizer big; // trained on random text, many merges, for round trips and the reference comparison

    @BeforeAll
    static void train() {
        tok = Tokenizer.train(CORPUS, 256 + Tokenizer.SPECIAL_TOKENS.size() + 35);
        Random r = new Random(1);
        List<String> docs = new ArrayList<>(CORPUS);
        for (int i = 0; i < 2000; i++) docs.add(TextGen.random(r, 30));
        big = Tokenizer.train(docs, 2000);
    }

    @Test
    void vocabSizeIsBytesPlusSpecialsPlusMerges() {
        assertEquals(256 + 9 + 35, tok.vocabSize());
    }

    @Test
    void roundTripsNanochatSamples() {
        for (String text : List.of("hello world", "naïve café 你好 🙂", "unseen tokens: zqxjkv")) {
            assertEquals(text, tok.decode(tok.encode(text)));
        }
    }

    @Test
    void specialTokensAreDistinctAndNotSpecialInPlainText() {
        Set<Integer> ids = new HashSet<>();
        for (String s : Tokenizer.SPECIAL_TOKENS) ids.add(tok.encodeSpecial(s));
        assertEquals(9, ids.size());
        assertEquals(tok.encodeSpecial("<|bos|>"), tok.bosId());
        assertEquals(256 + 35, tok.bosId(), "specials come right after the mergeable tokens, BOS first");
        assertTrue(tok.encode("<|bos|>").length > 1, "special-token text in plain input is ordinary text");
        assertEquals("<|assistant_end|>", tok.decode(new int[] {tok.encodeSpecial("<|assistant_end|>")}));
        assertThrows(IllegalArgumentException.class, () -> tok.encodeSpecial("<|nope|>"));
    }

    @Test
    void prependAndAppendByNameOrId() {
        int[] ids = tok.encode("hello", "<|bos|>", "<|user_end|>");
        assertEquals(tok.bosId(), ids[0]);
        assertEquals(tok.encodeSpecial("<|user_end|>"), ids[ids.length - 1]);
        assertArrayEquals(ids, tok.encode("hello", tok.bosId(), tok.encodeSpecial("<|user_end|>")));
    }

    @Test
    void batchEncodeEqualsSingle() {
        int[][] ids = tok.encodeBatch(List.of("hello", "world"));
        assertEquals(2, ids.length);
        assertArrayEquals(tok.encode("hello"), ids[0]);
        Random r = new Random(8);
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 500; i++) texts.add(TextGen.random(r, 40));
        int[][] batch = big.encodeBatch(texts, big.bosId(), -1);
        for (int i = 0; i < texts.size(); i++) assertArrayEquals(big.encode(texts.get(i), big.bosId(), -1), batch[i]);
    }

    @Test
    void roundTripsRandomUnicodeWithLoneSurrogatesAsReplacementChars() {
        Random r = new Random(2);
        for (int t = 0; t < 5000; t++) {
            String s = TextGen.random(r, 40);
            assertEquals(Utf8.replaceLoneSurrogates(s), big.decode(big.encode(s)), s);
            assertEquals(Utf8.replaceLoneSurrogates(s), tok.decode(tok.encode(s)), s);
        }
        assertEquals("a\uFFFDb", big.decode(big.encode("a\uD800b")), "a lone surrogate is encoded as U+FFFD");
    }

    @Test
    void roundTripsRandomBytesThroughTheByteLevelApi() {
        Random r = new Random(3);
        for (int t = 0; t < 3000; t++) {
            byte[] b;
            if (t % 2 == 0) {
                b = new byte[r.nextInt(50)];
                r.nextBytes(b);
            } else {
                byte[] valid = TextGen.random(r, 10).getBytes(StandardCharsets.UTF_8);
                b = valid.clone();
                if (b.length > 0) b[r.nextInt(b.length)] = (byte) (0x80 + r.nextInt(128));
            }
            assertArrayEquals(b, big.decodeBytes(big.encodeBytes(b)));
        }
    }

    @Test
    void encodingEqualsTiktokenMergeLoopReference() {
        Random r = new Random(4);
        for (int t = 0; t < 1500; t++) {
            String s = TextGen.random(r, 30);
            assertEquals(Reference.encode(big, s), box(big.encode(s)), s);
        }
        for (String s : CORPUS) assertEquals(Reference.encode(tok, s), box(tok.encode(s)), s);
    }

    @Test
    void longChunksUseTheHeapMergeWithTheSameResult() {
        // one chunk of 600 letters and one of 400 spaces + text: well over the 128-byte switch point
        Random r = new Random(6);
        for (int t = 0; t < 40; t++) {
            StringBuilder sb = new StringBuilder();
            String alphabet = t % 2 == 0 ? "helo" : "abcdefghijklmnopqrstuvwxyzé你";
            for (int i = 0; i < 200 + r.nextInt(600); i++) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
            String s = sb + " ".repeat(r.nextInt(400)) + "x";
            assertEquals(Reference.encode(big, s), box(big.encode(s)));
            assertEquals(Reference.encode(tok, s), box(tok.encode(s)));
        }
    }

    @Test
    void hugeChunksEncodeInLinearithmicTime() {
        // one 100k-char chunk of letters and one 100k-char run of spaces: a quadratic merge loop would take minutes
        String letters = "hello".repeat(20_000), spaces = " ".repeat(100_000) + "x";
        assertTimeoutPreemptively(java.time.Duration.ofSeconds(20), () -> {
            assertEquals(letters, big.decode(big.encode(letters)));
            assertEquals(spaces, big.decode(big.encode(spaces)));
        });
    }

    @Test
    void specialTokensAreNeverProducedFromPlainText() {
        Random r = new Random(9);
        for (int t = 0; t < 2000; t++) {
            String s = TextGen.random(r, 30) + Tokenizer.SPECIAL_TOKENS.get(t % 9);
            for (int id : big.encode(s)) assertFalse(isSpecial(big, id), s);
            byte[] b = new byte[20];
            r.nextBytes(b);
            for (int id : big.encodeBytes(b)) assertFalse(isSpecial(big, id));
        }
    }

    @Test
    void tokenBytesTableCountsRawBytesAndZeroForSpecials() {
        int[] tb = tok.tokenByteLengths();
        assertEquals(tok.vocabSize(), tb.length);
        for (int id = 0; id < 256; id++) assertEquals(1, tb[id]);
        for (int id = 256; id < tok.mergeableCount(); id++) assertEquals(tok.tokenBytes(id).length, tb[id]);
        for (String s : Tokenizer.SPECIAL_TOKENS) assertEquals(0, tb[tok.encodeSpecial(s)]);
    }

    @Test
    void idAndTokenHelpers() {
        int id = idOf(tok, "hello");
        assertTrue(id >= 256, "'hello' is a merged token of the test corpus");
        assertEquals("hello", tok.idToToken(id));
        assertEquals(-1, idOf(tok, "zqxjkv"));
        assertEquals("\uFFFD", tok.idToToken(0xE4), "a partial UTF-8 byte decodes to U+FFFD");
        assertThrows(IllegalArgumentException.class, () -> tok.decode(new int[] {tok.vocabSize()}));
    }

    @Test
    void roundTripsRealBooks() throws Exception {
        Path dir = SharedDir.locate("data/pretrain_text/gutenberg_books");
        assumeTrue(dir != null, SharedDir.skipMessage("data/pretrain_text/gutenberg_books"));
        List<Path> files;
        try (Stream<Path> st = Files.list(dir)) {
            files = st.filter(p -> p.toString().endsWith(".txt")).sorted().limit(3).toList();
        }
        List<String> texts = new ArrayList<>();
        for (Path f : files) texts.add(Files.readString(f));
        Tokenizer t = Tokenizer.train(texts, 3000);
        for (String s : texts) {
            int[] ids = t.encode(s);
            assertEquals(s, t.decode(ids));
            assertTrue(s.getBytes(StandardCharsets.UTF_8).length > 3.0 * ids.length, "a 3000-token vocabulary compresses English over 3 bytes/token");
            String head = s.substring(0, 20_000);
            assertEquals(Reference.encode(t, head), box(t.encode(head)));
        }
    }

    private static List<Integer> box(int[] a) {
        List<Integer> l = new ArrayList<>(a.length);
        for (int v : a) l.add(v);
        return l;
    }

    /** The specials are the last ids of the vocabulary. */
    static boolean isSpecial(Tokenizer t, int id) {
        return id >= t.vocabSize() - Tokenizer.SPECIAL_TOKENS.size();
    }

    /** The ordinary token whose bytes are {@code text}'s UTF-8, or -1 when no single token is. */
    static int idOf(Tokenizer t, String text) {
        byte[] want = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int id = 0; id < t.vocabSize() - Tokenizer.SPECIAL_TOKENS.size(); id++) {
            if (java.util.Arrays.equals(t.tokenBytes(id), want)) return id;
        }
        return -1;
    }
}
