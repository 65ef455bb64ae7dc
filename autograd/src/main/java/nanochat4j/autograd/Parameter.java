package nanochat4j.autograd;

import java.util.Arrays;
import nanochat4j.tensor.Tensor;

/**
 * A trainable tensor that persists across steps: a name (nanochat's state-dict key), its value, and a gradient of
 * the same shape that every backward pass adds into until {@link #zeroGrad()} (gradient accumulation over
 * micro-batches). The optimizer updates {@link #tensor()} in place.
 */
public final class Parameter {
    private final String name;
    private final Tensor tensor;
    private final Tensor grad;
    private final Var var;

    public Parameter(String name, Tensor tensor) {
        this.name = name;
        this.tensor = tensor;
        this.grad = Tensor.zeros(tensor.shape());
        this.var = new Var(tensor, true, this, true);
    }

    public String name() { return name; }

    public int[] shape() { return tensor.shape(); }

    public int numel() { return tensor.numel(); }

    /** The value (updated in place by the optimizer and by checkpoint loading). */
    public Tensor tensor() { return tensor; }

    /** The accumulated gradient (zeros until a backward pass reaches this parameter). */
    public Tensor grad() { return grad; }

    public void zeroGrad() { grad.fill(0f); }

    /** The leaf var through which this parameter enters a graph. */
    public Var var() { return var; }

    @Override
    public String toString() {
        return "Parameter(" + name + " " + Arrays.toString(tensor.shape()) + ")";
    }
}
