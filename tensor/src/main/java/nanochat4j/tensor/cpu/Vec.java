package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * The fp32 vector species every CPU kernel uses: the platform's preferred width (512-bit on AVX-512, 256 on AVX2,
 * 128 on NEON), never a hard-coded one. {@code -Dnanochat4j.vectorBits=128|256|512} forces a width, so the kernel
 * tests can also run as Apple Silicon would.
 */
public final class Vec {
    private Vec() {}

    public static final VectorSpecies<Float> F = species();
    /** Lanes of {@link #F}. */
    public static final int LANES = F.length();

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
