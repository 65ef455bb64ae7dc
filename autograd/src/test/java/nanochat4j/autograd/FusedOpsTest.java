package nanochat4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Function;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The fused nodes the GPT's training step is made of against the same function written with the primitive ops, at a
 * model's sizes (C = 128, 2 heads of 64, 128 tokens): values and every input's gradient. The nodes that recompute in
 * backward what the primitives keep give the same bits; the q/k node and the norm whose backward starts from its
 * output agree to fp32 rounding (gradcheck holds every node to float64 at small sizes).
 */
class FusedOpsTest {
    static final int B = 2, T = 64, C = 128, H = 2, D = 64;

    /** Value then the gradient of every input, after a backward from Σ y·r. */
    static float[][] run(Tensor[] inputs, Function<Var[], Var> op) {
        Parameter[] p = new Parameter[inputs.length];
        Var[] v = new Var[inputs.length];
        for (int i = 0; i < p.length; i++) {
            p[i] = new Parameter("in" + i, inputs[i].copy());
            v[i] = p[i].var();
        }
        Var y = op.apply(v);
        Tensor r = OpsGradcheckTest.rand(99, 1, y.shape());
        float[][] out = new float[inputs.length + 1][];
        out[0] = y.value().toFloatArray();
        Ops.dot(y, r).backward();
        for (int i = 0; i < p.length; i++) out[i + 1] = p[i].grad().toFloatArray();
        return out;
    }

    @Test
    void residualBranchEqualsLinearThenAddBitForBit() {
        Tensor[] in = {OpsGradcheckTest.rand(1, 1, B, T, C), OpsGradcheckTest.rand(2, 1, B, T, C), OpsGradcheckTest.rand(3, 0.1, C, C)};
        float[][] fused = run(in, v -> Ops.linearResidual(v[0], v[1], v[2], null));
        float[][] plain = run(in, v -> Ops.add(v[0], Ops.linear(v[1], v[2])));
        for (int i = 0; i < fused.length; i++) assertArrayEquals(plain[i], fused[i], "output " + i);
    }

    @Test
    void mlpEqualsNormLinearReluLinearAddBitForBit() {
        Tensor[] in = {OpsGradcheckTest.rand(4, 1, B, T, C), OpsGradcheckTest.rand(5, 0.1, 4 * C, C), OpsGradcheckTest.rand(6, 0.05, C, 4 * C)};
        float[][] fused = run(in, v -> Ops.mlpResidual(v[0], v[1], v[2], null));
        float[][] plain = run(in, v -> Ops.add(v[0], Ops.linear(Ops.relu2(Ops.linear(Ops.rmsNorm(v[0], 1f), v[1])), v[2])));
        for (int i = 0; i < fused.length; i++) assertArrayEquals(plain[i], fused[i], "output " + i);
    }

    @Test
    void normFromItsOutputEqualsRmsNormToRounding() {
        Tensor[] in = {OpsGradcheckTest.rand(9, 1, B, T, C)};
        float[][] fromOutput = run(in, v -> Ops.rmsNormOut(v[0], 1f));
        float[][] plain = run(in, v -> Ops.rmsNorm(v[0], 1f));
        assertArrayEquals(plain[0], fromOutput[0], "the forward is the same kernel");
        double max = 0, diff = 0;
        for (int j = 0; j < plain[1].length; j++) {
            max = Math.max(max, Math.abs(plain[1][j]));
            diff = Math.max(diff, Math.abs(plain[1][j] - fromOutput[1][j]));
        }
        assertTrue(diff <= 1e-5 * max && diff > 0, "dx: " + diff + " of " + max + " (another formula: not the same bits)");
    }

    @Test
    void qkProjectionEqualsLinearRotaryNormToRounding() {
        Backend.RotaryTables tab = Backend.cpu().rotaryTables(2 * T, D, 100000);
        Tensor[] in = {OpsGradcheckTest.rand(7, 1, B, T, C), OpsGradcheckTest.rand(8, 0.1, H * D, C)};
        float[][] fused = run(in, v -> Ops.linearRotaryNorm(v[0], v[1], H, tab.cos(), tab.sin(), 3, 1.2f));
        float[][] plain = run(in, v -> Ops.rmsNorm(Ops.rotary(Ops.reshape(Ops.linear(v[0], v[1]), B, T, H, D), tab.cos(), tab.sin(), 3), 1.2f));
        assertArrayEquals(plain[0], fused[0], "the forward is the same ops");
        for (int i = 1; i < fused.length; i++) {
            double max = 0, diff = 0;
            for (int j = 0; j < plain[i].length; j++) {
                max = Math.max(max, Math.abs(plain[i][j]));
                diff = Math.max(diff, Math.abs(plain[i][j] - fused[i][j]));
            }
            assertTrue(diff <= 1e-5 * max, "gradient " + i + ": " + diff + " of " + max);
        }
    }
}
