package nanochat4j.train.report;

import java.nio.file.Path;
import java.util.concurrent.Callable;
import nanochat4j.train.cli.BaseDirOption;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code nanochat4j scaling}: a sweep's checkpoints to results.csv, its IsoFLOP fits and a chart ({@link Scaling}). */
@Command(name = "scaling", mixinStandardHelpOptions = true,
        description = "Analyse a sweep of base models (runs/scaling_laws.sh, runs/miniseries.sh): every base_checkpoints/<prefix>* "
                + "run's last checkpoint to results.csv (nanochat's columns), the compute-optimal model per FLOP budget (IsoFLOP "
                + "parabolas) and the power laws across budgets in scaling.md, and scaling.png.")
public final class ScalingCommand implements Callable<Integer> {
    @Option(names = "--prefix", required = true, description = "model-tag prefix of the sweep's runs (e.g. scaling_jan26_)")
    String prefix;

    @Option(names = "--out", description = "folder for results.csv, scaling.md and scaling.png (default: <base dir>/<prefix>results)")
    Path out;

    @Mixin
    BaseDirOption baseDir = new BaseDirOption();

    @Override
    public Integer call() throws Exception {
        Path base = baseDir.get();
        Path dir = out != null ? out : base.resolve(prefix + "results");
        Path md = Scaling.write(base, prefix, dir, System.out);
        System.out.println("\nwrote " + dir.resolve("results.csv") + ", " + md + " and " + dir.resolve("scaling.png"));
        return 0;
    }
}
