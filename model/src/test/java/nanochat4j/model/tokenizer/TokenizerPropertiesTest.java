package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.constraints.Size;
import net.jqwik.api.constraints.StringLength;

/** jqwik properties over arbitrary strings (any UTF-16 unit, so lone surrogates too) and arbitrary bytes. */
class TokenizerPropertiesTest {

    private static final Tokenizer TOK;

    static {
        Random r = new Random(11);
        List<String> docs = new ArrayList<>(TokenizerTest.CORPUS);
        for (int i = 0; i < 1000; i++) docs.add(TextGen.random(r, 30));
        TOK = Tokenizer.train(docs, 1200);
    }

    @Provide
    Arbitrary<String> texts() {
        return Arbitraries.oneOf(
                Arbitraries.strings().all().ofMaxLength(60),
                Arbitraries.strings().withChars(" \t\r\n'sSlLvVeEtTdDmM0123456789.!?,ſK\u00A0\u2028\u0301é你🙂".toCharArray()).ofMaxLength(60),
                Arbitraries.strings().withCharRange((char) 0x20, (char) 0x7E).ofMaxLength(80));
    }

    @Property(tries = 2000)
    void decodeOfEncodeIsTheTextWithLoneSurrogatesReplaced(@ForAll("texts") String s) {
        assertEquals(Utf8.replaceLoneSurrogates(s), TOK.decode(TOK.encode(s)));
    }

    @Property(tries = 2000)
    void scannerSplitsLikeTheRegex(@ForAll("texts") String s) {
        String clean = Utf8.replaceLoneSurrogates(s);
        assertEquals(PretokenizerTest.regexChunks(clean), PretokenizerTest.scannerChunks(clean));
    }

    @Property(tries = 2000)
    void bytesRoundTripThroughTheByteLevelApi(@ForAll @Size(max = 80) byte[] b) {
        assertArrayEquals(b, TOK.decodeBytes(TOK.encodeBytes(b)));
    }

    @Property(tries = 1000)
    void plainTextNeverYieldsSpecialTokens(@ForAll("texts") String s, @ForAll @StringLength(max = 3) String t) {
        for (int id : TOK.encode(s + String.join(t, Tokenizer.SPECIAL_TOKENS))) assertFalse(TokenizerTest.isSpecial(TOK, id));
    }

    @Property(tries = 300)
    void encodingEqualsTheTiktokenReference(@ForAll("texts") String s) {
        List<Integer> got = new ArrayList<>();
        for (int id : TOK.encode(s)) got.add(id);
        assertEquals(Reference.encode(TOK, s), got);
    }
}
