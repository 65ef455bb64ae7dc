package nanochat4j.train.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import nanochat4j.tensor.fixture.SharedDir;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.CompressionCodec;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.Util;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Reading nanochat-style zstd shards and a real pyarrow Snappy/dictionary file; corrupt files fail naming the file. */
class ParquetFileTest {
    private static final String SAMPLE = "data/parquet_samples/financial_sentiment_test-00000-of-00001.parquet";

    @TempDir
    Path tmp;

    static List<String> docs(int n) {
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            docs.add("document " + i + ": " + "naïve café ☕ 𝄞 ".repeat(i % 7) + "end".repeat(i % 3));
        }
        docs.set(5, ""); // an empty document stays a document
        return docs;
    }

    @Test
    void zstdShardWithRowGroupsOf1024RoundTrips() throws IOException {
        List<String> docs = docs(2500);
        Path p = tmp.resolve("shard_00000.parquet");
        ParquetTextWriter.write(p, docs, 1024, CompressionCodec.ZSTD);
        ParquetFile f = ParquetFile.open(p);
        assertEquals(3, f.rowGroupCount());
        assertEquals(2500, f.rowCount());
        assertEquals(1024, f.rowGroupRows(0));
        assertEquals(docs.subList(0, 1024), f.rowGroup(0));
        assertEquals(docs.subList(1024, 2048), f.rowGroup(1));
        assertEquals(docs.subList(2048, 2500), f.rowGroup(2)); // last group short
        assertEquals(CompressionCodec.ZSTD, footer(p).row_groups.get(1).columns.get(0).meta_data.codec);
        // compressed for real: repetitive text shrinks
        assertTrue(Files.size(p) < docs.stream().mapToInt(String::length).sum() / 2, "zstd must compress: " + Files.size(p));
    }

    @Test
    void snappyAndUncompressedShardsRoundTrip() throws IOException {
        for (CompressionCodec codec : new CompressionCodec[] {CompressionCodec.SNAPPY, CompressionCodec.UNCOMPRESSED}) {
            List<String> docs = docs(300);
            Path p = tmp.resolve(codec + ".parquet");
            ParquetTextWriter.write(p, docs, 128, codec);
            ParquetFile f = ParquetFile.open(p);
            List<String> all = new ArrayList<>();
            for (int g = 0; g < f.rowGroupCount(); g++) all.addAll(f.rowGroup(g));
            assertEquals(docs, all, codec.toString());
        }
    }

    @Test
    void realSnappyDictionaryFileReadsAll10004RowsMatchingFooterStatistics() throws IOException {
        Path p = SharedDir.locate(SAMPLE);
        assumeTrue(p != null, SharedDir.skipMessage(SAMPLE));
        ParquetFile f = ParquetFile.open(p);
        assertEquals(11, f.rowGroupCount());
        assertEquals(10004, f.rowCount());
        FileMetaData meta = footer(p);
        int total = 0;
        for (int g = 0; g < f.rowGroupCount(); g++) {
            List<String> docs = f.rowGroup(g);
            assertEquals(f.rowGroupRows(g), docs.size(), "row group " + g);
            total += docs.size();
            // pyarrow wrote exact min/max of each text chunk: decoding every row must reproduce them
            ColumnMetaData md = meta.row_groups.get(g).columns.get(0).meta_data;
            assertTrue(md.encodings.toString().contains("RLE_DICTIONARY"), md.encodings.toString());
            byte[] min = null, max = null;
            for (String d : docs) {
                byte[] b = d.getBytes(StandardCharsets.UTF_8);
                if (min == null || Arrays.compareUnsigned(b, min) < 0) min = b;
                if (max == null || Arrays.compareUnsigned(b, max) > 0) max = b;
            }
            assertArrayEquals(md.statistics.getMin_value(), min, "min of row group " + g);
            assertArrayEquals(md.statistics.getMax_value(), max, "max of row group " + g);
        }
        assertEquals(10004, total);
        List<String> first = f.rowGroup(0);
        assertEquals("The company recorded revenues of E658 .1 million during the fiscal year ended December 2007 , an increase of 23 % over 2006 .",
                first.get(0));
        List<String> last = f.rowGroup(10);
        assertEquals(4, last.size());
        assertEquals("Profit for the period totalled EUR 0.8 mn , down from EUR 1.1 mn in the corresponding period in 2008 .", last.get(0));
        assertTrue(last.get(3).startsWith("Amazon (AMZN) stock is on the move Thursday"), last.get(3));
    }

    @Test
    void truncatedFileFailsNamingTheFile() throws IOException {
        Path good = tmp.resolve("good.parquet");
        ParquetTextWriter.write(good, docs(100), 50, CompressionCodec.ZSTD);
        byte[] bytes = Files.readAllBytes(good);
        Path cut = tmp.resolve("cut.parquet");
        Files.write(cut, Arrays.copyOf(bytes, bytes.length / 2));
        IOException e = assertThrows(IOException.class, () -> ParquetFile.open(cut));
        assertTrue(e.getMessage().contains("cut.parquet") && e.getMessage().contains("magic"), e.getMessage());

        Path tiny = tmp.resolve("tiny.parquet");
        Files.write(tiny, new byte[] {'P', 'A', 'R', '1'});
        e = assertThrows(IOException.class, () -> ParquetFile.open(tiny));
        assertTrue(e.getMessage().contains("tiny.parquet") && e.getMessage().contains("too short"), e.getMessage());
    }

    @Test
    void corruptFooterAndCorruptPagesFailNamingFileAndRowGroup() throws IOException {
        Path good = tmp.resolve("good.parquet");
        ParquetTextWriter.write(good, docs(100), 50, CompressionCodec.ZSTD);
        byte[] bytes = Files.readAllBytes(good);
        int footerLen = ByteBuffer.wrap(bytes, bytes.length - 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();

        byte[] badLen = bytes.clone();
        ByteBuffer.wrap(badLen, badLen.length - 8, 4).order(ByteOrder.LITTLE_ENDIAN).putInt(1 << 30);
        Path p1 = tmp.resolve("badlen.parquet");
        Files.write(p1, badLen);
        IOException e = assertThrows(IOException.class, () -> ParquetFile.open(p1));
        assertTrue(e.getMessage().contains("badlen.parquet") && e.getMessage().contains("footer length"), e.getMessage());

        byte[] badFooter = bytes.clone();
        Arrays.fill(badFooter, bytes.length - 8 - footerLen, bytes.length - 8, (byte) 0xff);
        Path p2 = tmp.resolve("badfooter.parquet");
        Files.write(p2, badFooter);
        e = assertThrows(IOException.class, () -> ParquetFile.open(p2));
        assertTrue(e.getMessage().contains("badfooter.parquet") && e.getMessage().contains("footer"), e.getMessage());

        byte[] badPage = bytes.clone();
        long dataOffset = footer(good).row_groups.get(1).columns.get(0).meta_data.data_page_offset;
        for (int i = 0; i < 40; i++) badPage[(int) dataOffset + 20 + i] ^= (byte) 0x5a; // scramble compressed bytes
        Path p3 = tmp.resolve("badpage.parquet");
        Files.write(p3, badPage);
        ParquetFile f = ParquetFile.open(p3);
        assertEquals(docs(100).subList(0, 50), f.rowGroup(0)); // the intact group still reads
        e = assertThrows(IOException.class, () -> f.rowGroup(1));
        assertTrue(e.getMessage().contains("badpage.parquet") && e.getMessage().contains("row group 1"), e.getMessage());
    }

    @Test
    void missingFileAndMissingTextColumnFailClearly() throws IOException {
        IOException e = assertThrows(IOException.class, () -> ParquetFile.open(tmp.resolve("shard_00042.parquet")));
        assertTrue(e.getMessage().contains("not found") && e.getMessage().contains("shard_00042.parquet"), e.getMessage());
        Path good = tmp.resolve("good.parquet");
        ParquetTextWriter.write(good, docs(10), 50, CompressionCodec.ZSTD);
        byte[] bytes = Files.readAllBytes(good);
        String s = new String(bytes, StandardCharsets.ISO_8859_1).replace("\u0004text", "\u0004body"); // rename the column
        Path renamed = tmp.resolve("renamed.parquet");
        Files.write(renamed, s.getBytes(StandardCharsets.ISO_8859_1));
        e = assertThrows(IOException.class, () -> ParquetFile.open(renamed));
        assertTrue(e.getMessage().contains("no top-level column \"text\"") && e.getMessage().contains("body")
                && e.getMessage().contains("renamed.parquet"), e.getMessage());
    }

    static FileMetaData footer(Path p) throws IOException {
        byte[] b = Files.readAllBytes(p);
        int n = ByteBuffer.wrap(b, b.length - 8, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        return Util.readFileMetaData(new ByteArrayInputStream(b, b.length - 8 - n, n));
    }
}
