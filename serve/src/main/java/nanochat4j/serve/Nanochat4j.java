package nanochat4j.serve;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * The {@code nanochat4j} command: one root that dispatches every stage of the pipeline, like nanochat's
 * {@code python -m scripts.*}. Each sub-command lives with the stage it runs; this class only lists them.
 */
@Command(
        name = "nanochat4j",
        mixinStandardHelpOptions = true,
        versionProvider = Nanochat4j.Version.class,
        description = "nanochat on the JVM: tokenizer, pretraining, fine-tuning, evaluation and chat.",
        subcommands = {CommandLine.HelpCommand.class,
                nanochat4j.train.tokenizer.TokTrainCommand.class,
                nanochat4j.train.tokenizer.TokEvalCommand.class,
                nanochat4j.train.data.DatasetCommand.class,
                nanochat4j.train.base.BaseTrainCommand.class,
                nanochat4j.train.eval.BaseEvalCommand.class,
                nanochat4j.train.tasks.TaskDataCommand.class,
                nanochat4j.train.chat.ChatSftCommand.class,
                nanochat4j.train.chat.ChatEvalCommand.class,
                nanochat4j.train.chat.ChatRlCommand.class,
                nanochat4j.train.report.ReportCommand.class,
                nanochat4j.train.report.ScalingCommand.class,
                nanochat4j.serve.chat.ChatCommand.class,
                nanochat4j.serve.web.ServeCommand.class,
                nanochat4j.serve.interop.ImportNanochatCommand.class,
                nanochat4j.serve.interop.ExportCommand.class,
                nanochat4j.train.collective.LaunchCommand.class})
public final class Nanochat4j implements Runnable {

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        spec.commandLine().usage(System.out);
    }

    /** The root command line; callers add the sub-commands that live in later modules (bench). */
    public static CommandLine commandLine() {
        return new CommandLine(new Nanochat4j()).setCaseInsensitiveEnumValuesAllowed(true)
                .setExecutionExceptionHandler(Nanochat4j::reportFailure);
    }

    /**
     * Failures a user can act on (bad files, bad arguments, missing data, no usable GPU, a GPU out of memory) print one
     * line naming what and where and exit 1; anything else is a bug and keeps its stack trace.
     */
    static int reportFailure(Exception e, CommandLine cl, CommandLine.ParseResult parsed) {
        boolean userFacing = e instanceof java.io.IOException || e instanceof IllegalArgumentException
                || e instanceof IllegalStateException || e instanceof java.io.UncheckedIOException
                || e instanceof nanochat4j.tensor.cuda.CudaUnavailableException || e instanceof nanochat4j.tensor.cuda.CudaOutOfMemoryException;
        if (!userFacing) {
            e.printStackTrace(cl.getErr());
            return 2;
        }
        cl.getErr().println(cl.getCommandSpec().qualifiedName() + ": " + e.getMessage());
        if (e.getCause() != null && System.getenv("NANOCHAT4J_DEBUG") != null) e.printStackTrace(cl.getErr());
        return 1;
    }

    /** Version from the jar manifest (set by the build), "dev" when run from classes. */
    static final class Version implements CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            String v = Nanochat4j.class.getPackage().getImplementationVersion();
            return new String[] {"nanochat4j " + (v == null ? "dev" : v), "Java " + Runtime.version()};
        }
    }
}
