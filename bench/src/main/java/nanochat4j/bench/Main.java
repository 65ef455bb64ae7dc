package nanochat4j.bench;

import nanochat4j.serve.Nanochat4j;

/**
 * Entry point of the runnable jar: serve's root command plus the {@code bench} commands, which live here
 * because this is the one module that sees every other.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) {
        System.exit(Nanochat4j.commandLine().addSubcommand(new BenchCommand()).execute(args));
    }
}
