package nanochat4j.train.report;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.TokenizerFiles;
import nanochat4j.train.base.MetricsPlot;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.style.lines.SeriesLines;
import org.knowm.xchart.style.markers.SeriesMarkers;

/**
 * A sweep of base models (runs/scaling_laws.sh, runs/miniseries.sh) read back from their checkpoints: every
 * {@code base_checkpoints/<prefix>*} folder's last meta file gives a row of {@code results.csv} (the columns of both
 * of nanochat's sweep scripts, so its scaling-analysis notebook reads the file; then ours), and {@code scaling.md} + {@code scaling.png}
 * hold the analysis nanochat leaves to that notebook:
 * <ul>
 *   <li>per FLOP budget (runs with the same {@code --target-flops}), val bpb against ln(scaling params) fitted by a
 *       parabola (Chinchilla's IsoFLOP profiles, approach 2); its vertex is the compute-optimal model N*(C), its
 *       tokens D*(C) = C / (FLOPs per token at N*), read off the runs' own FLOPs-per-token curve;</li>
 *   <li>across budgets, least-squares power laws N* ∝ C^a, D* ∝ C^b and bpb* ∝ C^c, and the tokens:params ratio.</li>
 * </ul>
 * Scaling params are nanochat's: transformer matrices + lm_head (what its horizon scales with). A run that stopped
 * before its horizon, or has no final val bpb, is listed and left out of the fits; a budget with fewer than three
 * model sizes, or whose best run sits at an end of its depths (the vertex is then a guess), says so instead of an optimum.
 */
public final class Scaling {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern META = Pattern.compile("meta_(\\d+)\\.json");

    private Scaling() {}

    /** One finished or unfinished run of the sweep, from its last checkpoint. {@code budget} is NaN without --target-flops. */
    public record Run(String tag, double budget, GPTConfig config, long step, long horizon, long totalBatch, double valBpb,
                      double core, double trainSeconds) {
        public GPTConfig.ParamCounts params() { return config.numScalingParams(); }
        public long scalingParams() { return params().scaling(); }
        public long flopsPerToken() { return config.estimateFlops(); }
        public long tokens() { return step * totalBatch; }
        public double trainingFlops() { return (double) flopsPerToken() * tokens(); }
        public double ratio() { return tokens() / (double) scalingParams(); }
        /** Reached its horizon (unknown in checkpoints older than the key: then trusted) with a final val bpb. */
        public boolean usable() { return (horizon < 0 || step >= horizon) && Double.isFinite(valBpb); }
    }

    /** The vertex of one budget's IsoFLOP parabola: N* scaling params, D* tokens, the fitted bpb there. */
    public record Optimum(double budget, double params, double tokens, double bpb, int runs) {}

    /** y = coefficient · x^exponent, fitted in log-log. */
    public record PowerLaw(double exponent, double coefficient) {}

    /**
     * What one budget gave: its usable runs, and the optimum with its parabola {a, b, c} (bpb = a·x² + b·x + c,
     * x = ln scaling params), or the reason there is none.
     */
    public record Budget(double flops, List<Run> runs, Optimum optimum, double[] parabola, String why) {
        Budget(double flops, List<Run> runs, String why) {
            this(flops, runs, null, null, why);
        }
    }

    /** Every {@code <checkpoints>/<prefix>*} folder with a meta file, by budget and then size. */
    public static List<Run> gather(Path checkpoints, String prefix) throws IOException {
        List<Run> runs = new ArrayList<>();
        if (!Files.isDirectory(checkpoints)) throw new IOException(checkpoints + ": no checkpoints folder (has the sweep run?)");
        List<Path> dirs;
        try (Stream<Path> s = Files.list(checkpoints)) {
            dirs = s.filter(Files::isDirectory).filter(d -> d.getFileName().toString().startsWith(prefix)).sorted().toList();
        }
        for (Path dir : dirs) {
            long step = Checkpoint.largestStep(dir, META); // the meta file: base-train writes it last
            if (step >= 0) runs.add(read(dir, step));
        }
        // by budget (none last), then size: a table that reads as the IsoFLOP profiles
        runs.sort(Comparator.comparingDouble((Run r) -> Double.isNaN(r.budget()) ? Double.MAX_VALUE : r.budget())
                .thenComparingLong(Run::scalingParams).thenComparing(Run::tag));
        return runs;
    }

