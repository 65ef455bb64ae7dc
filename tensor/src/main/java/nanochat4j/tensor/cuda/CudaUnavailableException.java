package nanochat4j.tensor.cuda;

/** No usable CUDA here: a library is missing, there is no driver or no device. The message is one line saying which. */
public final class CudaUnavailableException extends CudaException {
    public CudaUnavailableException(String message) {
        super(message, -1);
    }

    public CudaUnavailableException(String message, int code) {
        super(message, code);
    }
}
