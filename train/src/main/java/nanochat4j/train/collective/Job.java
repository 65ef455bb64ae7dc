package nanochat4j.train.collective;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;

/**
 * A command's work on this process's rank of the job the environment describes (a world of one without a launcher):
 * the log goes to rank 0's stream only, and a rank that fails aborts the others, so they stop instead of waiting for it.
 */
public final class Job {
    private Job() {}

    /** What a rank runs: its collective, and the log stream (a null stream off rank 0). */
    @FunctionalInterface
    public interface Body<T> {
        T run(Collective comm, PrintStream out) throws IOException;
    }

    /** Runs {@code body} on this rank; ranks whose {@code fingerprint}s differ stop at the handshake, naming both. */
    public static <T> T run(String fingerprint, PrintStream out, Body<T> body) throws IOException {
        try (Collective comm = Collective.fromEnvironment(fingerprint)) {
            return runOn(comm, out, body);
        }
    }

    /**
     * Runs {@code body} on {@code comm}'s rank: when it throws (a CUDA error, out of memory, bad data), the other
     * ranks' current or next collective fails naming this rank and the error, instead of waiting for it.
     */
    public static <T> T runOn(Collective comm, PrintStream out, Body<T> body) throws IOException {
        try {
            return body.run(comm, comm.rank() == 0 ? out : new PrintStream(OutputStream.nullOutputStream()));
        } catch (IOException | RuntimeException | Error e) {
            comm.abort("rank " + comm.rank() + " failed: " + e);
            throw e;
        }
    }
}
