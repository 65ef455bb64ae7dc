package nanochat4j.model.tokenizer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Byte-level BPE training with nanochat's (rustbpe's) semantics:
 * <ul>
 *   <li>documents are cropped to {@code docCap} code points; reading stops after the document whose (cropped)
 *       length makes the running code-point count exceed {@code maxChars} — that document is included;</li>
 *   <li>each document is split by {@link Pretokenizer}; distinct chunks are counted by several threads, each
 *       pulling documents in order from the shared iterator (so which documents are read never depends on the
 *       thread count) and counting into its own table, merged at the end;</li>
 *   <li>ids 0–255 are the raw bytes, merge k makes id 256+k; each step merges the adjacent pair with the highest
 *       count weighted by chunk frequency, ties to the smallest (left, right), stopping early when no pair is
 *       left; {@code vocabSize - 9 - 256} merges at most, then the nine specials;</li>
 *   <li>merges update pair counts incrementally: per-pair occurrence lists say which chunks to rewrite, and a
 *       lazy max-heap refreshes a stale count when it surfaces (counts of existing pairs only ever drop, so the
 *       popped entry whose count is current is the true maximum — the same result as a full recount).</li>
 * </ul>
 */
public final class BpeTrainer {
    private BpeTrainer() {}

    /** Training limits: nanochat's tok_train defaults are 32768 / 2e9 / 10000. */
    public record Options(int vocabSize, long maxChars, int docCap, int threads) {
        public Options {
            int min = 256 + Tokenizer.SPECIAL_TOKENS.size();
            if (vocabSize < min) {
                throw new IllegalArgumentException("vocab size " + vocabSize + " is too small: it must hold the 256 byte tokens and the "
                        + Tokenizer.SPECIAL_TOKENS.size() + " special tokens (at least " + min + ")");
            }
            if (maxChars <= 0) throw new IllegalArgumentException("max chars must be > 0, got " + maxChars);
            if (docCap <= 0) throw new IllegalArgumentException("doc cap must be > 0, got " + docCap);
            if (threads < 1) throw new IllegalArgumentException("threads must be >= 1, got " + threads);
        }

        /** Everything, uncropped, on all cores. */
        public static Options all(int vocabSize) {
            return new Options(vocabSize, Long.MAX_VALUE, Integer.MAX_VALUE, Runtime.getRuntime().availableProcessors());
        }
    }

    /** Progress of a phase ("count": chars read so far of maxChars; "merge": merges done of the total). */
    @FunctionalInterface
    public interface Progress {
        void update(String phase, long done, long total);

        Progress NONE = (phase, done, total) -> {};
    }

    /** The trained tokenizer and what went into it. */
    public record Result(Tokenizer tokenizer, long documents, long chars, int distinctChunks, int merges,
                         double countSeconds, double mergeSeconds) {}

    /** Trains on every document of {@code docs} with all cores. */
    public static Tokenizer train(Iterable<String> docs, int vocabSize) {
        return train(docs.iterator(), Options.all(vocabSize), Progress.NONE).tokenizer();
    }

    public static Result train(Iterator<String> docs, Options o, Progress progress) {
        long t0 = System.nanoTime();
        Counts counts = count(docs, o, progress);
        if (counts.table.size() == 0) {
            throw new IllegalArgumentException("empty corpus: " + counts.documents + " documents with " + counts.chars
                    + " characters, nothing to train a tokenizer on");
        }
        long t1 = System.nanoTime();
        int numMerges = o.vocabSize() - Tokenizer.SPECIAL_TOKENS.size() - 256;
        int[][] merges = new Merger(counts).run(numMerges, progress);
        long t2 = System.nanoTime();
        Tokenizer tok = Tokenizer.fromMerges(merges, Pretokenizer.NANOCHAT_PATTERN);
        return new Result(tok, counts.documents, counts.chars, counts.table.size(), merges.length,
                (t1 - t0) / 1e9, (t2 - t1) / 1e9);
    }

    // ---- phase 1: count distinct chunks ------------------------------------------------------------------

    /** Distinct chunks and their counts. */
    static final class Counts {
        final ChunkTable table = new ChunkTable();
        long[] counts = new long[1024];
        long documents, chars;

        void add(int h, char[] s, int off, int len, long n) {
            int e = table.find(h, s, off, len);
            if (e < 0) {
                e = table.add(h, s, off, len);
                if (e == counts.length) counts = Arrays.copyOf(counts, e * 2);
            }
            counts[e] += n;
        }
    }

    /** Shared, ordered reader of the document stream; applies the doc cap and the max-chars stop rule. */
    private static final class Reader {
        private final Iterator<String> docs;
        private final Options o;
        private final Progress progress;
        private long chars, documents;
        private boolean done;
        private long lastReport;

        Reader(Iterator<String> docs, Options o, Progress progress) {
            this.docs = docs;
            this.o = o;
            this.progress = progress;
        }

