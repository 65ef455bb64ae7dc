package nanochat4j.tensor.cuda;

/**
 * A failed CUDA, NVRTC or cuBLAS call. The message names the call and the library's own error string; {@link #code}
 * keeps the numeric result so callers can react to specific failures (out of memory, PTX too new for the driver).
 */
public class CudaException extends RuntimeException {
    private final int code;

    public CudaException(String message, int code) {
        super(message);
        this.code = code;
    }

    public CudaException(String message, int code, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    /** The CUresult / nvrtcResult / cublasStatus_t of the failed call (−1 when no call failed). */
    public int code() {
        return code;
    }
}
