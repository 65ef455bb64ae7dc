package nanochat4j.bench;

import nanochat4j.serve.Nanochat4j;
import picocli.CommandLine;

/**
 * Entry point of the runnable jar: serve's root command plus the {@code bench} commands, which live here
 * because this is the one module that sees every other.
 */
public final class Main {
    private Main() {}

    /** The root command with the bench commands attached. */
    public static CommandLine commandLine() {
        return Nanochat4j.commandLine().addSubcommand(new BenchCommand());
    }

    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }
}
