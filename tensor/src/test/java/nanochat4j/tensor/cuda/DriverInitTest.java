package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.invoke.MethodHandles;
import org.junit.jupiter.api.Test;

/**
 * What a user sees when the driver is there but CUDA cannot start: cuInit's result turned into a one-line
 * {@link CudaUnavailableException} (the caller then stays on the CPU), with the driver's own handles replaced by a
 * stand-in whose cuInit returns a chosen CUresult.
 */
class DriverInitTest {

    private static Driver driverWhoseInitReturns(int result) {
        FfiSignaturesTest.Recorder rest = new FfiSignaturesTest.Recorder();
        return new Driver((fd, names) -> names[0].equals("cuInit")
                ? MethodHandles.dropArguments(MethodHandles.constant(int.class, result), 0, int.class)
                : rest.fn(fd, names), "/usr/lib/x86_64-linux-gnu/libcuda.so.1");
    }

    private static String failure(int result) {
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class, () -> driverWhoseInitReturns(result).init());
        assertEquals(result, e.code(), e.getMessage());
        return e.getMessage();
    }

    @Test
    void eachFailureOfCuInitSaysWhatIsWrong() {
        assertDoesNotThrow(() -> driverWhoseInitReturns(0).init());
        String none = failure(Driver.CUDA_ERROR_NO_DEVICE);
        assertTrue(none.contains("sees no GPU") && none.contains("libcuda.so.1"), none);
        String stub = failure(Driver.CUDA_ERROR_STUB_LIBRARY);
        assertTrue(stub.contains("stub libcuda") && stub.contains("no NVIDIA driver"), stub);
        String mismatch = failure(Driver.CUDA_ERROR_SYSTEM_DRIVER_MISMATCH);
        assertTrue(mismatch.contains("different versions") && mismatch.contains("reboot"), mismatch);
        String other = failure(999);
        assertTrue(other.startsWith("CUDA: cuInit failed"), other);
    }
}
