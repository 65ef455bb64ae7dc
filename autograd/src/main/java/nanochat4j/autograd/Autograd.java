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
