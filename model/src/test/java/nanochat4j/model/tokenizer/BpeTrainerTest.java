package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class BpeTrainerTest {

    private static final int SPECIALS = Tokenizer.SPECIAL_TOKENS.size();

    private static BpeTrainer.Result train(List<String> docs, int merges, int threads) {
        return BpeTrainer.train(docs.iterator(), new BpeTrainer.Options(256 + SPECIALS + merges, Long.MAX_VALUE, Integer.MAX_VALUE, threads),
                BpeTrainer.Progress.NONE);
    }

    @Test
    void handWorkedExampleBreaksTheTieToTheSmallestPair() {
        // chunks "aaab" ×1 and "ab" ×1: (a,a)=2 and (a,b)=2 tie -> (97,97) first; "aaab" becomes [256,a,b]
        // (non-overlapping, left to right); then (a,b)=2 -> 257; then (256,257)=1 -> 258; then no pair is left.
        BpeTrainer.Result r = train(List.of("aaab", "ab"), 10, 1);
        Tokenizer tok = r.tokenizer();
        assertEquals(3, r.merges(), "stops early once no pair is left");
        assertArrayEquals(new int[][] {{97, 97}, {97, 98}, {256, 257}}, tok.merges());
        assertEquals(256 + 3 + SPECIALS, tok.vocabSize());
        assertEquals("aaab", new String(tok.tokenBytes(258)));
        assertArrayEquals(new int[] {258}, tok.encode("aaab"));
        assertArrayEquals(new int[] {256, 98}, tok.encode("aab"), "lowest rank first: aa (256) before ab (257)");
        assertArrayEquals(new int[] {257, 257}, tok.encode("abab"));
        assertEquals(256 + 3, tok.bosId(), "specials follow the merges, BOS first");
    }

    @Test
    void weightedCountsDecideAcrossChunks() {
        // " xy" ×3 -> pairs (32,x)=3,(x,y)=3 ; "yz" ×4 -> (y,z)=4 wins first, then the tie (32,120) < (120,121)
        List<String> docs = List.of(" xy xy xy", "yz", "yz", "yz", "yz");
        Tokenizer tok = train(docs, 2, 2).tokenizer();
        assertArrayEquals(new int[][] {{'y', 'z'}, {' ', 'x'}}, tok.merges());
    }

    @Test
    void mergesEqualAFullRecountReferenceOnRandomCorpora() {
        Random r = new Random(42);
        for (int t = 0; t < 30; t++) {
            List<String> docs = new ArrayList<>();
            int nd = 1 + r.nextInt(20);
            String alphabet = t % 3 == 0 ? "ab " : t % 3 == 1 ? "abc d\n" : "";
            for (int d = 0; d < nd; d++) {
                if (alphabet.isEmpty()) {
                    docs.add(TextGen.random(r, 30));
                } else {
                    StringBuilder sb = new StringBuilder();
                    for (int i = r.nextInt(60); i > 0; i--) sb.append(alphabet.charAt(r.nextInt(alphabet.length())));
                    docs.add(sb.toString());
                }
            }
            if (String.join("", docs).isEmpty()) docs.add("x");
            int merges = 1 + r.nextInt(60);
            List<int[]> expected = Reference.train(docs, merges);
            int[][] got = train(docs, merges, 1 + r.nextInt(3)).tokenizer().merges();
            assertArrayEquals(expected.toArray(new int[0][]), got, "corpus " + t + ": " + docs);
        }
    }

    @Test
    void resultDoesNotDependOnTheThreadCount() {
        Random r = new Random(5);
        List<String> docs = new ArrayList<>();
        for (int d = 0; d < 3000; d++) docs.add(TextGen.random(r, 40));
        int[][] one = train(docs, 300, 1).tokenizer().merges();
        for (int threads : new int[] {2, 3, 4}) {
            assertArrayEquals(one, train(docs, 300, threads).tokenizer().merges(), threads + " threads");
        }
    }

    @Test
    void docCapCropsToCodePointsAndMaxCharsIncludesTheCrossingDocument() {
        // "🙂" is 2 UTF-16 units but 1 code point: a cap of 3 keeps "🙂🙂🙂" whole
        List<String> docs = List.of("\uD83D\uDE42\uD83D\uDE42\uD83D\uDE42xyz", "abcd", "never read");
        BpeTrainer.Result r = BpeTrainer.train(docs.iterator(), new BpeTrainer.Options(300, 4, 3, 2), BpeTrainer.Progress.NONE);
        assertEquals(2, r.documents(), "the second document crosses max-chars (3 + 3 > 4) and is the last one read");
        assertEquals(6, r.chars(), "3 code points of each cropped document");
        Tokenizer tok = r.tokenizer();
        // merging runs until no pair is left, so each cropped chunk ends as one token, and nothing cropped is there
        assertTrue(TokenizerTest.idOf(tok, "\uD83D\uDE42\uD83D\uDE42\uD83D\uDE42") >= 256);
        assertTrue(TokenizerTest.idOf(tok, "abc") >= 256);
        assertEquals(-1, TokenizerTest.idOf(tok, "abcd"));
        assertEquals(-1, TokenizerTest.idOf(tok, "xyz"));
    }

    @Test
    void badInputGivesClearMessages() {
        var tooSmall = assertThrows(IllegalArgumentException.class, () -> new BpeTrainer.Options(264, 10, 10, 1));
        assertTrue(tooSmall.getMessage().contains("at least 265"), tooSmall.getMessage());
        var empty = assertThrows(IllegalArgumentException.class, () -> train(List.of(), 10, 2));
        assertTrue(empty.getMessage().startsWith("empty corpus"), empty.getMessage());
        var blank = assertThrows(IllegalArgumentException.class, () -> train(List.of("", ""), 10, 1));
        assertTrue(blank.getMessage().contains("2 documents"), blank.getMessage());
    }

    @Test
    void failureInTheDocumentStreamSurfaces() {
        Iterator<String> broken = new Iterator<>() {
            int n;

            public boolean hasNext() {
                return true;
            }

            public String next() {
                if (n++ == 3) throw new IllegalStateException("shard 7 is corrupt");
                return "text";
            }
        };
        var e = assertThrows(IllegalStateException.class, () -> BpeTrainer.train(broken, new BpeTrainer.Options(300, 100, 10, 2), BpeTrainer.Progress.NONE));
        assertEquals("shard 7 is corrupt", e.getMessage());
    }
}
