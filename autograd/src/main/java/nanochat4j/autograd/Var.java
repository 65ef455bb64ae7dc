package nanochat4j.autograd;

import java.util.Arrays;
import nanochat4j.tensor.Tensor;

/**
 * A differentiable value: its tensor, its gradient (filled by {@link #backward()}), and the tape node that made it
 * (null for leaves). A leaf that belongs to a {@link Parameter} sends its gradient into the parameter's persistent
 * gradient, so successive backward passes (micro-batches) accumulate there.
 * <ul>
 *   <li>{@code requiresGrad} is false for constants and for everything made inside {@link Autograd#noGrad()};</li>
 *   <li>after a backward pass the intermediate values and gradients are dropped (the tape releases its nodes as it
 *       goes), so only the vars the caller still holds keep their tensors alive.</li>
 * </ul>
 */
public final class Var {
    /** Replaced only by {@link Autograd#shelve} (by the form its backward reads, the same values to bf16 precision). */
    Tensor value;
    final boolean requiresGrad;
    final Parameter param;
    final boolean leaf;
    Node node;
    Tensor grad;

    Var(Tensor value, boolean requiresGrad, Parameter param, boolean leaf) {
        this.value = value;
        this.requiresGrad = requiresGrad;
        this.param = param;
        this.leaf = leaf;
    }

    /** A constant (no gradient flows into it). */
    public static Var constant(Tensor value) {
        return new Var(value, false, null, true);
    }

    /**
     * The value: as computed, or after {@link Autograd#shelve} has shelved it, in the form a backward reads (bf16 on a
     * GPU under bf16 matmuls).
     */
    public Tensor value() { return value; }

    public int[] shape() { return value.shape(); }

    /** The gradient of a leaf after {@link #backward()} (null if nothing flowed into it); parameters keep theirs in {@link Parameter#grad()}. */
    public Tensor grad() { return param != null ? param.grad() : grad; }

    /** The single value of a one-element var (e.g. the loss). */
    public float item() { return value.item(); }

    /** Reverse-mode pass from this scalar with d(this)/d(this) = 1. */
    public void backward() {
        backward(1f);
    }

    /** Reverse-mode pass from this scalar with upstream gradient {@code seed} (e.g. 1/grad_accum_steps). */
    public void backward(float seed) {
        if (value.numel() != 1) {
            throw new IllegalArgumentException("backward() needs a one-element var, got shape " + Arrays.toString(value.shape()));
        }
        if (!requiresGrad) throw new IllegalStateException("backward(): this var does not require grad (made under noGrad, or from constants only)");
        Tensor seedT = Tensor.full(seed, value.shape());
        // the seed goes up to the loss's device (the only host → device copy of a backward pass)
        if (value.isOnDevice()) seedT = seedT.toDevice(value.deviceStorage().allocateLike(Float.BYTES));
        Tape.current().backward(this, seedT);
    }

    @Override
    public String toString() {
        return "Var" + Arrays.toString(value.shape()) + (param != null ? " " + param.name() : "") + (node != null ? " <- " + node.op : "");
    }
}
