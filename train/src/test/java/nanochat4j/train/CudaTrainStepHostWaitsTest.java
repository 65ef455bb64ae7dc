package nanochat4j.train;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import nanochat4j.autograd.Var;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.gpt.TestModels;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cuda.CudaBackend;
import nanochat4j.tensor.cuda.CudaContext;
import nanochat4j.tensor.cuda.CudaTesting;
import nanochat4j.tensor.cuda.MatmulPrecision;
import nanochat4j.train.optim.MuonAdamW;
import org.junit.jupiter.api.Test;

/**
 * A training step on the GPU makes the host wait for the device a fixed number of times, whatever the depth: the
 * batch's ids and targets going up and the loss's health flags coming down in the forward; the backward's seed going
 * up and read by the loss's node, and the ids' scatter segments going up once for every embedding table (the ids
 * were sorted on the host as they went up; each table read them back and uploaded its own sort: five waits a table,
 * the host's sort in the middle of the backward); nothing in the optimizer after its first step (Muon's constants
 * stay on the device). Each wait drains the stream: the device idles while the host catches up. Skipped without a GPU.
 */
class CudaTrainStepHostWaitsTest {
    @Test
    void aTrainingStepWaitsForTheDeviceAFixedNumberOfTimes() {
        CudaBackend be = CudaTesting.gpu("training-step host-wait count");
        MatmulPrecision before = be.setMatmulPrecision(MatmulPrecision.BF16);
        try {
            GPTConfig cfg = new GPTConfig(64, 70, 4, 4, 4, 32, "SSSL");   // value embeddings on two layers: three tables
            GPT model = TestModels.perturbed(cfg, 11).to(Device.CUDA);
            MuonAdamW opt = new MuonAdamW(model.paramGroups());
            CudaContext ctx = CudaContext.get();
            Random r = new Random(5);
            for (int step = 0; step < 2; step++) {
                Tensor x = ids(r, cfg), y = ids(r, cfg);
                long w0 = ctx.hostWaits(), w1, w2;
                Var loss;
                try (var recycling = Recycler.open()) {
                    loss = model.loss(x, y, Reduction.MEAN);
                    w1 = ctx.hostWaits();
                    loss.backward(1f);
                    w2 = ctx.hostWaits();
                }
                assertTrue(Float.isFinite(loss.item()));
                long w3 = ctx.hostWaits();
                opt.step();
                opt.zeroGrad();
                long w4 = ctx.hostWaits();
                assertEquals(3, w1 - w0, "forward of step " + step + ": ids and targets up, the loss's flags down");
                assertEquals(3, w2 - w1, "backward of step " + step + ": its seed up and read, the ids' segments up once for 3 tables");
                if (step > 0) assertEquals(0, w4 - w3, "optimizer step " + step + " (its constants went up in the first)");
            }
        } finally {
            be.setMatmulPrecision(before);
        }
    }

    private static Tensor ids(Random r, GPTConfig cfg) {
        int[] a = new int[2 * 32];
        for (int i = 0; i < a.length; i++) a[i] = r.nextInt(cfg.vocabSize());
        return Tensor.ofInts(a, 2, 32);
    }
}
