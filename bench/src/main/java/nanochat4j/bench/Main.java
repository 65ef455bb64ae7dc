package nanochat4j.bench;

import nanochat4j.serve.Nanochat4j;
import picocli.CommandLine;

/**
 * Entry point of the runnable jar: serve's root command plus {@code infer-bench} and the {@code bench} commands, which live here
 * because this is the one module that sees every other.
 */
public final class Main {
    private Main() {}

    /** The root command with the commands that live here attached: infer-bench and the bench commands. */
    public static CommandLine commandLine() {
        return Nanochat4j.commandLine().addSubcommand(new InferSweep()).addSubcommand(new BenchCommand());
    }

    public static void main(String[] args) {
        String missing = missingJvmOption();
        if (missing != null) {
            System.err.println("nanochat4j: " + missing);
            System.exit(2);
        }
        System.exit(commandLine().execute(args));
    }

    /**
     * What the JVM lacks to run the engine, or null: every kernel uses the Vector API, an incubator module that a plain
     * {@code java -jar} does not resolve (the commands would otherwise die in a NoClassDefFoundError stack trace).
     */
    static String missingJvmOption() {
        if (ModuleLayer.boot().findModule("jdk.incubator.vector").isPresent()) return null;
        return "the JVM was started without the Vector API module; run ./nanochat4j (it passes the JVM flags the engine"
                + " needs), or java --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -jar nanochat4j.jar";
    }
}
