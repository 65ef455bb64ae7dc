package nanochat4j.train.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class TokCommandsTest {

    /** Runs a command, returning exit code, stdout and stderr. */
    private record Run(int code, String out, String err) {}

    private static Run run(Object command, String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = new CommandLine(command).execute(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    private static Path corpus(Path dir) throws Exception {
        Path data = Files.createDirectories(dir.resolve("data"));
        StringBuilder a = new StringBuilder(), b = new StringBuilder();
        for (int i = 0; i < 200; i++) {
            a.append("The quick brown fox jumps over the lazy dog number ").append(i).append(".\n\n");
            b.append("Validation text ").append(i).append(" is never used for training.\n\n");
        }
        Files.writeString(data.resolve("a_train.txt"), a);
        Files.writeString(data.resolve("z_val.txt"), b);
        return data;
    }

    @Test
    void tokTrainWritesATokenizerThatTokEvalReads(@TempDir Path dir) throws Exception {
        Path data = corpus(dir);
        Path out = dir.resolve("tok");
        Run r = run(new TokTrainCommand(), "--data", data.toString(), "--out", out.toString(), "--vocab-size", "300", "--threads", "2");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("saved"), r.out());
        Tokenizer tok = Tokenizer.load(out);
        assertEquals(300, tok.vocabSize());
        assertTrue(idOf(tok, " the") >= 256 || idOf(tok, " fox") >= 256, "frequent words became tokens");
        assertEquals(-1, idOf(tok, "Validation"), "the last file (validation split) is not trained on");
        assertTrue(Files.isRegularFile(out.resolve(TokenizerFiles.TOKEN_BYTES_FILE)));

        Run e = run(new TokEvalCommand(), "--tokenizer", out.toString(), "--data", data.toString(),
                "--code", dir.resolve("none.jsonl").toString(), "--chat", dir.resolve("none.json").toString());
        assertEquals(0, e.code(), e.out() + e.err());
        for (String row : new String[] {"news", "korean", "code", "math", "science", "pretrain-train", "pretrain-val"}) {
            assertTrue(e.out().lines().anyMatch(l -> l.startsWith(row + " ") && l.trim().endsWith("ok")), row + " row in\n" + e.out());
        }
        assertTrue(e.out().contains("note: no code text"), e.out());

        // comparing with the same vocabulary exported as .tiktoken: identical counts, 0% difference
        Path tiktoken = dir.resolve("ours.tiktoken");
        nanochat4j.model.tokenizer.TiktokenFormat.write(tok, tiktoken);
        Run c = run(new TokEvalCommand(), "--tokenizer", out.toString(), "--data", data.toString(), "--compare", tiktoken.toString(),
                "--code", dir.resolve("none.jsonl").toString(), "--chat", dir.resolve("none.json").toString());
        assertEquals(0, c.code(), c.out() + c.err());
        assertTrue(c.out().lines().filter(l -> l.startsWith("news ")).allMatch(l -> l.trim().endsWith("+0.0%")), c.out());
    }

    @Test
    void maxCharsStopsReading(@TempDir Path dir) throws Exception {
        Path data = corpus(dir);
        Run r = run(new TokTrainCommand(), "--data", data.toString(), "--out", dir.resolve("t").toString(), "--vocab-size", "400",
                "--max-chars", "100");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("read 1 documents"), r.out());
    }

    @Test
    void nonUtf8TextIsDecodedWithReplacementAndCounted(@TempDir Path dir) throws Exception {
        Path data = corpus(dir);
        byte[] good = "caf\u00e9 text here\n\nmore words\n".repeat(20).getBytes(StandardCharsets.UTF_8);
        byte[] bad = java.util.Arrays.copyOf(good, good.length + 3);
        bad[5] = (byte) 0xFF;                      // a stray byte
        bad[good.length] = (byte) 0xE2;            // a truncated 3-byte sequence at the end: one replacement
        bad[good.length + 1] = (byte) 0x82;
        bad[good.length + 2] = (byte) 0xED;        // ED alone at the very end: one more
        Files.write(data.resolve("b_broken.txt"), bad);
        Run r = run(new TokTrainCommand(), "--data", data.toString(), "--out", dir.resolve("t").toString(), "--vocab-size", "300");
        assertEquals(0, r.code(), r.out() + r.err());
        assertTrue(r.out().contains("b_broken.txt is not valid UTF-8: 3 invalid byte sequence(s) replaced by U+FFFD"), r.out());
    }

    @Test
    void badInputGivesOneClearLine(@TempDir Path dir) throws Exception {
        Path empty = Files.createDirectories(dir.resolve("empty"));
        Run r = run(new TokTrainCommand(), "--data", empty.toString(), "--out", dir.resolve("t").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("tok-train: no *.parquet, *.jsonl or *.txt files in"), r.err());

        r = run(new TokTrainCommand(), "--data", corpus(dir).toString(), "--out", dir.resolve("t").toString(), "--vocab-size", "100");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("vocab size 100 is too small"), r.err());

        Path blank = Files.createDirectories(dir.resolve("blank"));
        Files.writeString(blank.resolve("a.txt"), "\n\n");
        Files.writeString(blank.resolve("b.txt"), "\n\n");
        r = run(new TokTrainCommand(), "--data", blank.toString(), "--out", dir.resolve("t").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("empty corpus"), r.err());

        r = run(new TokEvalCommand(), "--tokenizer", dir.resolve("missing").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().contains("tok-train"), r.err());
    }

    /** The ordinary token whose bytes are {@code text}'s UTF-8, or -1 when no single token is. */
    private static int idOf(Tokenizer t, String text) {
        byte[] want = text.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        for (int id = 0; id < t.vocabSize() - Tokenizer.SPECIAL_TOKENS.size(); id++) {
            if (java.util.Arrays.equals(t.tokenBytes(id), want)) return id;
        }
        return -1;
    }
}
