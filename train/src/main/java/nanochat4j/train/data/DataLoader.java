package nanochat4j.train.data;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.Function;

/**
 * nanochat's pretraining loader (dataloader.py, BOS-aligned best-fit): an endless stream of B×T token batches.
 *
 * <ul>
 *   <li>Document stream: files in order, epoch after epoch (from 1); rank r of W reads row groups r, r+W, r+2W …
 *       of every file; each row group is cut into batches of {@value #TOKENIZER_BATCH} documents that are
 *       tokenized (BOS prepended) on background threads, ahead of the consumer, and arrive in order.
 *   <li>Packing (row capacity T+1): before every placement, whole tokenized batches are appended to the END of
 *       the buffer until it holds ≥ {@value #BUFFER_DOCS} documents; then the LARGEST buffered document with
 *       length ≤ remaining space is placed (ties → lowest buffer index); if none fits, the SHORTEST (ties →
 *       lowest index) is cropped to the remaining space and its rest discarded. Removal keeps the others' order.
 *       Every row therefore starts with BOS; there is no padding. inputs = row[0:T], targets = row[1:T+1].
 *   <li>State: exact (see {@link LoaderState}); each batch carries the state after it, and a loader built from
 *       that state yields exactly the batches that would have followed.
 * </ul>
 * The tokenizer function is called from several threads at once and must be thread-safe; it returns the ids of
 * a document without BOS.
 */
public final class DataLoader implements AutoCloseable {
    public static final int BUFFER_DOCS = 1000;
    public static final int TOKENIZER_BATCH = 128;
    private static final int CHUNKS_AHEAD = 16;

    /** One batch: row-major {@code [B][T]} inputs and targets, and the loader state right after it. */
    public record Batch(int[] inputs, int[] targets, LoaderState state) {}

    private record Doc(int[] tokens, int file, int rowGroup, int index) {}

    private record Position(int epoch, int file, int rowGroup, int docOffset) {}

    /** A tokenized batch of documents and the stream position that follows it. */
    private record Chunk(List<Doc> docs, Position next) {}

    private final List<DataFile> files;
    private final Function<String, int[]> tokenizer;
    private final int bos;
    private final int batchSize;
    private final int seqLen;
    private final int rank;
    private final int world;
    private final int bufferDocs;
    private final int tokenizerBatch;
    private final ExecutorService pool;
    private final BlockingQueue<Future<Chunk>> chunks = new ArrayBlockingQueue<>(CHUNKS_AHEAD);
    private final Thread producer;
    private final List<Doc> buffer = new ArrayList<>();
    private Position position; // where the next chunk the consumer takes starts
    private volatile boolean closed;

    /** A loader with min(4, cores) tokenizer threads, starting at {@code resume} (or fresh when null). */
    public DataLoader(List<DataFile> files, Function<String, int[]> tokenizer, int bos, int batchSize, int seqLen,
            int rank, int world, LoaderState resume) {
        this(files, tokenizer, bos, batchSize, seqLen, rank, world, resume, Math.min(4, Runtime.getRuntime().availableProcessors()));
    }

    public DataLoader(List<DataFile> files, Function<String, int[]> tokenizer, int bos, int batchSize, int seqLen,
            int rank, int world, LoaderState resume, int threads) {
        this(files, tokenizer, bos, batchSize, seqLen, rank, world, resume, threads, BUFFER_DOCS, TOKENIZER_BATCH);
    }

