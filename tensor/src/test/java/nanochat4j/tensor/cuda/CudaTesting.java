package nanochat4j.tensor.cuda;

import org.junit.jupiter.api.Assumptions;

/**
 * How a test that needs a GPU (or cudasim) starts: skipped, with CUDA's one-line reason, where none is usable. The
 * CPU tests beside it run everywhere; gpu-check and cuda-sim-checks run these.
 */
public final class CudaTesting {
    private CudaTesting() {}

    /** Skips the calling test where CUDA is unusable, saying {@code what} is skipped and why. */
    public static void assumeGpu(String what) {
        String why = CudaContext.unavailableReason();
        Assumptions.assumeTrue(why == null, () -> what + " skipped: " + why);
    }

    /** The CUDA backend, or the calling test skipped ({@link #assumeGpu}). */
    public static CudaBackend gpu(String what) {
        assumeGpu(what);
        return CudaBackend.get();
    }
}