    private static Run read(Path dir, long step) throws IOException {
        Checkpoint.Meta meta = Checkpoint.readMeta(dir, step);
        Map<String, Object> extra = meta.extra();
        JsonNode user = JSON.valueToTree(extra.getOrDefault("user_config", Map.of()));
        double budget = user.path("target_flops").asDouble(-1);
        long horizon = extra.get("num_iterations") instanceof Number n ? n.longValue() : -1;
        if (!(extra.get("total_batch_size") instanceof Number batch)) {
            throw new IOException(Checkpoint.metaFile(dir, step) + ": no total_batch_size (not a base-train checkpoint?)");
        }
        double seconds = Double.NaN;
        if (extra.get("loop_state") instanceof Map<?, ?> loop && loop.get("total_training_time") != null) {
            seconds = Double.parseDouble(String.valueOf(loop.get("total_training_time")));
        }
        return new Run(dir.getFileName().toString(), budget > 0 ? budget : Double.NaN, meta.config(), step, horizon, batch.longValue(),
                number(meta.metrics().get("val_bpb")), number(meta.metrics().get("core_metric")), seconds);
    }

    private static double number(Object o) {
        return o instanceof Number n ? n.doubleValue() : Double.NaN;
    }

    /** The runs grouped by budget (ascending), each with its IsoFLOP optimum or why it has none. */
    public static List<Budget> budgets(List<Run> runs) {
        Map<Double, List<Run>> by = new TreeMap<>();
        for (Run r : runs) if (!Double.isNaN(r.budget()) && r.usable()) by.computeIfAbsent(r.budget(), k -> new ArrayList<>()).add(r);
        List<Budget> out = new ArrayList<>();
        for (Map.Entry<Double, List<Run>> e : by.entrySet()) {
            List<Run> rs = new ArrayList<>(e.getValue());
            rs.sort(Comparator.comparingLong(Run::scalingParams));
            out.add(optimum(e.getKey(), rs));
        }
        return out;
    }

    private static Budget optimum(double c, List<Run> rs) {
        long sizes = rs.stream().mapToLong(Run::scalingParams).distinct().count();
        if (sizes < 3) return new Budget(c, rs, sizes + " model size(s) finished: a parabola needs 3 or more depths");
        int n = rs.size();
        double[] x = new double[n], y = new double[n];
        int best = 0;
        for (int i = 0; i < n; i++) {
            x[i] = Math.log(rs.get(i).scalingParams());
            y[i] = rs.get(i).valBpb();
            if (y[i] < y[best]) best = i;
        }
        if (x[best] == x[0] || x[best] == x[n - 1]) {
            boolean small = x[best] == x[0];
            return new Budget(c, rs, "the lowest bpb is at the " + (small ? "smallest" : "largest")
                    + " depth: the optimum lies outside the depths run (add " + (small ? "shallower" : "deeper") + " ones)");
        }
        double[] p = parabola(x, y);
        if (!(p[0] > 0)) return new Budget(c, rs, "the fitted parabola opens downward: no minimum (noisy runs?)");
        double xv = -p[1] / (2 * p[0]);
        if (xv < x[0] || xv > x[n - 1]) return new Budget(c, rs, "the parabola's vertex lies outside the depths run");
        // FLOPs per token at N*: linear in ln N between the two runs that bracket the vertex
        int j = 1;
        while (j < n - 1 && x[j] < xv) j++;
        double f0 = rs.get(j - 1).flopsPerToken(), f1 = rs.get(j).flopsPerToken();
        double t = x[j] > x[j - 1] ? (xv - x[j - 1]) / (x[j] - x[j - 1]) : 0;
        double fpt = f0 + t * (f1 - f0);
        return new Budget(c, rs, new Optimum(c, Math.exp(xv), c / fpt, p[0] * xv * xv + p[1] * xv + p[2], n), p, null);
    }

