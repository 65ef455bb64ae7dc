package nanochat4j.train.report;

import java.util.concurrent.Callable;
import nanochat4j.model.BaseDir;
import picocli.CommandLine.Command;

/** {@code nanochat4j report}: the report card of the runs in the base dir. */
@Command(name = "report", mixinStandardHelpOptions = true,
        description = "Write report.md in the base dir: system, tokenizer, base training and CORE, SFT, chat-eval and ChatCORE, wall time, plots.")
public final class ReportCommand implements Callable<Integer> {
    @Override
    public Integer call() throws Exception {
        System.out.println("report written to " + Report.write(BaseDir.get()));
        return 0;
    }
}
