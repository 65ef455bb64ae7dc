package nanochat4j.autograd;

import nanochat4j.tensor.Tensor;

/**
 * One recorded op: its inputs, its output, and the closure that turns the output's gradient into input gradients
 * (calling the tensor backend's backward kernels). The closure captures exactly the tensors it needs; the tape
 * drops the node (and with it those tensors) as soon as it has run.
 */
final class Node {
    /** Maps the output gradient to input gradients, sending them with {@link Node#accumulate}. */
    @FunctionalInterface
    interface Backward {
        void apply(Tensor dOut);
    }

    final String op;
    final Var[] inputs;
    /** The inputs whose values the closure reads (all unless the op says fewer; {@link Autograd#shelve} drops the rest). */
    Var[] reads;
    /** Whether the closure reads the output's value too. */
    boolean readsOutput;
    Var output;
    Backward backward;

    Node(String op, Var[] inputs, Backward backward) {
        this.op = op;
        this.inputs = inputs;
        this.reads = inputs;
        this.backward = backward;
    }
}