    /** Least-squares {a, b, c} of y = a·x² + b·x + c (x centred for the normal equations' conditioning). */
    static double[] parabola(double[] x, double[] y) {
        int n = x.length;
        double mean = 0;
        for (double v : x) mean += v / n;
        double[][] m = new double[3][4];
        for (int i = 0; i < n; i++) {
            double u = x[i] - mean;
            double[] row = {u * u, u, 1};
            for (int r = 0; r < 3; r++) {
                for (int s = 0; s < 3; s++) m[r][s] += row[r] * row[s];
                m[r][3] += row[r] * y[i];
            }
        }
        double[] q = solve(m); // q0·u² + q1·u + q2 with u = x − mean
        return new double[] {q[0], q[1] - 2 * q[0] * mean, q[0] * mean * mean - q[1] * mean + q[2]};
    }

    /** Gaussian elimination with partial pivoting on an augmented 3×4 system. */
    private static double[] solve(double[][] m) {
        int n = m.length;
        for (int col = 0; col < n; col++) {
            int piv = col;
            for (int r = col + 1; r < n; r++) if (Math.abs(m[r][col]) > Math.abs(m[piv][col])) piv = r;
            double[] tmp = m[col];
            m[col] = m[piv];
            m[piv] = tmp;
            if (m[col][col] == 0) throw new IllegalArgumentException("a singular fit: the runs' x values are not distinct");
            for (int r = col + 1; r < n; r++) {
                double f = m[r][col] / m[col][col];
                for (int s = col; s <= n; s++) m[r][s] -= f * m[col][s];
            }
        }
        double[] q = new double[n];
        for (int r = n - 1; r >= 0; r--) {
            double v = m[r][n];
            for (int s = r + 1; s < n; s++) v -= m[r][s] * q[s];
            q[r] = v / m[r][r];
        }
        return q;
    }

    /** Least-squares y = k·x^e through (x, y) in log-log; needs two distinct x. */
    static PowerLaw powerLaw(double[] x, double[] y) {
        int n = x.length;
        double mx = 0, my = 0;
        for (int i = 0; i < n; i++) {
            mx += Math.log(x[i]) / n;
            my += Math.log(y[i]) / n;
        }
        double sxy = 0, sxx = 0;
        for (int i = 0; i < n; i++) {
            double dx = Math.log(x[i]) - mx;
            sxy += dx * (Math.log(y[i]) - my);
            sxx += dx * dx;
        }
        if (sxx == 0) throw new IllegalArgumentException("a power law needs two distinct budgets");
        double e = sxy / sxx;
        return new PowerLaw(e, Math.exp(my - e * mx));
    }

    /** nanochat's scaling_laws.sh results.csv columns, then the rest of its miniseries.sh ones, then ours. */
    static final String CSV_HEADER = "flops_budget,depth,model_dim,params_wte,params_value_embeds,params_lm_head,params_transformer,"
            + "params_scalars,params_total,num_iterations,tokens_trained,val_bpb,core_score,train_time_sec,"
            + "tag,num_params,num_scaling_params,flops_per_token,total_batch_size,training_flops,param_data_ratio,finished";

    static String csv(List<Run> runs) {
        StringBuilder sb = new StringBuilder(CSV_HEADER).append('\n');
        for (Run r : runs) {
            GPTConfig.ParamCounts p = r.params();
            sb.append(Double.isNaN(r.budget()) ? "" : fmt("%.6g", r.budget())).append(',').append(r.config().nLayer()).append(',')
                    .append(r.config().nEmbd()).append(',').append(p.wte()).append(',').append(p.valueEmbeds()).append(',')
                    .append(p.lmHead()).append(',').append(p.transformerMatrices()).append(',').append(p.scalars()).append(',')
                    .append(p.total()).append(',').append(r.step()).append(',').append(r.tokens()).append(',')
                    .append(Double.isNaN(r.valBpb()) ? "" : fmt("%.6f", r.valBpb())).append(',')
                    .append(Double.isNaN(r.core()) ? "" : fmt("%.4f", r.core())).append(',')
                    .append(Double.isNaN(r.trainSeconds()) ? "" : fmt("%.1f", r.trainSeconds())).append(',')
                    .append(r.tag()).append(',').append(p.total()).append(',').append(r.scalingParams()).append(',').append(r.flopsPerToken()).append(',')
                    .append(r.totalBatch()).append(',').append(fmt("%.6g", r.trainingFlops())).append(',')
                    .append(fmt("%.3f", r.ratio())).append(',').append(r.usable()).append('\n');
        }
        return sb.toString();
    }

