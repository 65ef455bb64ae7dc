package nanochat4j.autograd;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Tensor;

/**
 * The per-thread record of ops, in execution order. {@link #backward} walks it once in reverse: each node whose
 * output received a gradient runs its backward closure, then is dropped together with its saved tensors and its
 * output's gradient, so activation memory falls as the backward pass proceeds. The tape is empty afterwards.
 *
 * <p>Inside a {@link Recycler} scope the pass also gives the dropped node's output value and gradient back to the
 * thread's pool, for the next ops to write into, when nothing can read them again:
 * <ul>
 *   <li>the output value: every op that read it came later on the tape and has been dropped already; it is kept if it
 *       is (a view of) one of the node's inputs, or some var's gradient is a window on it;</li>
 *   <li>the gradient: kept while some var's gradient is still a window on its storage (add hands one dy to both of
 *       its inputs, reshape a view of it), which {@link #held} counts per storage; a view going free frees the
 *       storage it views. So do the two gradients a sum into a var replaced, once the closure has returned;</li>
 *   <li>the root and the nodes recorded after it are never given back: the caller holds them.</li>
 * </ul>
 */
final class Tape {
    private static final ThreadLocal<Tape> CURRENT = ThreadLocal.withInitial(Tape::new);

    private final List<Node> nodes = new ArrayList<>();
    int noGradDepth;
    /** See {@link Autograd#onGradReady}; null when nobody listens. */
    Autograd.GradReady gradReady;
    /**
     * During a recycling backward pass: for each storage, how many vars' gradients are windows on it now (a
     * storage at 0 is read by no var). Null otherwise.
     */
    private Map<Object, int[]> held;
    /** During a recycling backward pass: gradients summed in the running closure, given back after it if unheld. */
    private final List<Tensor> replaced = new ArrayList<>();

    static Tape current() {
        return CURRENT.get();
    }

    boolean recording() {
        return noGradDepth == 0;
    }

    int size() {
        return nodes.size();
    }

    void clear() {
        for (Node n : nodes) {
            if (n != null && n.output != null) n.output.node = null;
        }
        nodes.clear();
    }

    /**
     * The output var of an op on {@code inputs}: recorded with its backward closure when grad mode is on and some
     * input requires a gradient, else a constant.
     */
    Var record(String op, Tensor out, Var[] inputs, Node.Backward backward) {
        if (OpTimes.ENABLED) OpTimes.forward(op);
        boolean needs = records(inputs);
        Var result = new Var(out, needs, null, false);
        if (needs) {
            Node n = new Node(op, inputs, backward);
            n.output = result;
            result.node = n;
            nodes.add(n);
        }
        return result;
    }

    /** Whether an op on {@code inputs} is recorded now (grad mode on, some input requires a gradient). */
    boolean records(Var... inputs) {
        if (!recording()) return false;
        for (Var v : inputs) if (v != null && v.requiresGrad) return true;
        return false;
    }

    /**
     * See {@link Autograd#shelve}. The outputs recorded from index {@code from} on are grouped by storage (an op's
     * result and the views later ops made of it); a group is the whole of a fresh op output (its memory may go back)
     * that no var of {@code stillRead} and no leaf shares. If some backward reads it (an input its node's closure reads, or an output read by its own
     * node) and its backend keeps a different form, every var of the group then reads the new form (same shape) and the
     * old storage goes back to the pool; if no backward reads it, it goes back at once, with no copy, on any backend.
     */
    void shelve(int from, Var... stillRead) {
        if (!recording() || !Recycler.isOpen() || from >= nodes.size()) return;
        Map<Object, List<Var>> groups = new IdentityHashMap<>();
        Map<Object, Boolean> pinned = new IdentityHashMap<>(), read = new IdentityHashMap<>();
        for (Var v : stillRead) if (v != null) pinned.put(v.value.storage(), true);
        for (Node n : nodes.subList(Math.max(0, from), nodes.size())) {
            if (n == null) continue;
            groups.computeIfAbsent(n.output.value.storage(), k -> new ArrayList<>()).add(n.output);
            for (Var in : n.inputs) if (in != null && in.node == null) pinned.put(in.value.storage(), true);
            for (Var in : n.reads) if (in != null) read.put(in.value.storage(), true);
            if (n.readsOutput) read.put(n.output.value.storage(), true);
        }
        for (Map.Entry<Object, List<Var>> g : groups.entrySet()) {
            if (!pinned.containsKey(g.getKey())) shelve(g.getValue(), read.containsKey(g.getKey()));
        }
    }

