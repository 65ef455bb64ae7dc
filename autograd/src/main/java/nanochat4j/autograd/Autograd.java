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

    /**
     * Tells the tape that this thread's forward reads no value recorded so far again but those of {@code stillRead}
     * (and of the leaves): each of the others is kept from now on as its backend keeps activations for a backward
     * ({@link nanochat4j.tensor.Backend#saveForBackward}: a bf16 copy on a GPU under bf16 matmuls, as nanochat's bf16
     * activations are) and its fp32 memory goes back to the pool at once. Backward closures read such values through
     * {@link nanochat4j.tensor.Backend#savedValue}. Nothing happens where the backend keeps fp32 (the CPU), outside a
     * {@link nanochat4j.tensor.Recycler} scope (the fp32 memory could not go back) or when no tape records.
     * A training forward calls it after each block, which holds a step's activations near half of the fp32 ones.
     */
    public static void shelve(Var... stillRead) {
        Tape.current().shelve(stillRead);
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