    /**
     * Gathers the sweep {@code base_checkpoints/<prefix>*} under {@code base} and writes results.csv, scaling.md and
     * scaling.png into {@code outDir} (each through a temp file and a rename); prints scaling.md's findings to {@code out}.
     */
    public static Path write(Path base, String prefix, Path outDir, PrintStream out) throws IOException {
        List<Run> runs = gather(base.resolve("base_checkpoints"), prefix);
        if (runs.isEmpty()) {
            throw new IOException("no checkpoints " + base.resolve("base_checkpoints").resolve(prefix + "*") + ": nothing to analyse");
        }
        Files.createDirectories(outDir);
        TokenizerFiles.writeAtomically(outDir.resolve("results.csv"), csv(runs).getBytes(StandardCharsets.UTF_8));
        List<Budget> budgets = budgets(runs);
        String md = markdown(prefix, runs, budgets);
        Path mdFile = outDir.resolve("scaling.md");
        TokenizerFiles.writeAtomically(mdFile, md.getBytes(StandardCharsets.UTF_8));
        MetricsPlot.drawOrSay(png -> plot(runs, budgets, png), outDir.resolve("scaling.png"), out);
        out.print(md.substring(md.indexOf("## Findings")));
        return mdFile;
    }

    static String markdown(String prefix, List<Run> runs, List<Budget> budgets) {
        StringBuilder md = new StringBuilder("# Scaling sweep " + prefix + "*\n\n");
        md.append("| run | depth | scaling params | budget (FLOPs) | steps | tokens | tokens:params | val bpb | CORE | time (s) |\n")
                .append("|---|---|---|---|---|---|---|---|---|---|\n");
        for (Run r : runs) {
            md.append("| ").append(r.tag()).append(r.usable() ? "" : r.step() < r.horizon()
                            ? fmt(" (stopped at step %d of %d)", r.step(), r.horizon()) : " (no final val bpb)")
                    .append(" | ").append(r.config().nLayer()).append(" | ").append(fmt("%,d", r.scalingParams()))
                    .append(" | ").append(Double.isNaN(r.budget()) ? "-" : fmt("%.3g", r.budget())).append(" | ").append(r.step())
                    .append(" | ").append(fmt("%,d", r.tokens())).append(" | ").append(fmt("%.2f", r.ratio()))
                    .append(" | ").append(Double.isNaN(r.valBpb()) ? "-" : fmt("%.4f", r.valBpb()))
                    .append(" | ").append(Double.isNaN(r.core()) ? "-" : fmt("%.4f", r.core()))
                    .append(" | ").append(Double.isNaN(r.trainSeconds()) ? "-" : fmt("%.0f", r.trainSeconds())).append(" |\n");
        }
        md.append("\n## Findings\n\n");
        if (budgets.isEmpty()) {
            md.append("No FLOP budgets among the finished runs (a miniseries, or runs without --target-flops): no IsoFLOP fit. ");
            List<Run> done = runs.stream().filter(Run::usable).toList();
            if (done.size() >= 2 && done.stream().mapToDouble(Run::trainingFlops).distinct().count() >= 2) {
                PowerLaw l = powerLaw(done.stream().mapToDouble(Run::trainingFlops).toArray(), done.stream().mapToDouble(Run::valBpb).toArray());
                md.append(fmt("Across the %d finished runs, val bpb ∝ C^%.4f (C = training FLOPs).%n", done.size(), l.exponent()));
            } else {
                md.append('\n');
            }
            return md.toString();
        }
        List<Optimum> opts = new ArrayList<>();
        for (Budget b : budgets) {
            md.append(fmt("- C = %.3g FLOPs, %d runs: ", b.flops(), b.runs().size()));
            if (b.optimum() == null) {
                md.append("no optimum: ").append(b.why()).append('\n');
            } else {
                Optimum o = b.optimum();
                opts.add(o);
                md.append(fmt("N* = %,.0f scaling params, D* = %,.0f tokens (D*/N* = %.2f), val bpb %.4f there%n", o.params(), o.tokens(),
                        o.tokens() / o.params(), o.bpb()));
            }
        }
        if (opts.size() >= 2) {
            double[] c = opts.stream().mapToDouble(Optimum::budget).toArray();
            PowerLaw n = powerLaw(c, opts.stream().mapToDouble(Optimum::params).toArray());
            PowerLaw d = powerLaw(c, opts.stream().mapToDouble(Optimum::tokens).toArray());
            PowerLaw l = powerLaw(c, opts.stream().mapToDouble(Optimum::bpb).toArray());
            md.append(fmt("%nAcross %d budgets: N* ∝ C^%.3f, D* ∝ C^%.3f (Chinchilla: about 0.5 each), optimal val bpb ∝ C^%.4f.%n",
                    opts.size(), n.exponent(), d.exponent(), l.exponent()));
            md.append(fmt("Compute-optimal tokens per scaling param: %.2f at the smallest budget, %.2f at the largest "
                    + "(base-train's --target-param-data-ratio).%n", opts.getFirst().tokens() / opts.getFirst().params(),
                    opts.getLast().tokens() / opts.getLast().params()));
        } else {
            md.append("\nFewer than two budgets with an optimum: no power law across budgets.\n");
        }
        return md.toString();
    }

