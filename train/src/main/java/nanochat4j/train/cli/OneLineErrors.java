package nanochat4j.train.cli;

import java.io.IOException;
import java.io.UncheckedIOException;

/**
 * A command body whose failures a user can act on (bad files, bad arguments, missing data) print one line
 * {@code <command>: <reason>} on stderr and give exit code 1, also when the command runs outside nanochat4j's root
 * command (whose handler does the same for the others).
 */
public final class OneLineErrors {
    private OneLineErrors() {}

    /** The work of a command, returning its exit code. */
    @FunctionalInterface
    public interface Body {
        int run() throws IOException;
    }

    public static int run(String command, Body body) {
        try {
            return body.run();
        } catch (IOException | IllegalArgumentException | IllegalStateException e) {
            System.err.println(command + ": " + e.getMessage());
            return 1;
        } catch (UncheckedIOException e) {
            System.err.println(command + ": " + e.getCause().getMessage());
            return 1;
        }
    }
}
