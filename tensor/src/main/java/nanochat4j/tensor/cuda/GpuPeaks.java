package nanochat4j.tensor.cuda;

import java.util.List;
import java.util.Locale;

/**
 * A GPU's datasheet peaks by its name, as nanochat's {@code get_peak_flops} and {@code get_peak_bandwidth} (the NVIDIA
 * rows: ours is a CUDA backend): dense bf16 FLOP/s, what MFU divides by, and memory bandwidth in bytes/s, what MBU
 * (decode) divides by. The tables are ordered, more specific patterns first ("h100"+"pcie" before "h100"); a GPU in
 * neither gives NaN, so a figure against it is left out rather than a guess.
 */
public final class GpuPeaks {
    private GpuPeaks() {}

    /** Every pattern must occur in the lower-cased name. */
    private record Row(List<String> patterns, double value) {}

    private static Row row(double value, String... patterns) {
        return new Row(List.of(patterns), value);
    }

    private static final List<Row> FLOPS = List.of(
            row(2.5e15, "gb200"), row(2.5e15, "grace blackwell"), row(2.25e15, "b200"), row(1.8e15, "b100"),
            row(836e12, "h200", "nvl"), row(836e12, "h200", "pcie"), row(989e12, "h200"),
            row(835e12, "h100", "nvl"), row(756e12, "h100", "pcie"), row(989e12, "h100"),
            row(989e12, "h800", "nvl"), row(756e12, "h800"),
            row(312e12, "a100"), row(312e12, "a800"), row(149.7e12, "a40"), row(165e12, "a30"),
            row(362e12, "l40s"), row(362e12, "l40-s"), row(362e12, "l40 s"), row(121e12, "l4"),
            row(209.5e12, "5090"), row(165.2e12, "4090"), row(71e12, "3090"));

    private static final List<Row> BANDWIDTH = List.of(
            row(8.0e12, "gb200"), row(8.0e12, "grace blackwell"), row(8.0e12, "b200"), row(8.0e12, "b100"),
            row(4.8e12, "h200"), row(3.9e12, "h100", "nvl"), row(2.0e12, "h100", "pcie"), row(3.35e12, "h100"),
            row(2.0e12, "h800", "pcie"), row(3.35e12, "h800"),
            row(2.0e12, "a100"), row(2.0e12, "a800"), row(696e9, "a40"), row(933e9, "a30"),
            row(864e9, "l40s"), row(864e9, "l40-s"), row(864e9, "l40 s"), row(300e9, "l4"),
            row(1.79e12, "5090"), row(1.01e12, "4090"), row(936e9, "3090"));

    /** Dense bf16 FLOP/s of the GPU called {@code name}, or NaN when it is not in the table. */
    public static double flops(String name) {
        return lookup(FLOPS, name);
    }

    /** Peak memory bandwidth (bytes/s) of the GPU called {@code name}, or NaN when it is not in the table. */
    public static double bandwidth(String name) {
        return lookup(BANDWIDTH, name);
    }

    private static double lookup(List<Row> table, String name) {
        String n = name.toLowerCase(Locale.ROOT);
        for (Row r : table) {
            if (r.patterns().stream().allMatch(n::contains)) return r.value();
        }
        return Double.NaN;
    }
}
