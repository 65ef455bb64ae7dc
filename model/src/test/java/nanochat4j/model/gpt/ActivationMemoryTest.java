package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Locale;
import java.util.SplittableRandom;
import nanochat4j.autograd.Var;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStandIn;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.StandInCuda.HostStorage;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The device memory a training step holds, counted on the CUDA stand-in (whose op outputs the tape and the ops give
 * back as they would the CUDA backend's). On a GPU, memory not given back stays taken until a GC finds its tensor
 * dead, and a full device then stalls on a GC and returns the whole pool to the driver, so the count that matters is
 * memory handed out and not given back. In units of one fp32 activation of the residual stream (B·T·C·4 bytes) per
 * layer:
 * <ul>
 *   <li>at the end of the forward, what the backward will read: 26.4 while every intermediate was kept, 16.6 with the
 *       fused nodes (the residual branches, the MLP with its norm, RoPE + QK-norm, the value embedding's gather), 14.7
 *       since the q and k projections' backward starts from their normed output (no raw q, k kept), 13.9 since each
 *       block's values no backward reads go back when the block has run ({@code Autograd.shelve}); 8.1 where the
 *       backend keeps saved activations in bf16, as the CUDA backend does under bf16 matmuls (the stand-in's
 *       {@code installWithBf16Saves}), 7.6 since the blocks' tail (x0, the backout's input and output) is shelved
 *       too before the head, 7.0 (12.7 in fp32) since the norm of a block's input keeps its output, not the stream;</li>
 *   <li>at the step's peak, in its backward: 15.4 fp32, 10.4 with the bf16 saves, 9.7 since the MLP's backward keeps at
 *       most three 4C-wide tensors at once, 9.3 (14.5 in fp32) with the norm from its output (at this tiny batch the stand-in's staging of in-place weight gradients,
 *       weight-sized, is part of it);</li>
 *   <li>after the backward, what no one gave back: 77 while a host → device copy left its staging buffer behind, 3.5
 *       while the smear, value-embedding and backout nodes left their intermediates to the GC, 1.6 now (the stand-in's
 *       zero-filled CPU outputs, which the real backend's are not, and the model-wide nodes of this 4-layer model).</li>
 * </ul>
 */
class ActivationMemoryTest {
    @Test
    void aTrainingStepHoldsWhatItsBackwardReadsAndGivesTheRestBack() {
        held(false, 13.0, 14.8);
    }

    @Test
    void shelvedInBf16AStepHoldsAboutHalf() {
        held(true, 7.2, 9.6);
    }

    private static void held(boolean bf16Saves, double forwardBound, double peakBound) {
        GPTConfig cfg = new GPTConfig(64, 97, 4, 2, 2, 128, "SL");
        int b = 2, t = 64;
        double unit = 4.0 * b * t * cfg.nEmbd() * cfg.nLayer();
        try (DeviceStandIn.Installed d = bf16Saves ? StandInCuda.installWithBf16Saves() : StandInCuda.install()) {
            GPT m = TestModels.perturbed(cfg, 7).to(Device.CUDA);
            SplittableRandom r = new SplittableRandom(1);
            double[] held = new double[2];
            for (int step = 0; step < 3; step++) {   // step 0 allocates the gradients; the next ones must match it
                Tensor idx = Tensor.ofInts(r.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
                Tensor tgt = Tensor.ofInts(r.ints(b * t, 0, cfg.vocabSize()).toArray(), b, t);
                try (Recycler.Scope s = Recycler.open()) {
                    long base = HostStorage.handedOut();
                    HostStorage.peakSinceLast();
                    Var loss = m.loss(idx, tgt, Reduction.MEAN);
                    double forward = (HostStorage.handedOut() - base) / unit;
                    loss.backward();
                    double after = (HostStorage.handedOut() - base) / unit, peak = (HostStorage.peakSinceLast() - base) / unit;
                    String what = String.format(Locale.ROOT, "%s, step %d: the forward holds %.2f, the step peaks at %.2f, leaves %.2f",
                            bf16Saves ? "bf16 saves" : "fp32", step, forward, peak, after);
                    System.out.println(what);
                    assertTrue(forward <= forwardBound, what);
                    assertTrue(peak <= peakBound, what);
                    assertTrue(after <= 2.0, what);
                    if (step > 0) {
                        assertEquals(held[0], forward, 1e-9, what);
                        assertEquals(held[1], after, 1e-9, what);
                    }
                    held = new double[] {forward, after};
                }
            }
        }
    }
}
