package nanochat4j.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The stand-in is as strict as the GPU where its promise says so, and gives the CPU's results. */
class StandInCudaTest {
    private final Backend be = StandInCuda.backend();

    @Test
    void opsComputeTheCpusResultsOnDeviceTensors() {
        Tensor a = Tensor.of(new float[] {1, -2, 3, 4}, 2, 2), b = Tensor.of(new float[] {0.5f, 1, 2, -1}, 2, 2);
        Tensor y = be.matmul(be.upload(a), false, be.upload(b), true);
        assertEquals(Device.CUDA, y.device());
        assertArrayEquals(Backend.cpu().matmul(a, false, b, true).toFloatArray(), y.toFloatArray());
        Backend.AttentionOut out = be.attention(be.upload(Tensor.of(new float[16], 1, 2, 2, 4)), be.upload(Tensor.of(new float[16], 1, 2, 2, 4)),
                be.upload(Tensor.of(new float[16], 1, 2, 2, 4)), 0, 0.5f);
        assertTrue(out.y().isOnDevice() && out.lse().isOnDevice(), "a record's tensors come back on the device");
        assertEquals("CUDA", be.device().toString());
    }

    @Test
    void aHostTensorHandedToAnOpIsRefusedAsTheCudaBackendRefusesIt() {
        Tensor dev = be.upload(Tensor.of(new float[] {1, 2}));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.add(dev, Tensor.of(new float[] {1, 2})));
        assertTrue(e.getMessage().startsWith("add: ") && e.getMessage().contains("CPU memory"), e.getMessage());
        Tensor up = be.upload(dev);
        assertSame(dev, up, "a device tensor uploads as itself");
    }

    @Test
    void inPlaceOpsWriteBackOnlyWhatTheyChanged() {
        Tensor x = be.upload(Tensor.of(new float[] {1, 2, 3}));
        Tensor y = be.upload(Tensor.of(new float[] {10, 20, 30}));
        be.axpy(2f, x, y);
        assertArrayEquals(new float[] {12, 24, 36}, y.toFloatArray());
        assertArrayEquals(new float[] {1, 2, 3}, x.toFloatArray());
        Tensor whole = be.upload(Tensor.of(new float[] {1, 2, 3, 4}, 2, 2));
        be.zero(whole.select(1));
        assertArrayEquals(new float[] {1, 2, 0, 0}, whole.toFloatArray(), "a view writes into its storage at its offset");
    }

    @Test
    void memoryHandedBackCannotBeReadWrittenOrHandedBackAgain() {
        Tensor t = StandInCuda.up(Tensor.of(new float[] {1, 2}));
        t.deviceStorage().recycle();
        IllegalStateException read = assertThrows(IllegalStateException.class, t::toFloatArray);
        assertTrue(read.getMessage().startsWith("a read of device memory that went back"), read.getMessage());
        assertThrows(IllegalStateException.class, () -> t.copyFrom(Tensor.of(new float[] {3, 4})));
        assertThrows(IllegalStateException.class, () -> be.scale(t, 2f));
        assertThrows(IllegalStateException.class, () -> t.deviceStorage().recycle());
    }

    @Test
    void installedItIsTheCudaBackendUntilClosed() {
        long before = StandInCuda.ops();
        try (var installed = StandInCuda.install()) {
            assertEquals(null, Backend.unavailableReason(Device.CUDA));
            Tensor z = Backend.forDevice(Device.CUDA).zeros(3);
            assertSame(Backend.forDevice(Device.CUDA), Backend.of(z));
            assertThrows(IllegalStateException.class, StandInCuda::install, "one at a time");
        }
        assertTrue(StandInCuda.ops() > before);
        if (!StandInCuda.gpu()) assertTrue(Backend.unavailableReason(Device.CUDA) != null, "closed: no CUDA here again");
    }
}
