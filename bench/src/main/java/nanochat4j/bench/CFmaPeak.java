package nanochat4j.bench;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * The fp32 FMA peak of a C loop built by gcc for this machine at the JVM's vector width (fma_peak.c beside this
 * class): the yardstick issue 19 sets for the GEMMs (≥ 75% of it), independent of how well the JIT does with the
 * Java peak loop. Optional: without gcc (or OpenMP) the reason is reported instead of a figure.
 */
final class CFmaPeak {
    private CFmaPeak() {}

    /** gflops, or NaN with {@code reason} saying why there is no figure; {@code how} names the build. */
    record Peak(double gflops, String how, String reason) {
        boolean measured() { return !Double.isNaN(gflops); }
    }

    /**
     * The loop built once for this machine, to run beside each op: the host's speed drifts by a third within
     * minutes on our shared machines, so a ratio holds only against a peak measured at the same moment.
     */
    static Loop build(int threads, int bits) {   // bits: 128, 256 or 512
        boolean x86 = System.getProperty("os.arch").matches("amd64|x86_64");
        List<String> cmd = new ArrayList<>(List.of("gcc", "-O2", "-march=native"));
        // below 512 bits an x86 build must not use AVX-512 at all: AVX2 has 16 vector registers, AVX-512VL 32
        if (x86 && bits < 512) cmd.add("-mno-avx512f");
        cmd.addAll(List.of("-fopenmp", "-DWIDTH=" + bits / 8));
        String how = String.join(" ", cmd) + " fma_peak.c";
        Path dir = null;
        try {
            dir = Files.createTempDirectory("nanochat4j-fma");
            Path src = dir.resolve("fma_peak.c"), exe = dir.resolve("fma_peak");
            try (InputStream in = CFmaPeak.class.getResourceAsStream("/nanochat4j/bench/fma_peak.c")) {
                if (in == null) return new Loop(dir, null, threads, how, "fma_peak.c is missing from the jar");
                Files.copy(in, src);
            }
            cmd.addAll(List.of(src.toString(), "-o", exe.toString()));
            String built = run(cmd, 60);
            if (!Files.isExecutable(exe)) return new Loop(dir, null, threads, how, "gcc failed: " + firstLine(built));
            return new Loop(dir, exe, threads, how, null);
        } catch (IOException e) {
            String why = e.getMessage() != null && e.getMessage().contains("\"gcc\"") ? "no gcc on the PATH" : e.toString();
            return new Loop(dir, null, threads, how, why);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Loop(dir, null, threads, how, "interrupted");
        }
    }

    /** A built loop (or why there is none); {@link #close} deletes it. */
    static final class Loop implements AutoCloseable {
        private final Path dir, exe;
        private final int threads;
        private final String how, reason;

        private Loop(Path dir, Path exe, int threads, String how, String reason) {
            this.dir = dir;
            this.exe = exe;
            this.threads = threads;
            this.how = how;
            this.reason = reason;
        }

        /** Runs it for {@code iters} iterations on every thread: its GFLOP/s, or NaN and why. */
        Peak measure(long iters) {
            if (exe == null) return new Peak(Double.NaN, how, reason);
            try {
                String out = run(List.of(exe.toString(), Integer.toString(threads), Long.toString(iters)), 120);
                for (String line : out.split("\n")) {
                    if (line.startsWith("GFLOP/s ")) return new Peak(Double.parseDouble(line.substring(8).trim()), how, null);
                }
                return new Peak(Double.NaN, how, "fma_peak printed no figure: " + firstLine(out));
            } catch (IOException e) {
                return new Peak(Double.NaN, how, e.toString());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return new Peak(Double.NaN, how, "interrupted");
            }
        }

        @Override
        public void close() {
            if (dir != null) deleteTree(dir);
        }
    }

    private static String run(List<String> cmd, int seconds) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        if (!p.waitFor(seconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            return cmd.get(0) + " took over " + seconds + " s";
        }
        return new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    }

    private static String firstLine(String s) {
        String t = s.strip();
        int nl = t.indexOf('\n');
        return String.format(Locale.ROOT, "%s", nl < 0 ? t : t.substring(0, nl));
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException ignored) {
            // a temp folder left behind is harmless
        }
    }
}
