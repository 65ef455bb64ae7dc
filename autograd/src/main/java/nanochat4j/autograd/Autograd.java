package nanochat4j.autograd;

/**
 * Grad-mode control for the current thread: {@code try (var g = Autograd.noGrad()) { … }} runs evaluation or
 * inference without recording a tape (nothing is kept for a backward pass).
 */
public final class Autograd {
    private Autograd() {}

    /** A scope (nestable) in which ops record nothing; close it to restore the previous mode. */
    public static Scope noGrad() {
        Tape t = Tape.current();
        t.noGradDepth++;
        return new Scope(t);
    }

    /** Whether ops on this thread currently record a tape. */
    public static boolean isRecording() {
        return Tape.current().recording();
    }

    /** How many nodes this thread's tape holds now: where a forward starts, for {@link #shelve}. */
    public static int recorded() {
        return Tape.current().size();
    }

    /**
     * Tells the tape that this thread's forward, which began when the tape held {@code from} nodes, reads none of the
     * values it has recorded since again but those of {@code stillRead} (and of the leaves). Each of the others that
     * some backward reads is kept from now on as its backend keeps activations for a backward
     * ({@link nanochat4j.tensor.Backend#saveForBackward}: a bf16 copy on a GPU under bf16 matmuls, as nanochat's bf16
     * activations are; the CPU keeps the value itself) and its fp32 memory goes back to the pool at once; backward
     * closures read such values through {@link nanochat4j.tensor.Backend#savedValue}. One that no backward reads goes
     * back at once, on any backend (its var then names dead memory: read the loss and nothing else of such a graph).
     * Nothing happens outside a {@link nanochat4j.tensor.Recycler} scope (memory could not go back) or when no tape
     * records. A training forward calls it after each block, which holds a step's activations near half of the fp32
     * ones on a GPU.
     */
    public static void shelve(int from, Var... stillRead) {
        Tape.current().shelve(from, stillRead);
    }

    /** Told during a backward pass of each parameter whose gradient that pass will not add to again. */
    @FunctionalInterface
    public interface GradReady {
        void ready(Parameter p);
    }

    /**
     * Calls {@code listener} from this thread's next backward passes as each parameter's gradient becomes final
     * (the last node that uses the parameter has run), until the returned handle is closed: how a data-parallel
     * job starts reducing gradients while the backward pass is still running. Parameters the pass never reaches
     * are not reported.
     */
    public static GradReadyScope onGradReady(GradReady listener) {
        Tape t = Tape.current();
        GradReady previous = t.gradReady;
        t.gradReady = listener;
        return () -> t.gradReady = previous;
    }

    /** Removes the listener {@link #onGradReady} installed (restoring any earlier one). */
    public interface GradReadyScope extends AutoCloseable {
        @Override
        void close();
    }

    public static final class Scope implements AutoCloseable {
        private final Tape tape;
        private boolean closed;

        private Scope(Tape tape) {
            this.tape = tape;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                tape.noGradDepth--;
            }
        }
    }
}