    private static void plot(List<Run> runs, List<Budget> budgets, Path png) throws IOException {
        System.setProperty("java.awt.headless", "true");
        XYChart chart = new XYChartBuilder().width(900).height(550).title("scaling sweep").xAxisTitle("scaling params (log)")
                .yAxisTitle("val bpb").build();
        chart.getStyler().setXAxisLogarithmic(true);
        List<double[]> vertices = new ArrayList<>();
        if (budgets.isEmpty()) {
            List<Run> done = runs.stream().filter(Run::usable).sorted(Comparator.comparingLong(Run::scalingParams)).toList();
            if (!done.isEmpty()) {
                chart.addSeries("final val bpb", done.stream().mapToDouble(Run::scalingParams).toArray(),
                        done.stream().mapToDouble(Run::valBpb).toArray());
            }
        }
        java.awt.Color[] colors = chart.getStyler().getSeriesColors();
        for (int i = 0; i < budgets.size(); i++) {
            Budget b = budgets.get(i);
            java.awt.Color color = colors[i % colors.length];
            double[] xs = b.runs().stream().mapToDouble(Run::scalingParams).toArray();
            XYSeries runsSeries = chart.addSeries(fmt("C = %.3g", b.flops()), xs, b.runs().stream().mapToDouble(Run::valBpb).toArray());
            runsSeries.setMarkerColor(color);
            runsSeries.setLineColor(color);
            if (b.optimum() == null) continue; // the runs joined by lines; a fitted budget gets its parabola instead
            runsSeries.setLineStyle(SeriesLines.NONE);
            vertices.add(new double[] {b.optimum().params(), b.optimum().bpb()});
            // the fitted parabola across the depths run
            int k = 40;
            double[] fx = new double[k], fy = new double[k];
            double lo = Math.log(xs[0]), hi = Math.log(xs[xs.length - 1]);
            for (int j = 0; j < k; j++) {
                double u = lo + (hi - lo) * j / (k - 1);
                fx[j] = Math.exp(u);
                fy[j] = b.parabola()[0] * u * u + b.parabola()[1] * u + b.parabola()[2];
            }
            XYSeries fit = chart.addSeries(fmt("fit, C = %.3g", b.flops()), fx, fy);
            fit.setMarker(SeriesMarkers.NONE);
            fit.setLineColor(color);
            fit.setLineStyle(SeriesLines.DASH_DASH);
            fit.setShowInLegend(false);
        }
        if (!vertices.isEmpty()) {
            XYSeries v = chart.addSeries("compute-optimal (fitted)", vertices.stream().mapToDouble(p -> p[0]).toArray(),
                    vertices.stream().mapToDouble(p -> p[1]).toArray());
            v.setMarker(SeriesMarkers.DIAMOND);
            v.setMarkerColor(java.awt.Color.BLACK);
            v.setLineColor(java.awt.Color.BLACK);
        }
        if (chart.getSeriesMap().isEmpty()) chart.addSeries("no finished runs", new double[] {1}, new double[] {0});
        MetricsPlot.save(chart, png);
    }

    private static String fmt(String f, Object... args) {
        return String.format(Locale.ROOT, f, args);
    }
}