    /** With a smaller buffer and tokenizer batch, for hand-worked packing tests. */
    DataLoader(List<DataFile> files, Function<String, int[]> tokenizer, int bos, int batchSize, int seqLen,
            int rank, int world, LoaderState resume, int threads, int bufferDocs, int tokenizerBatch) {
        if (files.isEmpty()) throw new IllegalArgumentException("no data files to load");
        if (batchSize < 1 || seqLen < 1) throw new IllegalArgumentException("batch " + batchSize + " × seq " + seqLen + " must be positive");
        if (world < 1 || rank < 0 || rank >= world) throw new IllegalArgumentException("rank " + rank + " of world " + world);
        if (threads < 1 || bufferDocs < 1 || tokenizerBatch < 1) {
            throw new IllegalArgumentException("threads " + threads + ", buffer " + bufferDocs + ", tokenizer batch " + tokenizerBatch);
        }
        this.bufferDocs = bufferDocs;
        this.tokenizerBatch = tokenizerBatch;
        this.files = List.copyOf(files);
        this.tokenizer = tokenizer;
        this.bos = bos;
        this.batchSize = batchSize;
        this.seqLen = seqLen;
        this.rank = rank;
        this.world = world;
        LoaderState start = resume == null ? LoaderState.start(rank, world) : resume;
        if (start.rank() != rank || start.world() != world) {
            throw new IllegalArgumentException("loader state was saved by rank " + start.rank() + " of " + start.world()
                    + ", this is rank " + rank + " of " + world);
        }
        if (start.fileIndex() >= this.files.size()) {
            throw new IllegalArgumentException("loader state points at file " + start.fileIndex() + " but there are only "
                    + this.files.size() + " data files (did the data directory change?)");
        }
        this.pool = Executors.newFixedThreadPool(threads, r -> {
            Thread t = new Thread(r, "nanochat4j-tokenize");
            t.setDaemon(true);
            return t;
        });
        this.position = new Position(start.epoch(), start.fileIndex(), start.rowGroup(), start.docOffset());
        try {
            rebuildBuffer(start.buffer());
        } catch (RuntimeException e) {
            pool.shutdownNow();
            throw e;
        }
        Position from = position;
        this.producer = new Thread(() -> produce(from), "nanochat4j-data");
        producer.setDaemon(true);
        producer.start();
    }

    /** Packs and returns the next batch. Blocks while the background threads tokenize. */
    public Batch next() {
        int[] inputs = new int[batchSize * seqLen];
        int[] targets = new int[batchSize * seqLen];
        int capacity = seqLen + 1;
        int[] row = new int[capacity];
        for (int b = 0; b < batchSize; b++) {
            int pos = 0;
            while (pos < capacity) {
                while (buffer.size() < bufferDocs) refill();
                int remaining = capacity - pos;
                int best = -1;
                int bestLen = 0;
                for (int i = 0; i < buffer.size(); i++) {
                    int len = buffer.get(i).tokens.length;
                    if (len <= remaining && len > bestLen) {
                        best = i;
                        bestLen = len;
                    }
                }
                if (best >= 0) {
                    System.arraycopy(buffer.remove(best).tokens, 0, row, pos, bestLen);
                    pos += bestLen;
                } else {
                    int shortest = 0;
                    for (int i = 1; i < buffer.size(); i++) {
                        if (buffer.get(i).tokens.length < buffer.get(shortest).tokens.length) shortest = i;
                    }
                    System.arraycopy(buffer.remove(shortest).tokens, 0, row, pos, remaining);
                    pos += remaining;
                }
            }
            System.arraycopy(row, 0, inputs, b * seqLen, seqLen);
            System.arraycopy(row, 1, targets, b * seqLen, seqLen);
        }
        return new Batch(inputs, targets, state());
    }

    /** The state now: a loader built from it continues with the batch {@link #next} would return. */
    public LoaderState state() {
        int[] refs = new int[buffer.size() * 3];
        for (int i = 0; i < buffer.size(); i++) {
            Doc d = buffer.get(i);
            refs[3 * i] = d.file;
            refs[3 * i + 1] = d.rowGroup;
            refs[3 * i + 2] = d.index;
        }
        return new LoaderState(position.epoch, position.file, position.rowGroup, position.docOffset, rank, world, refs);
    }

    @Override
    public void close() {
        closed = true;
        producer.interrupt();
        pool.shutdownNow();
    }

