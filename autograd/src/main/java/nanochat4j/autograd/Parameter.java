package nanochat4j.autograd;

import java.util.Arrays;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Device;
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
        this.grad = Backend.of(tensor).zeros(tensor.shape());   // on the value's device
        this.var = new Var(tensor, true, this, true);
    }

    public String name() { return name; }

    public int[] shape() { return tensor.shape(); }

    public int numel() { return tensor.numel(); }

    /** The value (updated in place by the optimizer and by checkpoint loading). */
    public Tensor tensor() { return tensor; }

    /** The accumulated gradient (zeros until a backward pass reaches this parameter). */
    public Tensor grad() { return grad; }

    public void zeroGrad() { Backend.of(grad).zero(grad); }

    /** The leaf var through which this parameter enters a graph. */
    public Var var() { return var; }

    /** The device the value and its gradient live on. */
    public Device device() { return tensor.device(); }

    @Override
    public String toString() {
        return "Parameter(" + name + " " + Arrays.toString(tensor.shape()) + ")";
    }
}
