package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import nanochat4j.autograd.Autograd;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.train.optim.MuonAdamW;
import org.junit.jupiter.api.Test;

/**
 * The gradient all-reduce overlapped with the backward pass, on two in-process CPU ranks (threads over the real
 * ring): the averaged gradients equal one all-reduce after the backward pass bit for bit, buckets really start
 * while the backward runs, and two optimizer steps from them (unsharded on each rank) end with the parameters the
 * ZeRO-2 optimizer reaches reducing after backward — bit for bit, identical on both ranks.
 */
class OverlappedGradReduceTest {
    static final GPTConfig CFG = new GPTConfig(32, 70, 2, 4, 2, 32, "SL");
    static final int WORLD = 2, BUCKET = 3000; // small buckets: several per backward pass

    static Tensor ids(long seed) {
        Random r = new Random(seed);
        int[] a = new int[2 * 16];
        for (int i = 0; i < a.length; i++) a[i] = r.nextInt(CFG.vocabSize());
        return Tensor.ofInts(a, 2, 16);
    }

    /** Two micro-steps of rank {@code rank}'s data at {@code step}; the last backward inside {@code last} when given. */
    static void backward(GPT model, int rank, int step, OverlappedGradReduce last) {
        for (int micro = 0; micro < 2; micro++) {
            long seed = 1000L * step + 100L * rank + 10L * micro;
            var loss = model.loss(ids(seed), ids(seed + 1), Reduction.MEAN);
            if (last != null && micro == 1) {
                try (var s = last.duringBackward()) {
                    loss.backward(0.5f);
                }
            } else {
                loss.backward(0.5f);
            }
        }
    }

    static List<float[]> grads(GPT m) {
        return m.parameters().stream().map(p -> p.grad().toFloatArray()).toList();
    }

    record RankResult(List<float[]> overlapped, List<float[]> reference, List<float[]> paramsOverlap, List<float[]> paramsZero,
                      long startedDuringBackward, int buckets) {}

    @Test
    void overlappedReduceEqualsReducingAfterBackwardBitForBit() throws Exception {
        List<RankResult> results = InProcessRing.run(WORLD, "overlap-test", comm -> {
            GPT overlap = GPT.create(CFG, 5), zero = GPT.create(CFG, 5);
            MuonAdamW optOverlap = new MuonAdamW(overlap.paramGroups()); // unsharded: gradients arrive averaged
            MuonAdamW optZero = new MuonAdamW(zero.paramGroups(), comm);   // ZeRO-2: reduces inside step()
            List<float[]> firstOverlapped = null, firstReference = null;
            long started = 0;
            int buckets;
            try (OverlappedGradReduce reduce = new OverlappedGradReduce(overlap.parameters(), comm, BUCKET)) {
                buckets = reduce.bucketCount();
                for (int step = 0; step < 2; step++) {
                    backward(overlap, comm.rank(), step, reduce);
                    reduce.await();
                    backward(zero, comm.rank(), step, null);
                    if (step == 0) {
                        firstOverlapped = grads(overlap);
                        // the reference: one all-reduce of each gradient after the backward pass
                        List<float[]> ref = new ArrayList<>();
                        for (Parameter p : zero.parameters()) {
                            float[] g = p.grad().toFloatArray();
                            comm.allReduce(g, 0, g.length, ReduceOp.AVG);
                            ref.add(g);
                        }
                        firstReference = ref;
                    }
                    optOverlap.step();
                    optOverlap.zeroGrad();
                    optZero.step();
                    optZero.zeroGrad();
                }
                started = reduce.bucketsStartedDuringBackward();
                assertEquals(2, reduce.steps());
            }
            return new RankResult(firstOverlapped, firstReference, overlap.parameters().stream().map(p -> p.tensor().toFloatArray()).toList(),
                    zero.parameters().stream().map(p -> p.tensor().toFloatArray()).toList(), started, buckets);
        });
        List<String> names = GPT.create(CFG, 5).parameters().stream().map(Parameter::name).toList();
        for (RankResult r : results) {
            assertTrue(r.buckets() > 2, "several buckets: " + r.buckets());
            assertTrue(r.startedDuringBackward() > 0, "buckets started while the backward pass ran");
            for (int i = 0; i < names.size(); i++) {
                assertArrayEquals(r.reference().get(i), r.overlapped().get(i), "averaged gradient of " + names.get(i));
                assertArrayEquals(r.paramsZero().get(i), r.paramsOverlap().get(i), names.get(i) + " after 2 steps");
                assertArrayEquals(results.getFirst().paramsOverlap().get(i), r.paramsOverlap().get(i), names.get(i) + " equal on both ranks");
            }
        }
    }

    /**
     * The device path (gradients device → host buffer → ring → device on the reducer thread, while the main thread
     * queues the rest of the backward on the same stream): two in-process ranks on one GPU, against one all-reduce
     * of the downloaded gradients after the backward pass, bit for bit. Without a GPU on {@link StandInCuda}.
     */
    @Test
    void onTheGpuTheOverlappedReduceEqualsReducingAfterBackward() throws Exception {
        try (var device = StandInCuda.unlessGpu()) {
            onTheDevice();
        }
    }

    private static void onTheDevice() throws Exception {
        List<Boolean> ok = InProcessRing.run(WORLD, "overlap-gpu", comm -> {
            GPT overlap = GPT.create(CFG, 5, Device.CUDA), plain = GPT.create(CFG, 5, Device.CUDA);
            try (OverlappedGradReduce reduce = new OverlappedGradReduce(overlap.parameters(), comm, BUCKET)) {
                backward(overlap, comm.rank(), 0, reduce);
                reduce.await();
            }
            backward(plain, comm.rank(), 0, null);
            List<Parameter> po = overlap.parameters(), pp = plain.parameters();
            for (int i = 0; i < po.size(); i++) {
                float[] want = pp.get(i).grad().toFloatArray();
                comm.allReduce(want, 0, want.length, ReduceOp.AVG);
                assertArrayEquals(want, po.get(i).grad().toFloatArray(), "rank " + comm.rank() + " " + po.get(i).name());
            }
            return true;
        });
        assertEquals(List.of(true, true), ok);
    }

    @Test
    void autogradReportsEachParameterOnceAfterItsLastUse() {
        GPT model = GPT.create(CFG, 5);
        List<String> ready = new ArrayList<>();
        var loss = model.loss(ids(1), ids(2), Reduction.MEAN);
        try (var s = Autograd.onGradReady(p -> ready.add(p.name()))) {
            loss.backward();
        }
        List<String> all = model.parameters().stream().map(Parameter::name).toList();
        assertEquals(all.size(), ready.size(), "every parameter once: " + ready);
        assertEquals(all.size(), ready.stream().distinct().count());
        assertEquals("lm_head.weight", ready.getFirst(), "the last layer finishes first");
        // a listener is only active inside its scope
        ready.clear();
        model.loss(ids(1), ids(2), Reduction.MEAN).backward();
        assertTrue(ready.isEmpty());
    }

    @Test
    void aStepMustAwaitItsReductionBeforeTheNextBackward() throws Exception {
        InProcessRing.run(WORLD, "overlap-misuse", comm -> {
            GPT model = GPT.create(CFG, 5);
            try (OverlappedGradReduce reduce = new OverlappedGradReduce(model.parameters(), comm, BUCKET)) {
                backward(model, comm.rank(), 0, reduce);
                IllegalStateException e = assertThrows(IllegalStateException.class, reduce::duringBackward);
                assertTrue(e.getMessage().contains("await()"), e.getMessage());
                reduce.await();
            }
            return null;
        });
    }
}
