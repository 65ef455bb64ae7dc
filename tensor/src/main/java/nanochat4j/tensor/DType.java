package nanochat4j.tensor;

/**
 * Element types. F32 is the compute type of every CPU kernel; BF16 is a storage format (activations and matmul
 * operands on GPU, compact checkpoints) converted to and from F32 with round-to-nearest-even; I32 holds token ids.
 */
public enum DType {
    F32(4), BF16(2), I32(4);

    private final int bytes;

    DType(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /**
     * fp32 → bf16 bits, round to nearest, ties to even (as PyTorch's {@code .to(torch.bfloat16)}). NaN stays a
     * (quiet) NaN; values that round past the largest bf16 become ±inf, as in IEEE rounding.
     */
    public static short toBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) return (short) ((bits >>> 16) | 0x40); // NaN: keep sign, force quiet
        int roundingBias = 0x7fff + ((bits >>> 16) & 1);
        return (short) ((bits + roundingBias) >>> 16);
    }

    /** bf16 bits → fp32 (exact). */
    public static float fromBf16(short h) {
        return Float.intBitsToFloat((h & 0xffff) << 16);
    }
}
