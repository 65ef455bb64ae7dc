package nanochat4j.train.data;

import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code nanochat4j dataset -n N -w 4}: nanochat's {@code python -m nanochat.dataset}. */
@Command(name = "dataset", aliases = "download-data", mixinStandardHelpOptions = true,
        description = "Download pretraining shards (ClimbMix parquet; shards 0..N-1 plus the validation shard).")
public final class DatasetCommand implements Callable<Integer> {

    @Option(names = {"-n", "--num-files"}, defaultValue = "-1",
            description = "number of training shards to download (default: -1 = all 6542); the validation shard is always added")
    int numFiles;

    @Option(names = {"-w", "--num-workers"}, defaultValue = "4", description = "parallel downloads (default: ${DEFAULT-VALUE})")
    int workers;

    @Option(names = "--dir", description = "target directory (default: $NANOCHAT_BASE_DIR/base_data_climbmix)")
    Path dir;

    @Option(names = "--url-template", defaultValue = DatasetDownload.URL_TEMPLATE, hidden = true,
            description = "String.format pattern of a shard's URL, taking the shard index")
    String urlTemplate;

    @Override
    public Integer call() throws Exception {
        Path target = dir != null ? dir : DatasetDownload.defaultDir();
        new DatasetDownload(urlTemplate, target, workers, Duration.ofSeconds(1), Duration.ofSeconds(30), System.out)
                .download(DatasetDownload.shards(numFiles));
        return 0;
    }
}