        /** Next documents (about {@code budget} chars), empty at the end. */
        synchronized List<String> next(int budget) {
            List<String> batch = new ArrayList<>();
            long taken = 0;
            while (!done && taken < budget) {
                if (!docs.hasNext()) {
                    done = true;
                    break;
                }
                String doc = docs.next();
                if (doc == null) continue;
                int cps;
                if (doc.length() > o.docCap()) {
                    cps = doc.codePointCount(0, doc.length());
                    if (cps > o.docCap()) {
                        doc = doc.substring(0, doc.offsetByCodePoints(0, o.docCap()));
                        cps = o.docCap();
                    }
                } else {
                    cps = doc.codePointCount(0, doc.length());
                }
                chars += cps;
                documents++;
                batch.add(doc);
                taken += doc.length();
                if (chars > o.maxChars()) done = true;
            }
            if (chars - lastReport >= 4_000_000 || (done && lastReport != chars)) {
                lastReport = chars;
                progress.update("count", chars, o.maxChars() == Long.MAX_VALUE ? -1 : o.maxChars());
            }
            return batch;
        }
    }

    static Counts count(Iterator<String> docs, Options o, Progress progress) {
        Reader reader = new Reader(docs, o, progress);
        Counts[] parts = new Counts[o.threads()];
        AtomicReference<Throwable> failure = new AtomicReference<>();
        Thread[] threads = new Thread[o.threads() - 1];
        for (int p = 0; p < parts.length; p++) {
            Counts c = parts[p] = new Counts();
            Runnable work = () -> countWorker(reader, c);
            if (p == 0) continue;
            threads[p - 1] = Thread.ofPlatform().name("bpe-count-" + p).daemon().start(() -> {
                try {
                    work.run();
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            });
        }
        try {
            countWorker(reader, parts[0]);
        } catch (Throwable t) {
            failure.compareAndSet(null, t);
        }
        for (Thread t : threads) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while counting chunks", e);
            }
        }
        Throwable t = failure.get();
        if (t instanceof RuntimeException re) throw re;
        if (t instanceof Error er) throw er;
        if (t != null) throw new IllegalStateException(t);
        Counts all = parts[0];
        for (int p = 1; p < parts.length; p++) {
            ChunkTable tp = parts[p].table;
            char[] arena = tp.arena();
            for (int e = 0; e < tp.size(); e++) all.add(tp.hashOf(e), arena, tp.start(e), tp.length(e), parts[p].counts[e]);
        }
        all.documents = reader.documents;
        all.chars = reader.chars;
        return all;
    }

    private static void countWorker(Reader reader, Counts c) {
        char[] buf = new char[1 << 16];
        while (true) {
            List<String> batch = reader.next(1 << 20);
            if (batch.isEmpty()) return;
            for (String doc : batch) {
                doc = Utf8.replaceLoneSurrogates(doc);
                int n = doc.length();
                if (buf.length < n) buf = new char[Math.max(n, buf.length * 2)];
                doc.getChars(0, n, buf, 0);
                for (int i = 0; i < n; ) {
                    int e = Pretokenizer.chunkEnd(buf, i, n);
                    c.add(ChunkTable.hash(buf, i, e - i), buf, i, e - i, 1);
                    i = e;
                }
            }
        }
    }

    // ---- phase 2: merges ---------------------------------------------------------------------------------

    /** The merge loop over distinct chunks ("words") as id sequences. */
    static final class Merger {
        private final int[][] words;
        private final int[] wordLen;
        private final long[] wordCount;

        // pairs, numbered in order of first appearance
        private final LongIntMap pairIds = new LongIntMap();
        private long[] pairKey = new long[1 << 16];
        private long[] pairCount = new long[1 << 16];
        private int[][] occ = new int[1 << 16][];
        private int[] occLen = new int[1 << 16];
        private int[] occLast = new int[1 << 16];
        private int[] touchedStamp = new int[1 << 16];
        private int numPairs;

        // lazy max-heap of (count, pair key): higher count first, then smaller key
        private long[] heapCount = new long[1 << 16];
        private long[] heapKey = new long[1 << 16];
        private int heapSize;

        private final IntList touched = new IntList();
        private int stamp;

        Merger(Counts counts) {
            int n = counts.table.size();
            words = new int[n][];
            wordLen = new int[n];
            wordCount = new long[n];
            byte[] scratch = new byte[64];
            ChunkTable t = counts.table;
            for (int w = 0; w < n; w++) {
                int len = t.length(w);
                if (scratch.length < 3 * len) scratch = new byte[3 * len];
                int nb = Utf8.encode(t.arena(), t.start(w), len, scratch);
                int[] ids = new int[nb];
                for (int i = 0; i < nb; i++) ids[i] = scratch[i] & 0xFF;
                words[w] = ids;
                wordLen[w] = nb;
                wordCount[w] = counts.counts[w];
            }
        }

        private static long key(int a, int b) {
            return ((long) a << 32) | (b & 0xFFFFFFFFL);
        }

        private int pairId(long key) {
            int id = pairIds.get(key);
            if (id >= 0) return id;
            id = numPairs++;
            if (id == pairKey.length) {
                int cap = id * 2;
                pairKey = Arrays.copyOf(pairKey, cap);
                pairCount = Arrays.copyOf(pairCount, cap);
                occ = Arrays.copyOf(occ, cap);
                occLen = Arrays.copyOf(occLen, cap);
                occLast = Arrays.copyOf(occLast, cap);
                touchedStamp = Arrays.copyOf(touchedStamp, cap);
            }
            pairKey[id] = key;
            occLast[id] = -1;
            pairIds.put(key, id);
            return id;
        }

        private void addOccurrence(int p, int w) {
            if (occLast[p] == w) return;
            occLast[p] = w;
            int[] list = occ[p];
            if (list == null) list = occ[p] = new int[4];
            else if (occLen[p] == list.length) list = occ[p] = Arrays.copyOf(list, list.length * 2);
            list[occLen[p]++] = w;
        }

        int[][] run(int numMerges, Progress progress) {
            for (int w = 0; w < words.length; w++) {
                int[] ids = words[w];
                long c = wordCount[w];
                for (int i = 0; i + 1 < wordLen[w]; i++) {
                    int p = pairId(key(ids[i], ids[i + 1]));
                    pairCount[p] += c;
                    addOccurrence(p, w);
                }
            }
            for (int p = 0; p < numPairs; p++) if (pairCount[p] > 0) push(pairCount[p], pairKey[p]);

            int[][] merges = new int[Math.max(0, numMerges)][];
            int done = 0;
            long lastReport = System.nanoTime();
            while (done < numMerges && heapSize > 0) {
                long count = heapCount[0], key = heapKey[0];
                pop();
                int p = pairIds.get(key);
                long current = pairCount[p];
                if (count != current) {
                    if (current > 0) push(current, key);
                    continue;
                }
                int a = (int) (key >>> 32), b = (int) key, newId = 256 + done;
                merges[done++] = new int[] {a, b};
                stamp++;
                touched.clear();
                int[] list = occ[p];
                int len = occLen[p];
                occ[p] = null;
                occLen[p] = 0;
                for (int k = 0; k < len; k++) mergeWord(list[k], a, b, newId);
                for (int k = 0; k < touched.size(); k++) {
                    int q = touched.get(k);
                    if (pairCount[q] > 0) push(pairCount[q], pairKey[q]);
                }
                if (System.nanoTime() - lastReport > 250_000_000L || done == numMerges) {
                    lastReport = System.nanoTime();
                    progress.update("merge", done, numMerges);
                }
            }
            progress.update("merge", done, numMerges);
            return done == merges.length ? merges : Arrays.copyOf(merges, done);
        }

        /** Replaces non-overlapping (a, b) left to right by newId in word w, updating pair counts. */
        private void mergeWord(int w, int a, int b, int newId) {
            int[] ids = words[w];
            int n = wordLen[w];
            long c = wordCount[w];
            int out = 0;
            for (int i = 0; i < n; ) {
                if (i + 1 < n && ids[i] == a && ids[i + 1] == b) {
                    if (out > 0) {
                        int x = ids[out - 1];
                        pairCount[pairId(key(x, a))] -= c;
                        bump(key(x, newId), c, w);
                    }
                    pairCount[pairId(key(a, b))] -= c;
                    if (i + 2 < n) {
                        int y = ids[i + 2];
                        pairCount[pairId(key(b, y))] -= c;
                        bump(key(newId, y), c, w);
                    }
                    ids[out++] = newId;
                    i += 2;
                } else {
                    ids[out++] = ids[i++];
                }
            }
            wordLen[w] = out;
        }

        private void bump(long key, long c, int w) {
            int q = pairId(key);
            pairCount[q] += c;
            addOccurrence(q, w);
            if (touchedStamp[q] != stamp) {
                touchedStamp[q] = stamp;
                touched.add(q);
            }
        }

        private boolean above(int i, int j) {
            return heapCount[i] > heapCount[j] || (heapCount[i] == heapCount[j] && heapKey[i] < heapKey[j]);
        }

        private void swap(int i, int j) {
            long c = heapCount[i];
            heapCount[i] = heapCount[j];
            heapCount[j] = c;
            long k = heapKey[i];
            heapKey[i] = heapKey[j];
            heapKey[j] = k;
        }

        private void push(long count, long key) {
            if (heapSize == heapCount.length) {
                heapCount = Arrays.copyOf(heapCount, heapSize * 2);
                heapKey = Arrays.copyOf(heapKey, heapSize * 2);
            }
            int i = heapSize++;
            heapCount[i] = count;
            heapKey[i] = key;
            while (i > 0) {
                int parent = (i - 1) >>> 1;
                if (!above(i, parent)) break;
                swap(i, parent);
                i = parent;
            }
        }

        private void pop() {
            heapSize--;
            heapCount[0] = heapCount[heapSize];
            heapKey[0] = heapKey[heapSize];
            int i = 0;
            while (true) {
                int l = 2 * i + 1, r = l + 1, best = i;
                if (l < heapSize && above(l, best)) best = l;
                if (r < heapSize && above(r, best)) best = r;
                if (best == i) return;
                swap(i, best);
                i = best;
            }
        }
    }
}
