package nanochat4j.train.base;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;

/**
 * A PNG of a run's {@code metrics.jsonl}: train loss (debiased EMA) on the left axis and val bpb on the right,
 * against the step, drawn headless with XChart. Written to a temp file and renamed.
 */
public final class MetricsPlot {
    private MetricsPlot() {}

    /** Draws a chart to the given file. */
    @FunctionalInterface
    public interface Drawing {
        void to(Path png) throws IOException;
    }

    /**
     * {@code drawing} to {@code png}, or one line on {@code out} saying why there is no chart: a machine without fonts
     * (slim GPU images) cannot draw text, and a finished run must not fail over its picture.
     */
    public static boolean drawOrSay(Drawing drawing, Path png, PrintStream out) {
        try {
            drawing.to(png);
            return true;
        } catch (VirtualMachineError e) {
            throw e;
        } catch (IOException | RuntimeException | Error e) { // AWT without fonts throws java.lang.Error
            out.println("No chart " + png.getFileName() + " (" + e + ")");
            return false;
        }
    }

    /** A chart as PNG at {@code png}: through a temp file and a rename, so a reader never sees half of one. */
    public static void save(XYChart chart, Path png) throws IOException {
        Path tmp = png.resolveSibling(png.getFileName() + ".tmp.png");
        BitmapEncoder.saveBitmap(chart, tmp.toString(), BitmapEncoder.BitmapFormat.PNG);
        Files.move(tmp, png, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }

    public static void write(Path metricsJsonl, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        List<Double> lossX = new ArrayList<>(), lossY = new ArrayList<>(), bpbX = new ArrayList<>(), bpbY = new ArrayList<>();
        ObjectMapper json = new ObjectMapper();
        if (Files.exists(metricsJsonl)) {
            for (String line : Files.readAllLines(metricsJsonl)) {
                if (line.isBlank()) continue;
                JsonNode n = json.readTree(line);
                double step = n.path("step").asDouble();
                if (n.has("smooth_loss")) {
                    lossX.add(step);
                    lossY.add(n.get("smooth_loss").asDouble());
                }
                if (n.has("val_bpb") && Double.isFinite(n.get("val_bpb").asDouble())) {
                    bpbX.add(step);
                    bpbY.add(n.get("val_bpb").asDouble());
                }
            }
        }
        XYChart chart = new XYChartBuilder().width(900).height(500).title("base_train").xAxisTitle("step").build();
        chart.setYAxisGroupTitle(0, "train loss");
        chart.setYAxisGroupTitle(1, "val bpb");
        if (!lossX.isEmpty()) {
            XYSeries loss = chart.addSeries("train loss (EMA)", lossX, lossY);
            loss.setMarker(org.knowm.xchart.style.markers.SeriesMarkers.NONE);
            loss.setYAxisGroup(0);
        }
        if (!bpbX.isEmpty()) {
            XYSeries bpb = chart.addSeries("val bpb", bpbX, bpbY);
            bpb.setYAxisGroup(1);
        }
        if (lossX.isEmpty() && bpbX.isEmpty()) chart.addSeries("no data", new double[] {0}, new double[] {0});
        save(chart, png);
    }
}
