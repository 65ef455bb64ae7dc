package nanochat4j.model.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;

class PretokenizerTest {

    private static final Pattern REGEX = Pretokenizer.compile(Pretokenizer.NANOCHAT_PATTERN);

    static List<String> regexChunks(String s) {
        List<String> out = new ArrayList<>();
        Matcher m = REGEX.matcher(s);
        int last = 0;
        while (m.find()) {
            if (last != m.start()) throw new AssertionError("the regex must tile the text: gap before " + m.start() + " in " + escape(s));
            out.add(m.group());
            last = m.end();
        }
        if (last != s.length()) throw new AssertionError("the regex must cover all of " + escape(s));
        return out;
    }

    static List<String> scannerChunks(String s) {
        List<String> out = new ArrayList<>();
        char[] c = s.toCharArray();
        new Pretokenizer(Pretokenizer.NANOCHAT_PATTERN).split(c, c.length, (a, b) -> out.add(s.substring(a, b)));
        return out;
    }

    private static String escape(String s) {
        StringBuilder b = new StringBuilder();
        s.codePoints().forEach(cp -> b.append(cp >= 0x20 && cp < 0x7F ? Character.toString(cp) : String.format("\\u{%x}", cp)));
        return b.toString();
    }

    @Test
    void splitsLikeTheGpt4PatternWithTwoDigitNumbers() {
        assertEquals(List.of("Hello", " world", "!", " It", "'s", " ", "12", "34", "5", " ", " apples", ".\n\n"),
                scannerChunks("Hello world! It's 12345  apples.\n\n"));
        assertEquals(List.of("def", " f", "(x", "):\n", "   ", " return", " x", " +", " ", "1", "\n"),
                scannerChunks("def f(x):\n    return x + 1\n"));
        assertEquals(List.of("a", " \r\n", "b", "\t", " c"), scannerChunks("a \r\nb\t c"));
    }

    @Test
    void scannerEqualsJavaRegexOnRandomUnicode() {
        Random r = new Random(12345);
        for (int t = 0; t < 30_000; t++) {
            String s = TextGen.random(r, 24);
            assertEquals(regexChunks(s), scannerChunks(s), () -> "text " + escape(s));
        }
    }

    @Test
    void scannerEqualsJavaRegexOnLongRandomText() {
        Random r = new Random(99);
        StringBuilder sb = new StringBuilder();
        while (sb.length() < 1_000_000) sb.append(TextGen.random(r, 50));
        String s = sb.toString();
        assertEquals(regexChunks(s), scannerChunks(s));
    }

    @Test
    void scannerEqualsJavaRegexOnRealBooks() throws Exception {
        Path dir = SharedDir.locate("data/pretrain_text/gutenberg_books");
        assumeTrue(dir != null, SharedDir.skipMessage("data/pretrain_text/gutenberg_books"));
        List<Path> files;
        try (Stream<Path> st = Files.list(dir)) {
            files = st.filter(p -> p.toString().endsWith(".txt")).sorted().limit(6).toList();
        }
        for (Path f : files) {
            String s = new String(Files.readAllBytes(f), StandardCharsets.UTF_8);
            assertEquals(regexChunks(s), scannerChunks(s), f.toString());
        }
    }

    @Test
    void otherPatternsRunThroughTheRegex() {
        Pretokenizer words = new Pretokenizer("\\p{L}+");
        List<String> out = new ArrayList<>();
        String s = "ab, cd";
        words.split(s.toCharArray(), s.length(), (a, b) -> out.add(s.substring(a, b)));
        assertEquals(List.of("ab", ", ", "cd"), out, "text between matches is kept as its own chunk");
    }
}
