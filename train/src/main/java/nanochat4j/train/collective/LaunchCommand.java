package nanochat4j.train.collective;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/**
 * {@code nanochat4j launch --nproc N [--nodes h1,h2 --node-rank r] <command> <args…>}: runs a nanochat4j command as
 * N data-parallel worker JVMs on this node (see {@link Launcher}). Everything after the command name belongs to the
 * command. Unless the JVM flags set {@code -Dnanochat4j.threads}, each worker gets cores / N compute threads.
 */
@Command(name = "launch", mixinStandardHelpOptions = true, modelTransformer = LaunchCommand.StopAtCommand.class,
        description = "Run a nanochat4j command as N data-parallel worker processes (like torchrun).")
public final class LaunchCommand implements Callable<Integer> {

    @Option(names = "--nproc", required = true, description = "Worker processes on this node.")
    int nproc;

    @Option(names = "--nodes", split = ",", description = "Hosts of all nodes, in node-rank order (default: this host only).")
    List<String> nodes = List.of("127.0.0.1");

    @Option(names = "--node-rank", description = "This node's index in --nodes (default: ${DEFAULT-VALUE}).")
    int nodeRank = 0;

    @Option(names = "--master-port", description = "Base UDP port between nodes; rank r listens on port+1+r (default: ${DEFAULT-VALUE}).")
    int masterPort = DistEnv.DEFAULT_MASTER_PORT;

    @Parameters(arity = "1..*", paramLabel = "COMMAND", description = "The nanochat4j command to run, with its arguments.")
    List<String> command;

    @Override
    public Integer call() throws Exception {
        List<String> cmd = new ArrayList<>(Launcher.thisJvmCommand());
        if (cmd.stream().noneMatch(a -> a.startsWith("-Dnanochat4j.threads="))) {
            // like torchrun's OMP_NUM_THREADS: the workers share this machine's cores instead of each taking all
            int threads = Math.max(1, Runtime.getRuntime().availableProcessors() / nproc);
            cmd.add(1, "-Dnanochat4j.threads=" + threads);
            if (nproc > 1) System.err.println("nanochat4j launch: " + threads + " compute thread(s) per worker "
                    + "(-Dnanochat4j.threads, via NANOCHAT4J_JAVA_OPTS, to change)");
        }
        cmd.addAll(command);
        return Launcher.run(cmd, new Launcher.Spec(nproc, nodes, nodeRank, masterPort), System.out, System.err);
    }

    /** Options end at the command name: the rest (e.g. {@code --depth 4}) is passed to the workers untouched. */
    static final class StopAtCommand implements CommandLine.IModelTransformer {
        @Override
        public CommandLine.Model.CommandSpec transform(CommandLine.Model.CommandSpec spec) {
            spec.parser().stopAtPositional(true);
            return spec;
        }
    }
}
