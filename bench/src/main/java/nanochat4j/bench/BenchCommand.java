package nanochat4j.bench;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code nanochat4j bench <kind>}: the end-to-end benchmarks, one sub-command per kind. */
@Command(name = "bench", mixinStandardHelpOptions = true, description = "Benchmarks (one sub-command per kind).",
        subcommands = {AllReduceBench.class})
public final class BenchCommand implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
