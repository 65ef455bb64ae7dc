package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fp32 vector species every CPU kernel uses: the platform's preferred width (512-bit on AVX-512, 256 on AVX2,
 * 128 on NEON), never a hard-coded one. {@code -Dnanochat4j.vectorBits=128|256|512} forces a width, so the kernel
 * tests can also run as Apple Silicon would.
 */
public final class Vec {
    private Vec() {}

    static {
        JitInlining.register(); // every kernel reads Vec.F, so this runs before any of them is compiled
    }

    public static final VectorSpecies<Float> F = species();
    /** Lanes of {@link #F}. */
    public static final int LANES = F.length();
    /**
     * Architectural vector registers: 32 on AVX-512 and arm64 (NEON/SVE), 16 on AVX2 (also when -XX:UseAVX=2 runs an
     * AVX-512 CPU as AVX2). Register-tiled kernels size their tiles by it.
     */
    public static final int REGISTERS = System.getProperty("os.arch", "").equals("aarch64")
            || VectorShape.preferredShape().vectorBitSize() >= 512 ? 32 : 16;

    /** Shorts with the lane count of {@link #F} (half its bits), and ints of F's shape: for widening bf16. */
    private static final VectorSpecies<Short> BF16 = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    private static final VectorSpecies<Integer> INTS = F.withLanes(int.class);

    /**
     * Σ a[ao+i]·b[bo+i] over n floats in a fixed order: four vector accumulators, so the FMAs do not wait on each other
     * (one chain of 192 dependent FMAs at 128 bits and n = 768 took half of rms_norm's time), summed as
     * (acc0 + acc1) + (acc2 + acc3), then the tail. rms_norm's row sums and the batch-1 decode GEMV's rows.
     */
    public static float dot(float[] a, int ao, float[] b, int bo, int n) {
        int j = 0, ub4 = n / (4 * LANES) * (4 * LANES), ub = n / LANES * LANES;
        var a0 = FloatVector.zero(F);
        var a1 = FloatVector.zero(F);
        var a2 = FloatVector.zero(F);
        var a3 = FloatVector.zero(F);
        for (; j < ub4; j += 4 * LANES) {
            a0 = FloatVector.fromArray(F, a, ao + j).fma(FloatVector.fromArray(F, b, bo + j), a0);
            a1 = FloatVector.fromArray(F, a, ao + j + LANES).fma(FloatVector.fromArray(F, b, bo + j + LANES), a1);
            a2 = FloatVector.fromArray(F, a, ao + j + 2 * LANES).fma(FloatVector.fromArray(F, b, bo + j + 2 * LANES), a2);
            a3 = FloatVector.fromArray(F, a, ao + j + 3 * LANES).fma(FloatVector.fromArray(F, b, bo + j + 3 * LANES), a3);
        }
        for (; j < ub; j += LANES) a0 = FloatVector.fromArray(F, a, ao + j).fma(FloatVector.fromArray(F, b, bo + j), a0);
        float s = VecMath.sum(a0.add(a1).add(a2.add(a3)));
        for (; j < n; j++) s += a[ao + j] * b[bo + j];
        return s;
    }

    /** {@link #LANES} bf16 values from h[o..] as fp32 (exact): widen short → int (the sign bits shift out), move to the high half. */
    public static FloatVector fromBf16(short[] h, int o) {
        return ((IntVector) ShortVector.fromArray(BF16, h, o).convertShape(VectorOperators.S2I, INTS, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    private static VectorSpecies<Float> species() {
        String bits = System.getProperty("nanochat4j.vectorBits");
        if (bits == null || bits.isBlank()) return FloatVector.SPECIES_PREFERRED;
        VectorSpecies<Float> s = switch (bits.trim()) {
            case "64" -> FloatVector.SPECIES_64;
            case "128" -> FloatVector.SPECIES_128;
            case "256" -> FloatVector.SPECIES_256;
            case "512" -> FloatVector.SPECIES_512;
            default -> throw new IllegalArgumentException("-Dnanochat4j.vectorBits=" + bits + ": use 64, 128, 256 or 512");
        };
        if (s.vectorBitSize() > VectorShape.preferredShape().vectorBitSize()) {
            throw new IllegalArgumentException("-Dnanochat4j.vectorBits=" + bits + " exceeds this CPU's "
                    + VectorShape.preferredShape().vectorBitSize() + "-bit vectors");
        }
        return s;
    }
}
