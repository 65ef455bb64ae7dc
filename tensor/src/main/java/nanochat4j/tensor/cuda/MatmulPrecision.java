package nanochat4j.tensor.cuda;

import java.util.Locale;
import nanochat4j.tensor.Backend;

/**
 * How the CUDA backend computes the model's linear layers (forward, both backward GEMMs, and the lm_head inside the
 * chunked softcap + cross-entropy): nanochat's CUDA policy is {@link #BF16} — every {@code Linear} casts its fp32
 * master weight to bf16 and multiplies bf16 activations, while the logits are upcast to fp32 for softcap and loss,
 * and the optimizer keeps fp32 weights and state. Here the operands are rounded to bf16 as they enter the GEMM
 * (cuBLAS GemmEx or our tensor-core kernel), accumulation and output stay fp32, and everything else (norms,
 * attention, softcap + CE, the optimizer's matmuls) is unchanged fp32. {@link #FP32} is cuBLAS SGEMM throughout.
 */
public enum MatmulPrecision {
    FP32, BF16;

    /** "bf16"/"bfloat16" or "fp32"/"float32" (case-insensitive), the flag's values; anything else names the choices. */
    public static MatmulPrecision parse(String s) {
        return switch (s.toLowerCase(Locale.ROOT)) {
            case "bf16", "bfloat16" -> BF16;
            case "fp32", "float32" -> FP32;
            default -> throw new IllegalArgumentException("--precision " + s + ": expected bf16 (nanochat's default on CUDA) or fp32");
        };
    }

    public String flag() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** A run's body. */
    @FunctionalInterface
    public interface Body<T, E extends Exception> {
        T run() throws E;
    }

    /**
     * {@code body} with {@code backend}'s linear layers at this precision for its length only, when it is the CUDA
     * backend (any other computes as it does): the setting is process-wide, and what runs after in the same JVM (a
     * test of fp32 ops, the next command of a pipeline) must find it as it was.
     */
    public <T, E extends Exception> T during(Backend backend, Body<T, E> body) throws E {
        CudaBackend cuda = backend instanceof CudaBackend cb ? cb : null;
        MatmulPrecision before = cuda != null ? cuda.setMatmulPrecision(this) : null;
        try {
            return body.run();
        } finally {
            if (cuda != null) cuda.setMatmulPrecision(before);
        }
    }
}
