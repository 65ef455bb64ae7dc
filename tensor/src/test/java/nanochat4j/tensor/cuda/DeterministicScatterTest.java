package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The embedding scatter-add on the GPU is deterministic and equals the CPU's bit for bit, with many repeated ids
 * (what exact resume of a GPU run rests on). Skipped without a GPU.
 */
class DeterministicScatterTest {
    @Test
    void repeatedIdsSumInPositionOrderEveryRun() {
        CudaBackend be = CudaTesting.gpu("GPU scatter-add");
        SplittableRandom r = new SplittableRandom(2);
        int v = 50, n = 4096, e = 96;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) ids[i] = r.nextInt(v) % 7 == 0 ? 3 : r.nextInt(v); // id 3 is very frequent
        float[] dy = new float[n * e], table = new float[v * e];
        for (int i = 0; i < dy.length; i++) dy[i] = (float) r.nextGaussian();
        for (int i = 0; i < table.length; i++) table[i] = (float) r.nextGaussian();
        Tensor cpu = Tensor.of(table.clone(), v, e);
        Backend.cpu().embeddingBackward(Tensor.of(dy, 2, n / 2, e), Tensor.ofInts(ids, 2, n / 2), cpu);
        Tensor dDy = be.upload(Tensor.of(dy, 2, n / 2, e)), dIds = be.upload(Tensor.ofInts(ids, 2, n / 2));
        for (int run = 0; run < 2; run++) {
            Tensor gpu = be.upload(Tensor.of(table.clone(), v, e));
            be.embeddingBackward(dDy, dIds, gpu);
            assertArrayEquals(cpu.toFloatArray(), gpu.toFloatArray(), "run " + run);
        }
    }
}
