package nanochat4j.bench;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;
import java.util.stream.Stream;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.interop.NanochatCheckpoint;
import nanochat4j.model.interop.NanochatImport;
import nanochat4j.model.interop.NanochatTokenizer;
import nanochat4j.model.tokenizer.Pretokenizer;
import nanochat4j.model.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/**
 * {@code nanochat4j bench import}: writes a synthetic nanochat base dir (random weights of a {@code --depth} model in
 * nanochat's sizing, bf16 by default, and a tokenizer of the same vocabulary) to a temp folder, then times
 * {@code import-nanochat} of it and reports the peak Java heap during the import against the model's fp32 size
 * (heap peak: the sum of the heap pools' peaks after a GC and a reset, an upper bound of the true peak).
 */
@Command(name = "import", mixinStandardHelpOptions = true,
        description = "Import speed and peak heap for a synthetic nanochat checkpoint (default d20, bf16).")
public final class ImportBench implements Callable<Integer> {

    @Option(names = "--depth", defaultValue = "20", description = "model depth (default: ${DEFAULT-VALUE})")
    int depth;

    @Option(names = "--vocab-size", defaultValue = "32768", description = "vocabulary (default: ${DEFAULT-VALUE}, nanochat's)")
    int vocab;

    @Option(names = "--dtype", defaultValue = "bf16", description = "fp32 or bf16 checkpoint (default: ${DEFAULT-VALUE})")
    String dtype;

    @Option(names = "--dir", description = "work folder (default: a temp folder, deleted afterwards)")
    Path dir;

    @Option(names = "--json", description = "print one JSON object instead of text")
    boolean json;

    @Override
    public Integer call() throws Exception {
        GPTConfig c = GPTConfig.fromDepth(depth, 64, 128, 2048, "SSSL", vocab);
        Safetensors.DType dt = dtype.equalsIgnoreCase("fp32") ? Safetensors.DType.F32 : Safetensors.DType.BF16;
        Path work = dir != null ? Files.createDirectories(dir) : Files.createTempDirectory("nanochat4j-import-bench");
        try {
            Path nano = work.resolve("nanochat");
            long params = write(nano, c, dt);
            long fp32Bytes = params * 4;
            long fileBytes = Files.size(NanochatCheckpoint.modelFile(nano.resolve("base_checkpoints/d" + depth), 1));

            System.gc();
            List<MemoryPoolMXBean> heap = ManagementFactory.getMemoryPoolMXBeans().stream().filter(p -> p.getType() == MemoryType.HEAP).toList();
            heap.forEach(MemoryPoolMXBean::resetPeakUsage);
            long t0 = System.nanoTime();
            NanochatImport.run(nano, work.resolve("ours"), new NanochatImport.Options(null, null, null, null, true));
            double s = (System.nanoTime() - t0) / 1e9;
            long peak = 0;
            for (MemoryPoolMXBean p : heap) peak += p.getPeakUsage().getUsed();
            if (json) {
                System.out.printf(Locale.ROOT, "{\"depth\": %d, \"params\": %d, \"dtype\": \"%s\", \"file_gb\": %.3f, \"import_s\": %.2f, "
                        + "\"file_gb_per_s\": %.3f, \"peak_heap_gb\": %.3f, \"fp32_gb\": %.3f, \"peak_over_fp32\": %.3f}%n",
                        depth, params, dt, fileBytes / 1e9, s, fileBytes / 1e9 / s, peak / 1e9, fp32Bytes / 1e9, (double) peak / fp32Bytes);
            } else {
                System.out.printf(Locale.ROOT, "d%d: %,d parameters, %s checkpoint %.2f GB; import %.1f s (%.2f GB/s of checkpoint); "
                        + "peak heap %.2f GB = %.2fx the fp32 model (%.2f GB)%n", depth, params, dt, fileBytes / 1e9, s, fileBytes / 1e9 / s,
                        peak / 1e9, (double) peak / fp32Bytes, fp32Bytes / 1e9);
            }
        } finally {
            if (dir == null) deleteTree(work);
        }
        return 0;
    }

    /** A nanochat base dir: tokenizer of {@code c.vocabSize()} tokens, checkpoint d&lt;depth&gt; step 1 of random weights. */
    static long write(Path nano, GPTConfig c, Safetensors.DType dt) throws IOException {
        int merges = c.vocabSize() - Tokenizer.SPECIAL_TOKENS.size() - 256;
        // merges of random earlier tokens, so token lengths vary as in a trained vocabulary
        SplittableRandom rnd = new SplittableRandom(1);
        int[][] m = new int[merges][];
        List<byte[]> bytes = new java.util.ArrayList<>();
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (int b = 0; b < 256; b++) bytes.add(new byte[] {(byte) b});
        for (int k = 0; k < merges; ) {
            int a = rnd.nextInt(bytes.size()), b = rnd.nextInt(bytes.size());
            byte[] t = java.util.Arrays.copyOf(bytes.get(a), bytes.get(a).length + bytes.get(b).length);
            System.arraycopy(bytes.get(b), 0, t, bytes.get(a).length, bytes.get(b).length);
            if (t.length > 16 || !seen.add(new String(t, java.nio.charset.StandardCharsets.ISO_8859_1))) continue;
            bytes.add(t);
            m[k++] = new int[] {a, b};
        }
        NanochatTokenizer.write(Tokenizer.fromMerges(m, Pretokenizer.NANOCHAT_PATTERN), nano.resolve("tokenizer"));
        Map<String, float[]> p = new LinkedHashMap<>();
        long n = 0;
        for (Map.Entry<String, int[]> e : c.parameterShapes().entrySet()) {
            long len = 1;
            for (int d : e.getValue()) len *= d;
            float[] v = new float[Math.toIntExact(len)];
            for (int i = 0; i < v.length; i++) v[i] = (float) (rnd.nextDouble() - 0.5) * 0.04f;
            p.put(e.getKey(), v);
            n += len;
        }
        NanochatCheckpoint.write(nano.resolve("base_checkpoints/d" + c.nLayer()), new Checkpoint.Meta(c, 1, null, null, null), p, dt);
        return n;
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> s = Files.walk(root)) {
            for (Path p : (Iterable<Path>) s.sorted(Comparator.reverseOrder())::iterator) Files.deleteIfExists(p);
        }
    }
}
