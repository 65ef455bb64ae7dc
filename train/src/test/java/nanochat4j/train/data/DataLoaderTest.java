package nanochat4j.train.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.Function;
import org.apache.parquet.format.CompressionCodec;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Best-fit packing against a hand-worked example, exact resume, rank sharding, the val split, failures. */
class DataLoaderTest {
    @TempDir
    Path tmp;

    /** 'a' → 1, 'b' → 2, …: a document of n letters is n+1 tokens with BOS (0). */
    static final Function<String, int[]> LETTERS = s -> s.chars().map(c -> c - 'a' + 1).toArray();

    private List<DataFile> jsonl(String name, String... docs) throws IOException {
        StringBuilder sb = new StringBuilder();
        for (String d : docs) sb.append("{\"text\":\"").append(d).append("\"}\n");
        Path p = tmp.resolve(name);
        Files.writeString(p, sb);
        return List.of(JsonlFile.open(p));
    }

    @Test
    void bestFitPackingMatchesTheHandWorkedExample() throws IOException {
        // token lengths with BOS: d0 4, d1 11, d2 2, d3 3, d4 6, d5 7, d6 8, d7 4
        List<DataFile> files = jsonl("d.jsonl", "abc", "abcdefghij", "a", "ab", "abcde", "abcdef", "abcdefg", "abc");
        // B=2, T=7 (row capacity 8), refill to ≥ 3 docs with tokenizer batches of 2
        try (DataLoader loader = new DataLoader(files, LETTERS, 0, 2, 7, 0, 1, null, 1, 3, 2)) {
            DataLoader.Batch b = loader.next();
            // row 0: buffer [d0 d1 d2 d3] → largest fitting 8 is d0 (4); then 4 left → d3 (3); refill [d1 d2 d4 d5];
            //        1 left, nothing fits → crop the shortest, d2, to its BOS
            // row 1: buffer [d1 d4 d5] → d5 (7); refill [d1 d4 d6 d7]; 1 left → crop the shortest, d7, to its BOS
            assertArrayEquals(new int[] {0, 1, 2, 3, 0, 1, 2, /**/ 0, 1, 2, 3, 4, 5, 6}, b.inputs());
            assertArrayEquals(new int[] {1, 2, 3, 0, 1, 2, 0, /**/ 1, 2, 3, 4, 5, 6, 0}, b.targets());
            // buffer now [d1 d4 d6]; the stream continues after d7 at row group 1 of file 0 (past its end: wraps)
            LoaderState s = b.state();
            assertArrayEquals(new int[] {0, 0, 1, 0, 0, 4, 0, 0, 6}, s.buffer());
            assertEquals(List.of(1, 0, 1, 0), List.of(s.epoch(), s.fileIndex(), s.rowGroup(), s.docOffset()));
            b = loader.next();
            // row 2: [d1 d4 d6] → d6 (8) fills it. row 3: refill [d1 d4 d0' d1'] → d4 (6); 2 left → crop d0' (4) to [0 1]
            assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, /**/ 0, 1, 2, 3, 4, 5, 0}, b.inputs());
            assertArrayEquals(new int[] {1, 2, 3, 4, 5, 6, 7, /**/ 1, 2, 3, 4, 5, 0, 1}, b.targets());
        }
    }

    @Test
    void tiesGoToTheLowestBufferIndexForBothFitAndCrop() throws IOException {
        List<DataFile> files = jsonl("t.jsonl", "ab", "ba"); // both 3 tokens
        try (DataLoader fit = new DataLoader(files, LETTERS, 0, 2, 2, 0, 1, null, 1, 2, 2)) {
            // capacity 3: [ab ba] → ab; refill [ba ab ba] → ba
            assertArrayEquals(new int[] {0, 1, 0, 2}, fit.next().inputs());
        }
        try (DataLoader crop = new DataLoader(files, LETTERS, 0, 2, 1, 0, 1, null, 1, 2, 2)) {
            // capacity 2: nothing fits; crop the shortest, lowest index: ab → [0 1]; refill [ba ab ba] → ba → [0 2]
            DataLoader.Batch b = crop.next();
            assertArrayEquals(new int[] {0, 0}, b.inputs());
            assertArrayEquals(new int[] {1, 2}, b.targets());
        }
    }

    /** Documents of random length (1…maxLen letters), in files of several row groups. */
    private List<DataFile> randomParquet(String prefix, int filesCount, int docsPerFile, int rowsPerGroup, int maxLen, long seed)
            throws IOException {
        Random r = new Random(seed);
        List<DataFile> files = new ArrayList<>();
        for (int f = 0; f < filesCount; f++) {
            List<String> docs = new ArrayList<>();
            for (int i = 0; i < docsPerFile; i++) {
                StringBuilder sb = new StringBuilder();
                int n = 1 + r.nextInt(maxLen);
                for (int k = 0; k < n; k++) sb.append((char) ('a' + r.nextInt(26)));
                docs.add(sb.toString());
            }
            Path p = tmp.resolve(prefix + "_" + f + ".parquet");
            ParquetTextWriter.write(p, docs, rowsPerGroup, CompressionCodec.ZSTD);
            files.add(ParquetFile.open(p));
        }
        return files;
    }

    @Test
    void resumeFromASavedStateGivesExactlyTheSameBatches() throws Exception {
        // 3 files × 400 docs, row groups of 150: the 1000-doc buffer and 40 batches of 4×64 cross files and epochs
        List<DataFile> files = randomParquet("r", 3, 400, 150, 120, 7);
        List<DataLoader.Batch> straight = new ArrayList<>();
        try (DataLoader loader = new DataLoader(files, LETTERS, 0, 4, 64, 0, 1, null)) {
            for (int i = 0; i < 40; i++) straight.add(loader.next());
        }
        assertTrue(straight.getLast().state().epoch() >= 2, "the run must wrap into a second epoch: " + straight.getLast().state());
        ObjectMapper json = new ObjectMapper();
        for (int cut : new int[] {1, 21}) {
            String saved;
            try (DataLoader first = new DataLoader(files, LETTERS, 0, 4, 64, 0, 1, null)) {
                for (int i = 0; i < cut; i++) first.next();
                saved = json.writeValueAsString(first.state());
            }
            assertTrue(saved.contains("\"pq_idx\"") && saved.contains("\"rg_idx\"") && saved.contains("\"epoch\""), saved);
            LoaderState state = json.readValue(saved, LoaderState.class);
            assertEquals(straight.get(cut - 1).state(), state);
            try (DataLoader resumed = new DataLoader(files, LETTERS, 0, 4, 64, 0, 1, state, 3)) {
                for (int i = cut; i < 40; i++) {
                    DataLoader.Batch b = resumed.next();
                    assertArrayEquals(straight.get(i).inputs(), b.inputs(), "batch " + i + " after resuming at " + cut);
                    assertArrayEquals(straight.get(i).targets(), b.targets(), "batch " + i + " after resuming at " + cut);
                    assertEquals(straight.get(i).state(), b.state());
                }
            }
        }
        // the naive alternative (nanochat's: restart at the saved position with an empty buffer) differs
        LoaderState s = straight.get(12).state();
        LoaderState empty = new LoaderState(s.epoch(), s.fileIndex(), s.rowGroup(), s.docOffset(), 0, 1, new int[0]);
        try (DataLoader naive = new DataLoader(files, LETTERS, 0, 4, 64, 0, 1, empty)) {
            assertNotEquals(java.util.Arrays.toString(straight.get(13).inputs()), java.util.Arrays.toString(naive.next().inputs()));
        }
    }

    /** Each document is one unique token (its number + 1), so a batch lists the documents it holds in stream order. */
    @Test
    void ranksReadDisjointRowGroupsThatTogetherCoverEveryDocument() throws IOException {
        int filesCount = 2, perFile = 700, rows = 100; // 7 row groups per file
        List<String> all = new ArrayList<>();
        List<DataFile> files = new ArrayList<>();
        for (int f = 0; f < filesCount; f++) {
            List<String> docs = new ArrayList<>();
            for (int i = 0; i < perFile; i++) docs.add(Integer.toString(f * perFile + i + 1));
            all.addAll(docs);
            Path p = tmp.resolve("s_" + f + ".parquet");
            ParquetTextWriter.write(p, docs, rows, CompressionCodec.ZSTD);
            files.add(ParquetFile.open(p));
        }
        Function<String, int[]> id = s -> new int[] {Integer.parseInt(s)};
        int world = 3;
        List<Set<Integer>> seen = new ArrayList<>();
        for (int rank = 0; rank < world; rank++) {
            Set<Integer> docs = new HashSet<>();
            // capacity 8 = 4 docs of 2 tokens per row, placed in stream order (all lengths tie)
            try (DataLoader loader = new DataLoader(files, id, 0, 1, 7, rank, world, null, 2, 10, 4)) {
                List<Integer> order = new ArrayList<>();
                int extra = 0;
                while (extra < 10) { // into epoch 2, then 10 more batches (40 docs) to drain the 10-doc buffer
                    DataLoader.Batch b = loader.next();
                    if (b.state().epoch() > 1) extra++;
                    for (int t = 0; t < 7; t += 2) order.add(b.targets()[t]);
                }
                for (int doc : order) {
                    int index = doc - 1;
                    int group = (index % perFile) / rows;
                    assertEquals(rank, group % world, "rank " + rank + " got doc " + doc + " from row group " + group);
                    docs.add(doc);
                }
            }
            seen.add(docs);
        }
        Set<Integer> union = new HashSet<>();
        for (int a = 0; a < world; a++) {
            for (int b = a + 1; b < world; b++) {
                Set<Integer> both = new HashSet<>(seen.get(a));
                both.retainAll(seen.get(b));
                assertTrue(both.isEmpty(), "ranks " + a + " and " + b + " share " + both.size() + " documents");
            }
            union.addAll(seen.get(a));
        }
        assertEquals(all.size(), union.size(), "one epoch over all ranks covers every document");
    }

    @Test
    void valLoaderReadsOnlyTheLastFileAndTrainNeverDoes() throws IOException {
        for (int f = 0; f < 3; f++) {
            List<String> docs = new ArrayList<>();
            for (int i = 0; i < 50; i++) docs.add(Integer.toString(f * 1000 + i + 1));
            ParquetTextWriter.write(tmp.resolve("shard_0000" + f + ".parquet"), docs, 20, CompressionCodec.ZSTD);
        }
        DataSource src = DataSource.open(tmp, false);
        Function<String, int[]> id = s -> new int[] {Integer.parseInt(s)};
        try (DataLoader val = new DataLoader(src.files(DataSource.Split.VAL), id, 0, 2, 9, 0, 1, null, 1, 10, 8);
                DataLoader train = new DataLoader(src.files(DataSource.Split.TRAIN), id, 0, 2, 9, 0, 1, null, 1, 10, 8)) {
            for (int i = 0; i < 20; i++) {
                for (int t : val.next().targets()) assertTrue(t == 0 || (t > 2000 && t <= 2050), "val token " + t);
                for (int t : train.next().targets()) assertTrue(t == 0 || t <= 1050, "train token " + t);
            }
        }
    }

    @Test
    void aCorruptShardMidStreamFailsNamingItAndARankWithoutDataFails() throws IOException {
        List<DataFile> good = randomParquet("g", 1, 300, 100, 20, 1);
        Path bad = tmp.resolve("shard_bad.parquet");
        ParquetTextWriter.write(bad, List.of("abc".repeat(100), "def".repeat(100)), 1, CompressionCodec.ZSTD);
        byte[] bytes = Files.readAllBytes(bad);
        int magic = 4; // break the zstd frame magic (28 b5 2f fd) of the first row group's page
        while (!(bytes[magic] == (byte) 0x28 && bytes[magic + 1] == (byte) 0xb5 && bytes[magic + 2] == 0x2f)) magic++;
        bytes[magic] = 0;
        Files.write(bad, bytes);
        List<DataFile> files = List.of(good.getFirst(), ParquetFile.open(bad));
        try (DataLoader loader = new DataLoader(files, LETTERS, 0, 8, 64, 0, 1, null)) {
            UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> {
                for (int i = 0; i < 100; i++) loader.next();
            });
            assertTrue(e.getMessage().contains("shard_bad.parquet") && e.getMessage().contains("row group 0"), e.getMessage());
        }
        // one row group per file, three ranks: rank 2 has nothing to read anywhere
        List<DataFile> small = randomParquet("small", 2, 10, 100, 5, 2);
        try (DataLoader loader = new DataLoader(small, LETTERS, 0, 1, 8, 2, 3, null)) {
            UncheckedIOException e = assertThrows(UncheckedIOException.class, loader::next);
            assertTrue(e.getMessage().contains("no documents for rank 2 of 3"), e.getMessage());
        }
        // a state from another world size is refused
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new DataLoader(small, LETTERS, 0, 1, 8, 0, 1, LoaderState.start(0, 2)));
        assertTrue(e.getMessage().contains("rank 0 of 2"), e.getMessage());
    }
}
