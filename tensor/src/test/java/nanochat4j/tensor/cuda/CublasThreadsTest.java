package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/**
 * The context's one cuBLAS handle serves every thread (serve's workers decode at once), and cuBLAS reads alpha and
 * beta from host memory during the call. Here a stand-in cublasGemmEx lets a whole call from another thread run
 * inside the first one before it reads its scalars: each call must still see its own.
 */
class CublasThreadsTest {

    /** What each stand-in call read: m (which call), alpha, beta. */
    private final List<float[]> seen = new CopyOnWriteArrayList<>();
    private Cublas blas;

    @SuppressWarnings("unused") // called through the stand-in's method handle
    private int gemmEx(Object[] args) throws InterruptedException {
        int m = (int) args[3];
        if (m == 1) { // the first call: another thread's call runs to completion before this one reads its scalars
            Thread other = Thread.ofPlatform().start(() -> call(2, 2f, 3f));
            other.join();
        }
        float alpha = ((MemorySegment) args[6]).reinterpret(4).get(Ffi.F, 0);
        float beta = ((MemorySegment) args[13]).reinterpret(4).get(Ffi.F, 0);
        seen.add(new float[] {m, alpha, beta});
        return 0;
    }

    private void call(int m, float alpha, float beta) {
        blas.gemmEx(Cublas.OP_N, Cublas.OP_N, m, 1, 1, alpha, 0L, Cublas.R_16BF, 1, 0L, Cublas.R_16BF, 1, beta, 0L,
                Cublas.R_32F, 1, Cublas.COMPUTE_32F);
    }

    private MethodHandle standIn(FunctionDescriptor fd, String... names) {
        if (!names[0].equals("cublasGemmEx")) return new FfiSignaturesTest.Recorder().fn(fd, names);
        try {
            return MethodHandles.lookup().findVirtual(CublasThreadsTest.class, "gemmEx", MethodType.methodType(int.class, Object[].class))
                    .bindTo(this).asCollector(Object[].class, fd.argumentLayouts().size()).asType(fd.toMethodType());
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }

    @Test
    void aCallFromAnotherThreadDoesNotChangeTheScalarsOfOneInFlight() {
        blas = new Cublas(new Cublas.Api(this::standIn), MemorySegment.NULL, Cublas.OutOfMemory.NONE);
        call(1, 1f, 0f);
        assertEquals(2, seen.size());
        float[] inner = seen.get(0), outer = seen.get(1);
        assertEquals(List.of(2f, 2f, 3f), List.of(inner[0], inner[1], inner[2]), "the other thread's call");
        assertEquals(List.of(1f, 1f, 0f), List.of(outer[0], outer[1], outer[2]), "the first call read another call's alpha/beta");
    }
}
