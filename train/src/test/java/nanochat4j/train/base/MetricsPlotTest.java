package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A run's chart: drawn atomically, and a machine that cannot draw (no fonts) costs a line of output, not the run. */
class MetricsPlotTest {
    @TempDir
    Path tmp;

    @Test
    void aChartIsDrawnFromTheMetrics() throws IOException {
        Path metrics = tmp.resolve("metrics.jsonl");
        Files.writeString(metrics, "{\"step\":1,\"smooth_loss\":9.5}\n{\"step\":2,\"smooth_loss\":9.1,\"val_bpb\":2.5}\n");
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        assertTrue(MetricsPlot.drawOrSay(png -> MetricsPlot.write(metrics, png), tmp.resolve("base_train.png"), new PrintStream(log)));
        assertTrue(Files.size(tmp.resolve("base_train.png")) > 1000);
        assertEquals(0, log.size());
        try (var files = Files.list(tmp)) {
            assertEquals(2, files.count(), "no temp file left beside the chart");
        }
    }

    @Test
    void aMachineWithoutFontsGetsALineInsteadOfAFailedRun() {
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        boolean drawn = MetricsPlot.drawOrSay(png -> {
            throw new Error("Probable fatal error: No physical fonts found."); // what AWT throws on a slim image
        }, tmp.resolve("base_train.png"), new PrintStream(log, true, StandardCharsets.UTF_8));
        assertFalse(drawn);
        String said = log.toString(StandardCharsets.UTF_8);
        assertTrue(said.startsWith("No chart base_train.png (") && said.contains("No physical fonts found"), said);
        assertFalse(MetricsPlot.drawOrSay(png -> {
            throw new IOException("disk full");
        }, tmp.resolve("chat_sft.png"), new PrintStream(log)));
        // the JVM's own failures are not a missing picture
        assertThrows(OutOfMemoryError.class, () -> MetricsPlot.drawOrSay(png -> {
            throw new OutOfMemoryError("Java heap space");
        }, tmp.resolve("x.png"), new PrintStream(log)));
    }
}
