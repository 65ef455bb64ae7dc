package nanochat4j.bench;

import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.model.tokenizer.BpeTrainer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.tensor.cpu.Parallel;
import nanochat4j.train.data.DataSource;
import nanochat4j.train.tokenizer.TextDocuments;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench tokenizer}: trains a vocabulary (default 32768) on 100 MB of text from {@code --data}
 * (repeating the text when there is less), then measures batch encoding on the CPU pool and decoding.
 * JSON keys: train_mb, train_s, encode_mb_per_s, decode_mb_per_s (+ details).
 */
@Command(name = "tokenizer", mixinStandardHelpOptions = true,
        description = "Tokenizer speed: BPE training on 100 MB, encode and decode throughput.")
public final class TokenizerBench implements Callable<Integer> {

    @Option(names = "--data", defaultValue = "../shared/data/pretrain_text",
            description = "folder of *.txt / *.jsonl / *.parquet text, searched recursively (default: ${DEFAULT-VALUE})")
    Path data;

    @Option(names = "--mb", defaultValue = "100", description = "megabytes (UTF-8) of text to train on (default: ${DEFAULT-VALUE})")
    double mb;

    @Option(names = "--vocab-size", defaultValue = "32768", description = "vocabulary size (default: ${DEFAULT-VALUE})")
    int vocabSize;

    @Option(names = "--encode-mb", defaultValue = "32", description = "megabytes to encode and decode (default: ${DEFAULT-VALUE})")
    double encodeMb;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Override
    public Integer call() throws Exception {
        long t0 = System.nanoTime();
        List<String> base = new ArrayList<>();
        for (String d : DataSource.documents(TextDocuments.files(data))) base.add(d);
        long target = (long) (mb * 1e6);
        List<String> docs = take(base, target);
        long trainBytes = utf8Bytes(docs);
        double loadS = (System.nanoTime() - t0) / 1e9;

        int threads = Parallel.threads();
        long t1 = System.nanoTime(), c1 = cpuNanos();
        BpeTrainer.Result r = BpeTrainer.train(docs.iterator(),
                new BpeTrainer.Options(vocabSize, Long.MAX_VALUE, Integer.MAX_VALUE, threads), BpeTrainer.Progress.NONE);
        double trainS = (System.nanoTime() - t1) / 1e9, trainCpuS = (cpuNanos() - c1) / 1e9;
        Tokenizer tok = r.tokenizer();

        // JIT warm-up of the encode/decode paths on a separate small vocabulary, so the timed tokenizer starts with
        // empty chunk caches but compiled code
        List<String> warmDocs = take(base, Math.min(target, 2_000_000));
        Tokenizer warm = BpeTrainer.train(warmDocs.iterator(), new BpeTrainer.Options(Math.min(vocabSize, 2000), Long.MAX_VALUE,
                Integer.MAX_VALUE, threads), BpeTrainer.Progress.NONE).tokenizer();
        for (int rep = 0; rep < 2; rep++) for (int[] a : warm.encodeBatch(warmDocs)) warm.decode(a);

        List<String> encDocs = take(base, Math.min(target, (long) (encodeMb * 1e6)));
        long encBytes = utf8Bytes(encDocs);
        long t2 = System.nanoTime(), c2 = cpuNanos();
        int[][] ids = tok.encodeBatch(encDocs);
        double encodeS = (System.nanoTime() - t2) / 1e9, encodeCpuS = (cpuNanos() - c2) / 1e9;
        long tokens = 0;
        for (int[] a : ids) tokens += a.length;

        long t3 = System.nanoTime(), c3 = cpuNanos();
        List<String> decoded = new ArrayList<>(ids.length);
        for (int[] a : ids) {
            String s = tok.decode(a);
            decoded.add(s);
        }
        double decodeS = (System.nanoTime() - t3) / 1e9, decodeCpuS = (cpuNanos() - c3) / 1e9;
        for (int i = 0; i < encDocs.size(); i++) {
            if (!encDocs.get(i).equals(decoded.get(i))) throw new IllegalStateException("round trip failed on document " + i);
        }

        double trainMb = trainBytes / 1e6;
        double encMbS = encBytes / 1e6 / encodeS, decMbS = encBytes / 1e6 / decodeS;
        if (json) {
            System.out.printf(Locale.ROOT, "{\"train_mb\": %.1f, \"train_s\": %.2f, \"encode_mb_per_s\": %.1f, \"decode_mb_per_s\": %.1f, "
                            + "\"vocab_size\": %d, \"load_s\": %.2f, \"count_s\": %.2f, \"merge_s\": %.2f, \"distinct_chunks\": %d, "
                            + "\"encode_mb\": %.1f, \"bytes_per_token\": %.3f, \"threads\": %d, "
                            + "\"train_cpu_s\": %.2f, \"encode_cpu_s\": %.2f, \"decode_cpu_s\": %.2f}%n",
                    trainMb, trainS, encMbS, decMbS, tok.vocabSize(), loadS, r.countSeconds(), r.mergeSeconds(), r.distinctChunks(),
                    encBytes / 1e6, (double) encBytes / tokens, threads, trainCpuS, encodeCpuS, decodeCpuS);
        } else {
            System.out.printf(Locale.ROOT, "text: %.1f MB from %s (%d documents, read in %.2f s)%n", trainMb, data, docs.size(), loadS);
            System.out.printf(Locale.ROOT, "train: vocab %d in %.2f s (count chunks %.2f s on %d threads, %d distinct; merges %.2f s)%n",
                    tok.vocabSize(), trainS, r.countSeconds(), threads, r.distinctChunks(), r.mergeSeconds());
            System.out.printf(Locale.ROOT, "encode: %.1f MB/s (%d threads, %.1f MB, %.3f bytes/token)%n", encMbS, threads, encBytes / 1e6,
                    (double) encBytes / tokens);
            System.out.printf(Locale.ROOT, "decode: %.1f MB/s (1 thread)%n", decMbS);
            System.out.printf(Locale.ROOT, "process CPU seconds (wall on a loaded machine overstates): train %.2f, encode %.2f, decode %.2f%n",
                    trainCpuS, encodeCpuS, decodeCpuS);
        }
        return 0;
    }

    /** Documents from the start of {@code base}, cycling, until {@code bytes} UTF-8 bytes. */
    static List<String> take(List<String> base, long bytes) {
        if (base.isEmpty()) throw new IllegalArgumentException("no text found to benchmark on");
        List<String> out = new ArrayList<>();
        long n = 0;
        Iterator<String> it = base.iterator();
        while (n < bytes) {
            if (!it.hasNext()) it = base.iterator();
            String d = it.next();
            out.add(d);
            n += utf8Length(d);
        }
        return out;
    }

    static long utf8Bytes(List<String> docs) {
        long n = 0;
        for (String d : docs) n += utf8Length(d);
        return n;
    }

    private static long utf8Length(String s) {
        long n = 0;
        for (int i = 0, len = s.length(); i < len; i++) {
            char c = s.charAt(i);
            if (c < 0x80) n++;
            else if (c < 0x800) n += 2;
            else if (Character.isHighSurrogate(c)) {
                n += 4;
                i++;
            } else n += 3;
        }
        return n;
    }

    /** CPU time of the whole process (all threads), to read wall-clock figures on a shared machine. */
    private static long cpuNanos() {
        return ManagementFactory.getOperatingSystemMXBean() instanceof com.sun.management.OperatingSystemMXBean os ? os.getProcessCpuTime() : 0;
    }
}
