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