    private void refill() {
        Chunk c;
        try {
            c = chunks.take().get();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for tokenized documents", e);
        } catch (ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof IOException io) throw new UncheckedIOException(io.getMessage(), io);
            if (cause instanceof RuntimeException re) throw re;
            throw new IllegalStateException(String.valueOf(cause), cause);
        }
        buffer.addAll(c.docs);
        position = c.next;
    }

    /** Background: walk the document stream from {@code p}, submitting tokenizer batches in order. */
    private void produce(Position p) {
        int epoch = p.epoch, f = p.file, rg = p.rowGroup, off = p.docOffset;
        int filesWithoutDocs = 0;
        try {
            while (!closed) {
                if (f == files.size()) {
                    f = 0;
                    epoch++;
                }
                DataFile file = files.get(f);
                if (rg < file.rowGroupCount()) {
                    List<String> docs = file.rowGroup(rg);
                    for (; off < docs.size(); off += tokenizerBatch) {
                        int end = Math.min(off + tokenizerBatch, docs.size());
                        Position next = end < docs.size() ? new Position(epoch, f, rg, end) : new Position(epoch, f, rg + world, 0);
                        List<String> text = docs.subList(off, end);
                        int fi = f, rgi = rg, first = off;
                        chunks.put(pool.submit(() -> new Chunk(tokenize(text, fi, rgi, first), next)));
                        filesWithoutDocs = 0;
                    }
                    rg += world;
                } else {
                    f++;
                    rg = rank;
                    if (++filesWithoutDocs > files.size()) {
                        throw new IOException("no documents for rank " + rank + " of " + world + " in " + files.size()
                                + " data files (each rank reads row groups rank, rank+world, …; the files have too few)");
                    }
                }
                off = 0;
            }
        } catch (InterruptedException e) {
            // closed
        } catch (IOException | RuntimeException e) {
            if (!closed) chunks.offer(CompletableFuture.failedFuture(e));
        }
    }

    private List<Doc> tokenize(List<String> text, int file, int rowGroup, int first) {
        List<Doc> docs = new ArrayList<>(text.size());
        for (int i = 0; i < text.size(); i++) docs.add(new Doc(encode(text.get(i), file, rowGroup, first + i), file, rowGroup, first + i));
        return docs;
    }

    private int[] encode(String text, int file, int rowGroup, int index) {
        int[] ids;
        try {
            ids = tokenizer.apply(text);
        } catch (RuntimeException e) {
            throw new IllegalStateException("tokenizer failed on " + files.get(file).path() + ", row group " + rowGroup
                    + ", document " + index + ": " + e, e);
        }
        int[] tokens = new int[ids.length + 1];
        tokens[0] = bos;
        System.arraycopy(ids, 0, tokens, 1, ids.length);
        return tokens;
    }

    /** Re-reads and re-tokenizes the buffered documents of a saved state, in their saved order. */
    private void rebuildBuffer(int[] refs) {
        Map<Long, List<String>> groups = new HashMap<>();
        List<Future<Doc>> docs = new ArrayList<>(refs.length / 3);
        for (int i = 0; i < refs.length; i += 3) {
            int f = refs[i], rg = refs[i + 1], d = refs[i + 2];
            if (f < 0 || f >= files.size()) throw new IllegalArgumentException("loader state buffers a document of file " + f + " but there are " + files.size() + " files");
            List<String> group = groups.computeIfAbsent(((long) f << 32) | rg, k -> {
                try {
                    DataFile file = files.get(f);
                    if (rg < 0 || rg >= file.rowGroupCount()) {
                        throw new IllegalArgumentException("loader state buffers row group " + rg + " of " + file.path() + ", which has "
                                + file.rowGroupCount());
                    }
                    return file.rowGroup(rg);
                } catch (IOException e) {
                    throw new UncheckedIOException(e);
                }
            });
            if (d < 0 || d >= group.size()) {
                throw new IllegalArgumentException("loader state buffers document " + d + " of row group " + rg + " of "
                        + files.get(f).path() + ", which has " + group.size());
            }
            String text = group.get(d);
            docs.add(pool.submit(() -> new Doc(encode(text, f, rg, d), f, rg, d)));
        }
        try {
            for (Future<Doc> doc : docs) buffer.add(doc.get());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while restoring the loader buffer", e);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof RuntimeException re ? re : new IllegalStateException(e.getCause());
        }
    }
}