    /**
     * One storage's vars, all full-size views of one fresh output: kept in the backend's saved form when a backward
     * reads them, else given back (the vars then name dead memory that nothing reads).
     */
    private static void shelve(List<Var> vars, boolean read) {
        Tensor owner = null;
        for (Var v : vars) if (v.value.isRecyclable()) owner = v.value;
        if (owner == null) return;
        for (Var v : vars) if (v.value.offset() != 0 || v.value.numel() != owner.numel()) return;
        if (read) {
            Tensor kept = Backend.of(owner).saveForBackward(owner);
            if (kept == owner) return;
            for (Var v : vars) v.value = v.value == owner ? kept : kept.reshape(v.value.shape());
        }
        Recycler.give(owner);
    }

    void backward(Var root, Tensor seed) {
        if (root.node == null) {
            if (!root.leaf) throw new IllegalStateException("backward(): " + root + " was already consumed by a backward pass");
            accumulate(root, seed);
            return;
        }
        int at = nodes.lastIndexOf(root.node);
        if (at < 0) throw new IllegalStateException("backward(): " + root + " is not on this thread's tape (backward already ran?)");
        root.grad = seed;
        Autograd.GradReady ready = gradReady;
        Map<Parameter, int[]> uses = ready == null ? null : parameterUses(at);
        held = Recycler.isOpen() ? new IdentityHashMap<>() : null;
        try {
            for (int i = nodes.size() - 1; i >= 0; i--) {
                Node n = nodes.set(i, null);
                if (n == null) continue;
                Var out = n.output;
                Tensor g = out.grad;
                out.grad = null;
                out.node = null;
                if (held != null) unhold(g);
                if (g != null && i <= at) {
                    if (OpTimes.ENABLED) {
                        long t0 = System.nanoTime();
                        n.backward.apply(g);
                        OpTimes.backward(n.op, System.nanoTime() - t0);
                    } else {
                        n.backward.apply(g);
                    }
                }
                if (uses != null && i <= at) releaseUses(n, uses, ready);
                if (held != null) {
                    for (Tensor r : replaced) if (!isHeld(r)) Recycler.giveStorage(r);
                    replaced.clear();
                    if (i < at) giveBack(n, g);
                }
            }
        } finally {
            held = null;
            replaced.clear();
            clear();
        }
    }

    /** Node n has been dropped: its output value and its gradient g go back to the pool unless something reads them. */
    private void giveBack(Node n, Tensor g) {
        Tensor y = n.output.value;
        boolean input = false;
        for (Var v : n.inputs) input |= v != null && v.value.storage() == y.storage();
        if (!input && !isHeld(y)) Recycler.give(y);
        if (g != null && !isHeld(g)) Recycler.giveStorage(g);   // a reshaped view of a gradient frees what it views
    }

    private boolean isHeld(Tensor t) {
        int[] c = held.get(t.storage());
        return c != null && c[0] > 0;
    }

    /** t became some var's gradient. */
    private void hold(Tensor t) {
        held.computeIfAbsent(t.storage(), k -> new int[1])[0]++;
    }

    /** t stopped being some var's gradient. */
    private void unhold(Tensor t) {
        if (t == null) return;
        int[] c = held.get(t.storage());
        if (c != null && c[0] > 0) c[0]--;
    }

    /** How many nodes of this pass (those up to the root, index ≤ at) take each parameter as an input. */
    private Map<Parameter, int[]> parameterUses(int at) {
        Map<Parameter, int[]> uses = new IdentityHashMap<>();
        for (int i = 0; i <= at; i++) {
            Node n = nodes.get(i);
            if (n == null) continue;
            for (Var v : n.inputs) if (v != null && v.param != null && v.requiresGrad) uses.computeIfAbsent(v.param, k -> new int[1])[0]++;
        }
        return uses;
    }

    /** Node n has run: a parameter it was the last user of has its final gradient. */
    private static void releaseUses(Node n, Map<Parameter, int[]> uses, Autograd.GradReady ready) {
        for (Var v : n.inputs) {
            if (v == null || v.param == null || !v.requiresGrad) continue;
            int[] c = uses.get(v.param);
            if (c != null && --c[0] == 0) ready.ready(v.param);
        }
    }

    /** Adds {@code g} to v's gradient: into the parameter's persistent gradient, else into the var's own (new tensor). */
    static void accumulate(Var v, Tensor g) {
        if (v == null || !v.requiresGrad || g == null) return;
        if (v.param != null) {
            Backend.of(g).axpy(1f, g, v.param.grad());
            return;
        }
        Tensor old = v.grad;
        v.grad = old == null ? g : Backend.of(g).add(old, g);
        Tape t = current();
        if (t.held != null) {
            t.hold(v.grad);
            if (old != null) {
                // both summands may be dead now: given back once the running closure has returned (it may still
                // read g, or hand it to another input) and if no var's gradient is a window on them by then
                t.unhold(old);
                t.replaced.add(old);
                t.replaced.add(g);
            }
        }
    }

    /** The persistent gradient of v if it is a parameter leaf (ops accumulate straight into it), else null. */
    static Tensor sink(Var v) {
        return v != null && v.requiresGrad && v.param != null ? v.param.grad() : null;
    }
}
