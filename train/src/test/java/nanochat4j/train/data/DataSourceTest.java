package nanochat4j.train.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import nanochat4j.tensor.fixture.SharedDir;
import org.apache.parquet.format.CompressionCodec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** --data DIR: file discovery and order, the split, JSONL and text documents, Gutenberg stripping. */
class DataSourceTest {
    @TempDir
    Path tmp;

    @Test
    void picksUpParquetJsonlAndTxtSortedByNameAndSplitsOffTheLastAsVal() throws IOException {
        ParquetTextWriter.write(tmp.resolve("b.parquet"), List.of("p0", "p1"), 1024, CompressionCodec.ZSTD);
        Files.writeString(tmp.resolve("a.jsonl"), "{\"text\": \"j0\"}\n\n{\"text\": \"j1\", \"id\": 7}\n");
        Files.writeString(tmp.resolve("c.txt"), "t0");
        Files.writeString(tmp.resolve("shard_00009.parquet.tmp"), "half a download");
        Files.writeString(tmp.resolve("notes.md"), "ignored");
        Files.createDirectory(tmp.resolve("sub.txt"));
        DataSource src = DataSource.open(tmp, false);
        assertEquals(List.of("a.jsonl", "b.parquet", "c.txt"),
                src.files().stream().map(f -> f.path().getFileName().toString()).toList());
        assertEquals(List.of("j0", "j1", "p0", "p1"), list(src.documents(DataSource.Split.TRAIN)));
        assertEquals(List.of("t0"), list(src.documents(DataSource.Split.VAL)));
        assertEquals(List.of("j0", "j1", "p0", "p1", "t0"), list(DataSource.documents(src.files())));
    }

    @Test
    void emptyOrMissingDirectoryAndSingleFileFailWithTheOptions() throws IOException {
        IOException e = assertThrows(IOException.class, () -> DataSource.open(tmp.resolve("nope"), false));
        assertTrue(e.getMessage().contains("not found") && e.getMessage().contains("nope"), e.getMessage());
        e = assertThrows(IOException.class, () -> DataSource.open(tmp, false));
        assertTrue(e.getMessage().contains("*.parquet, *.jsonl or *.txt"), e.getMessage());
        Files.writeString(tmp.resolve("only.txt"), "x");
        DataSource src = DataSource.open(tmp, false);
        IllegalArgumentException iae = assertThrows(IllegalArgumentException.class, () -> src.files(DataSource.Split.TRAIN));
        assertTrue(iae.getMessage().contains("at least 2") && iae.getMessage().contains("only.txt"), iae.getMessage());
    }

    @Test
    void jsonlRowGroupsAre1024LinesAndBadLinesNameFileAndLine() throws IOException {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 2100; i++) sb.append("{\"text\": \"doc ").append(i).append("\\nline two\"}\n");
        Path p = tmp.resolve("d.jsonl");
        Files.writeString(p, sb);
        JsonlFile f = JsonlFile.open(p);
        assertEquals(3, f.rowGroupCount());
        assertEquals("doc 1024\nline two", f.rowGroup(1).getFirst());
        assertEquals(2100 - 2048, f.rowGroup(2).size());
        assertEquals("doc 2099\nline two", f.rowGroup(2).getLast());

