package nanochat4j.autograd;

/** For tests in other modules: how many nodes this thread's tape holds (a forward that leaks them holds activations). */
public final class TapeProbe {
    private TapeProbe() {}

    public static int size() {
        return Tape.current().size();
    }
}
