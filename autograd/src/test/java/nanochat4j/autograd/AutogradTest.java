package nanochat4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.ref.WeakReference;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class AutogradTest {
    @AfterEach
    void cleanTape() {
        Tape.current().clear();
    }

    @Test
    void gradientsAccumulateInParametersAcrossBackwardPassesUntilZeroed() {
        Parameter w = new Parameter("w", Tensor.of(new float[] {1, 2, 3, 4}, 2, 2));
        Tensor x = Tensor.of(new float[] {1, -1}, 1, 2);
        Tensor r = Tensor.of(new float[] {1, 1}, 1, 2);
        // L = Σ_o (x·w_oᵀ): dL/dw[o][i] = x[i]
        Ops.dot(Ops.linear(Var.constant(x), w.var()), r).backward();
        assertArrayEquals(new float[] {1, -1, 1, -1}, w.grad().toFloatArray());
        Ops.dot(Ops.linear(Var.constant(x), w.var()), r).backward(0.5f);
        assertArrayEquals(new float[] {1.5f, -1.5f, 1.5f, -1.5f}, w.grad().toFloatArray());
        w.zeroGrad();
        assertArrayEquals(new float[4], w.grad().toFloatArray());
    }

    @Test
    void noGradRecordsNothingAndRestoresTheMode() {
        Parameter w = new Parameter("w", Tensor.of(new float[] {1, 2}, 1, 2));
        Var y;
        try (var g = Autograd.noGrad()) {
            assertFalse(Autograd.isRecording());
            y = Ops.relu2(Ops.linear(Var.constant(Tensor.of(new float[] {1, 1}, 1, 2)), w.var()));
        }
        assertTrue(Autograd.isRecording());
        assertFalse(y.requiresGrad);
        assertEquals(0, Tape.current().size());
        assertEquals(9f, y.item());
        assertThrows(IllegalStateException.class, y::backward);
    }

    @Test
    void tapeIsEmptyAfterBackwardAndASecondBackwardFails() {
        Var x = Gradcheck.leaf(Tensor.of(new float[] {1, 2, 3}, 3));
        Var loss = Ops.dot(Ops.relu2(Ops.add(x, x)), Tensor.of(new float[] {1, 1, 1}, 3));
        assertEquals(3, Tape.current().size());
        loss.backward();
        assertEquals(0, Tape.current().size());
        assertArrayEquals(new float[] {8, 16, 24}, x.grad().toFloatArray()); // d/dx (2x)² = 8x
        assertThrows(IllegalStateException.class, loss::backward);
    }

    @Test
    void backwardNeedsAScalar() {
        Var x = Gradcheck.leaf(Tensor.of(new float[] {1, 2}, 2));
        assertThrows(IllegalArgumentException.class, () -> Ops.relu2(x).backward());
    }

    @Test
    void activationsAreReleasedByBackward() throws InterruptedException {
        Var x = Gradcheck.leaf(Tensor.of(new float[] {1, -2, 3, 4}, 2, 2));
        Var hidden = Ops.relu2(x);
        WeakReference<Tensor> hiddenValue = new WeakReference<>(hidden.value());
        Var loss = Ops.dot(Ops.add(hidden, hidden), Tensor.of(new float[] {1, 1, 1, 1}, 2, 2));
        hidden = null;
        loss.backward();
        for (int i = 0; i < 20 && hiddenValue.get() != null; i++) {
            System.gc();
            Thread.sleep(10);
        }
        assertNull(hiddenValue.get(), "the relu² output is unreachable once backward consumed its node");
        assertArrayEquals(new float[] {4, 0, 12, 16}, x.grad().toFloatArray()); // d/dx 2·relu(x)² = 4·relu(x)
    }

    @Test
    void gradcheckCatchesAWrongBackward() {
        Tensor[] in = {Tensor.of(new float[] {0.5f, -1f, 2f}, 3)};
        AssertionError e = assertThrows(AssertionError.class, () -> Gradcheck.check("bad", in,
                v -> Tape.current().record("bad_square", Backend.cpu().mul(v[0].value(), v[0].value()), new Var[] {v[0]},
                        dy -> Tape.accumulate(v[0], Backend.cpu().mul(dy, v[0].value()))), // should be 2·x·dy
                x -> new double[] {x[0][0] * x[0][0], x[0][1] * x[0][1], x[0][2] * x[0][2]}, 1e-3, 1e-4, 1));
        assertTrue(e.getMessage().contains("gradient of input 0"), e.getMessage());
    }
}