        Files.writeString(p, "{\"text\": \"ok\"}\n{\"txt\": \"wrong field\"}\n");
        IOException e = assertThrows(IOException.class, () -> JsonlFile.open(p).rowGroup(0));
        assertTrue(e.getMessage().contains("d.jsonl:2") && e.getMessage().contains("\"text\""), e.getMessage());
        Files.writeString(p, "{\"text\": \"ok\"}\n{\"text\": \"ok\"}\n{\"text\": unquoted}\n");
        e = assertThrows(IOException.class, () -> JsonlFile.open(p).rowGroup(0));
        assertTrue(e.getMessage().contains("d.jsonl:3") && e.getMessage().contains("not valid JSON"), e.getMessage());
        // through the lazy iterable the same error surfaces unchecked
        Files.writeString(tmp.resolve("e.txt"), "val");
        UncheckedIOException u = assertThrows(UncheckedIOException.class,
                () -> list(DataSource.open(tmp, false).documents(DataSource.Split.TRAIN)));
        assertTrue(u.getMessage().contains("d.jsonl:3"), u.getMessage());
    }

    @Test
    void gutenbergStrippingKeepsOnlyTheTextBetweenTheMarkersWithBomAndCrlf() throws IOException {
        String book = "\uFEFFThe Project Gutenberg eBook of Tiny\r\nLicense blah\r\n\r\n"
                + "*** START OF THE PROJECT GUTENBERG EBOOK TINY: A VERY LONG TITLE THAT\r\nWRAPS ***\r\n\r\n"
                + "Chapter 1\r\n\r\nIt was a dark\r\nand stormy night.\r\n\r\n"
                + "*** END OF THE PROJECT GUTENBERG EBOOK TINY ***\r\n\r\nMore license\r\n";
        Path p = tmp.resolve("tiny.txt");
        Files.write(p, book.getBytes(StandardCharsets.UTF_8));
        assertEquals(List.of("Chapter 1\n\nIt was a dark\nand stormy night."), new TextFile(p, true).rowGroup(0));
        List<String> raw = new TextFile(p, false).rowGroup(0);
        assertEquals(1, raw.size());
        assertTrue(raw.getFirst().startsWith("The Project Gutenberg eBook of Tiny\nLicense blah\n\n*** START"), raw.getFirst());
        assertFalse(raw.getFirst().contains("\r") || raw.getFirst().contains("\uFEFF"));
        // no markers: stripping keeps everything
        assertEquals("plain text", TextFile.stripGutenberg("plain text"));
    }

    @Test
    void longTextSplitsAtParagraphsIntoBoundedDocuments() {
        List<String> paragraphs = new ArrayList<>();
        for (int i = 0; i < 100; i++) paragraphs.add(("para" + i + " ").repeat(20 + i % 30).strip());
        String text = String.join("\n\n  \n", paragraphs) + "\n\n" + "x".repeat(5000) + " tail";
        List<String> docs = TextFile.splitDocuments(text, 2048);
        for (String d : docs) assertTrue(d.length() <= 2048 && !d.isBlank(), "length " + d.length());
        // nothing lost but the paragraph separators: every paragraph appears whole, in order
        String joined = String.join("\n\n", docs);
        int at = 0;
        for (String para : paragraphs) {
            int i = joined.indexOf(para, at);
            assertTrue(i >= at, "paragraph missing or out of order: " + para.substring(0, 10));
            at = i + para.length();
        }
        // an unbreakable run is cut hard at the bound; its rest keeps the whitespace-separated tail
        assertEquals("x".repeat(2048), docs.get(docs.size() - 3));
        assertEquals("x".repeat(2048), docs.get(docs.size() - 2));
        assertEquals("x".repeat(5000 - 4096) + " tail", docs.getLast());
        // greedy: a document is only closed when the next paragraph would not fit
        for (int i = 0; i + 1 < docs.size() - 3; i++) {
            String nextPara = docs.get(i + 1).split("\n\n")[0];
            assertTrue(docs.get(i).length() + 2 + nextPara.length() > 2048, "doc " + i + " could have held the next paragraph");
        }
        assertEquals(List.of("short file"), TextFile.splitDocuments("short file\n", 2048));
    }

    @Test
    void realGutenbergBooksStripAndSplit() throws IOException {
        Path dir = SharedDir.locate("data/pretrain_text/gutenberg_books");
        assumeTrue(dir != null, SharedDir.skipMessage("data/pretrain_text/gutenberg_books"));
        TextFile alice = new TextFile(dir.resolve("classics__alice_in_wonderland.txt"), true);
        List<String> docs = alice.documents();
        assertTrue(docs.getFirst().startsWith("[Illustration]") || docs.getFirst().contains("Alice"), docs.getFirst());
        for (String d : docs) assertFalse(d.contains("Project Gutenberg") && d.contains("*** END"), d);
        assertFalse(String.join("", docs).contains("*** START OF"));
        assertTrue(docs.size() > 50 && docs.size() < 200, "docs " + docs.size());
        DataSource src = DataSource.open(dir, true);
        assertEquals("specialized_texts__ponies_past_and_present.txt", src.files(DataSource.Split.VAL).getFirst().path().getFileName().toString());
    }

    static List<String> list(Iterable<String> docs) {
        List<String> out = new ArrayList<>();
        docs.forEach(out::add);
        return out;
    }
}
