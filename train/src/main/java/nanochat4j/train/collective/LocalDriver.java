package nanochat4j.train.collective;

import io.aeron.driver.MediaDriver;
import io.aeron.driver.ThreadingMode;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.agrona.concurrent.BackoffIdleStrategy;

/**
 * The one embedded Aeron media driver of a host, as the launcher (or local rank 0, or a test) starts it.
 * Notable: a single shared agent thread that backs off to short parks (this runs beside compute on few cores);
 * short liveness timeouts so a killed process is noticed by its ring neighbours in seconds; its directory is
 * deleted on start and on close.
 */
public final class LocalDriver {
    private LocalDriver() {}

    /** Seconds after which the driver declares a silent client (a killed process) dead and tears down its links. */
    static final long CLIENT_LIVENESS_S = 4;

    public static MediaDriver launch(Path dir) {
        MediaDriver.Context ctx = new MediaDriver.Context()
                .aeronDirectoryName(dir.toString())
                .threadingMode(ThreadingMode.SHARED)
                // spin briefly while a transfer is running (IPC flow control advances on this thread), then park
                .sharedIdleStrategy(new BackoffIdleStrategy(64, 16, TimeUnit.MICROSECONDS.toNanos(1),
                        TimeUnit.MICROSECONDS.toNanos(200)))
                .dirDeleteOnStart(true)
                .dirDeleteOnShutdown(true)
                .warnIfDirectoryExists(false)
                .printConfigurationOnStart(false)
                .termBufferSparseFile(true)
                .clientLivenessTimeoutNs(TimeUnit.SECONDS.toNanos(CLIENT_LIVENESS_S))
                .imageLivenessTimeoutNs(TimeUnit.SECONDS.toNanos(CLIENT_LIVENESS_S))
                .publicationUnblockTimeoutNs(TimeUnit.SECONDS.toNanos(CLIENT_LIVENESS_S * 2))
                .publicationConnectionTimeoutNs(TimeUnit.SECONDS.toNanos(CLIENT_LIVENESS_S))
                .publicationLingerTimeoutNs(TimeUnit.MILLISECONDS.toNanos(500));
        return MediaDriver.launch(ctx);
    }
}
