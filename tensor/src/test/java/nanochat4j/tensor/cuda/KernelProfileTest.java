package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The per-kernel profile of device work ({@link Backend#startProfile}; skipped with the reason where no GPU is usable):
 * every kernel launch, cuBLAS call and graph launch while it is on, by name, with its calls and milliseconds, the
 * results unchanged; work recorded into a graph is timed as the graph's launch, not kernel by kernel.
 */
class KernelProfileTest {
    private CudaBackend be;

    @BeforeEach
    void gpu() {
        be = CudaTesting.gpu("CUDA profile tests");
    }

    private static Map<String, Backend.KernelTime> byName(List<Backend.KernelTime> t) {
        return t.stream().collect(Collectors.toMap(Backend.KernelTime::name, k -> k));
    }

    @Test
    void eachKernelAndCublasCallIsTimedByNameAndTheResultsAreUnchanged() {
        float[] av = new float[64 * 64], bv = new float[64 * 64];
        for (int i = 0; i < av.length; i++) {
            av[i] = (i % 13) / 13f;
            bv[i] = (i % 7) / 7f - 0.5f;
        }
        Tensor a = be.upload(Tensor.of(av, 64, 64)), b = be.upload(Tensor.of(bv, 64, 64));
        float[] plainSum = be.add(be.add(a, b), b).toFloatArray(), plainProduct = be.matmul(a, false, b, false).toFloatArray();

        assertTrue(be.startProfile());
        Tensor sum = be.add(be.add(a, b), b), product = be.matmul(a, false, b, false);
        List<Backend.KernelTime> times = be.stopProfile();

        assertArrayEquals(plainSum, sum.toFloatArray());
        assertArrayEquals(plainProduct, product.toFloatArray());
        Map<String, Backend.KernelTime> t = byName(times);
        assertEquals(2, t.get("binary_bcast_f32").calls(), times.toString());
        assertEquals(1, times.stream().filter(k -> k.name().startsWith("cublas")).mapToInt(Backend.KernelTime::calls).sum(), times.toString());
        for (int i = 0; i < times.size(); i++) {
            assertTrue(times.get(i).ms() >= 0, times.toString());
            if (i > 0) assertTrue(times.get(i - 1).ms() >= times.get(i).ms(), "longest first: " + times);
        }
        // off again: nothing more is timed, and a second start while on is refused
        be.add(a, b);
        assertTrue(be.stopProfile().isEmpty());
        assertTrue(be.startProfile());
        try {
            assertThrows(IllegalStateException.class, be::startProfile);
        } finally {
            be.stopProfile();
        }
    }

    @Test
    void aRecordingIsTimedAsItsGraphLaunch() {
        Tensor a = be.upload(Tensor.of(new float[] {1, 2, 3})), b = be.upload(Tensor.of(new float[] {10, 20, 30}));
        Tensor[] out = new Tensor[1];
        assertTrue(be.startProfile());
        List<Backend.KernelTime> times;
        try (Backend.Recording r = be.record(() -> out[0] = be.add(be.scale(a, 2f), b))) {
            assertTrue(r.replay());
            assertTrue(r.replay());
        } finally {
            times = be.stopProfile();
        }
        assertArrayEquals(new float[] {12, 24, 36}, out[0].toFloatArray());
        Map<String, Backend.KernelTime> t = byName(times);
        assertEquals(2, t.get("CUDA graph").calls(), times.toString());
        assertFalse(t.containsKey("binary_bcast_f32"), "a recorded kernel is not timed on its own: " + times);
    }
}
