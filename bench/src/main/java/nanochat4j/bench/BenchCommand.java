package nanochat4j.bench;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** {@code nanochat4j bench …}: the end-to-end benchmark commands, one sub-command per kind. */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Benchmarks: CPU kernels against the machine's peak, model training and inference throughput, tokenizer speed, all-reduce bandwidth;"
                + " gpu-targets reads a gpu-check run against the GPU issues' targets.",
        subcommands = {KernelsBench.class, ModelBench.class, TrainBench.class, InferBench.class, TokenizerBench.class, AllReduceBench.class,
                ServeBench.class, ImportBench.class, GpuTargets.class})
public final class BenchCommand implements Runnable {
    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }
}
