package nanochat4j.train.report;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.gpt.GPTConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The sweep analysis on checkpoints with known answers: val bpb laid exactly on a parabola in ln(scaling params)
 * around N0(C) = N_ref·(C/C_ref)^0.5 must give back N0 and the exponent 0.5 to rounding; unfinished runs, short
 * budgets and optima outside the depths run are named, not fitted.
 */
class ScalingTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long BATCH = 1024;

    @TempDir
    Path base;

    private static GPTConfig config(int depth) {
        return GPTConfig.fromDepth(depth, 64, 64, 256, "L", 2048);
    }

    /** A base-train meta file for the run TAG at its budget (NaN: none), with its horizon and final step. */
    private void run(String tag, int depth, double budget, long step, long horizon, Double valBpb) throws Exception {
        Path dir = Files.createDirectories(base.resolve("base_checkpoints").resolve(tag));
        Map<String, Object> user = new LinkedHashMap<>();
        user.put("depth", depth);
        user.put("target_flops", Double.isNaN(budget) ? -1.0 : budget);
        Map<String, Object> metrics = new LinkedHashMap<>();
        if (valBpb != null) metrics.put("val_bpb", valBpb);
        Map<String, Object> meta = new LinkedHashMap<>();
        meta.put("step", step);
        meta.put("model_config", config(depth).toJsonMap());
        meta.put("metrics", metrics);
        meta.put("user_config", user);
        meta.put("total_batch_size", BATCH);
        meta.put("num_iterations", horizon);
        meta.put("loop_state", Map.of("total_training_time", "12.5"));
        Files.write(dir.resolve(String.format("meta_%06d.json", step)), JSON.writeValueAsBytes(meta));
    }

    private static double n(int depth) {
        return config(depth).numScalingParams().scaling();
    }

    /** bpb on a parabola in ln N with its vertex at n0 */
    private static double bpb(int depth, double n0, double floor) {
        double u = Math.log(n(depth) / n0);
        return floor + 0.3 * u * u;
    }

    private static long steps(int depth, double budget) {
        return Math.round(budget / (config(depth).estimateFlops() * (double) BATCH));
    }

    @Test
    void isoFlopVerticesAndThePowerLawComeBackFromExactParabolas() throws Exception {
        double[] budgets = {1e14, 4e14, 1.6e15};
        double nRef = Math.sqrt(n(3) * n(4)); // between depths 3 and 4 at the smallest budget, moving up 2× per budget
        for (double c : budgets) {
            double n0 = nRef * Math.sqrt(c / budgets[0]);
            for (int d = 2; d <= 7; d++) {
                long s = steps(d, c);
                run(String.format("sw_%.3g_d%d", c, d), d, c, s, s, bpb(d, n0, 3.0 - 0.1 * Math.log10(c / 1e14)));
            }
        }
        // a stopped run with a bpb that would move the first vertex: listed, not fitted
        run("sw_1e+14_d9", 9, 1e14, 5, 50, 0.5);
        List<Scaling.Run> runs = Scaling.gather(base.resolve("base_checkpoints"), "sw_");
        assertEquals(19, runs.size());
        // by budget, then size: the stopped d9 closes the first budget's rows
        assertEquals("sw_1.00e+14_d2", runs.getFirst().tag());
        assertEquals("sw_1e+14_d9", runs.get(6).tag());
        assertEquals("sw_1.60e+15_d7", runs.getLast().tag());
        List<Scaling.Budget> bs = Scaling.budgets(runs);
        assertEquals(3, bs.size());
        for (int i = 0; i < 3; i++) {
            Scaling.Optimum o = bs.get(i).optimum();
            assertNotNull(o, bs.get(i).why());
            assertEquals(6, o.runs());
            double n0 = nRef * Math.sqrt(budgets[i] / budgets[0]);
            assertEquals(1.0, o.params() / n0, 1e-9, "N* at C=" + budgets[i]);
            assertEquals(3.0 - 0.1 * Math.log10(budgets[i] / 1e14), o.bpb(), 1e-9);
            // D* = C / FLOPs per token at N*, which lies between the FLOPs per token of the runs around N*
            double lo = budgets[i] / config(7).estimateFlops(), hi = budgets[i] / config(2).estimateFlops();
            assertTrue(o.tokens() > lo && o.tokens() < hi, o.toString());
        }
        ByteArrayOutputStream log = new ByteArrayOutputStream();
        Path md = Scaling.write(base, "sw_", base.resolve("out"), new PrintStream(log, true, StandardCharsets.UTF_8));
        String text = Files.readString(md);
        assertTrue(text.contains("N* ∝ C^0.500,"), text);
        assertTrue(text.contains("sw_1e+14_d9 (stopped at step 5 of 50)"), text);
        assertTrue(log.toString(StandardCharsets.UTF_8).contains("## Findings"));
        List<String> csv = Files.readAllLines(base.resolve("out/results.csv"));
        assertEquals(20, csv.size());
        assertTrue(csv.getFirst().startsWith("flops_budget,depth,model_dim,params_wte,params_value_embeds,params_lm_head,params_transformer,"
                + "params_scalars,params_total,num_iterations,tokens_trained,val_bpb,core_score,train_time_sec,"), csv.getFirst());
        // and miniseries.sh's: depth, model_dim, num_params, num_scaling_params, num_iterations, tokens_trained, param_data_ratio, …
        for (String col : List.of("num_params", "num_scaling_params", "param_data_ratio")) {
            assertTrue(List.of(csv.getFirst().split(",")).contains(col), col);
        }
        String d9 = csv.stream().filter(l -> l.contains("sw_1e+14_d9")).findFirst().orElseThrow();
        assertTrue(d9.startsWith("1.00000e+14,9,576,") && d9.endsWith(",false"), d9);
        assertTrue(Files.size(base.resolve("out/scaling.png")) > 1000, "the chart");
    }

    @Test
    void aBudgetWithTooFewRunsOrItsBestAtAnEndGetsNoOptimum() throws Exception {
        for (int d = 2; d <= 3; d++) run("few_d" + d, d, 1e14, 10, 10, 3.0 + d);
        for (int d = 2; d <= 5; d++) run("edge_d" + d, d, 2e14, 10, 10, 4.0 - 0.1 * d); // deeper is always better
        run("nobpb_d2", 2, 3e14, 10, 10, null);
        Scaling.Budget few = Scaling.budgets(Scaling.gather(base.resolve("base_checkpoints"), "few_")).getFirst();
        assertNull(few.optimum());
        assertTrue(few.why().contains("2 model size(s) finished: a parabola needs 3 or more depths"), few.why());
        // the same depth twice (a rerun under another tag) is one size, not two
        run("twice_d2", 2, 5e14, 10, 10, 3.0);
        run("twice_d2b", 2, 5e14, 10, 10, 3.1);
        run("twice_d3", 3, 5e14, 10, 10, 2.9);
        Scaling.Budget twice = Scaling.budgets(Scaling.gather(base.resolve("base_checkpoints"), "twice_")).getFirst();
        assertNull(twice.optimum());
        assertTrue(twice.why().startsWith("2 model size(s)"), twice.why());
        Scaling.Budget edge = Scaling.budgets(Scaling.gather(base.resolve("base_checkpoints"), "edge_")).getFirst();
        assertNull(edge.optimum());
        assertTrue(edge.why().contains("at the largest depth") && edge.why().contains("add deeper"), edge.why());
        List<Scaling.Run> nobpb = Scaling.gather(base.resolve("base_checkpoints"), "nobpb_");
        assertFalse(nobpb.getFirst().usable());
        assertTrue(Scaling.budgets(nobpb).isEmpty());
        String md = Scaling.markdown("edge_", Scaling.gather(base.resolve("base_checkpoints"), "edge_"),
                Scaling.budgets(Scaling.gather(base.resolve("base_checkpoints"), "edge_")));
        assertTrue(md.contains("no optimum: the lowest bpb is at the largest depth"), md);
        assertTrue(md.contains("Fewer than two budgets with an optimum"), md);
    }

    @Test
    void aMiniseriesHasNoBudgetsAndFitsBpbAgainstTrainingFlops() throws Exception {
        // bpb = 10 · C^-0.05 exactly, C = the run's training FLOPs
        for (int d = 2; d <= 4; d++) {
            long s = 100L * d * d;
            double c = (double) config(d).estimateFlops() * s * BATCH;
            run("mini_d" + d, d, Double.NaN, s, s, 10 * Math.pow(c, -0.05));
        }
        List<Scaling.Run> runs = Scaling.gather(base.resolve("base_checkpoints"), "mini_");
        String md = Scaling.markdown("mini_", runs, Scaling.budgets(runs));
        assertTrue(md.contains("a miniseries") && md.contains("val bpb ∝ C^-0.0500"), md);
    }

    @Test
    void fitsRecoverExactCurves() {
        double[] x = {1, 2, 3, 5}, y = new double[4];
        for (int i = 0; i < 4; i++) y[i] = 2 * x[i] * x[i] - 3 * x[i] + 7;
        double[] p = Scaling.parabola(x, y);
        assertEquals(2, p[0], 1e-9);
        assertEquals(-3, p[1], 1e-9);
        assertEquals(7, p[2], 1e-9);
        Scaling.PowerLaw l = Scaling.powerLaw(new double[] {1e3, 1e4, 1e5}, new double[] {5 * Math.pow(1e3, 0.7), 5 * Math.pow(1e4, 0.7),
                5 * Math.pow(1e5, 0.7)});
        assertEquals(0.7, l.exponent(), 1e-12);
        assertEquals(5, l.coefficient(), 1e-9);
    }

    @Test
    void noSweepIsAClearError() {
        Exception e = org.junit.jupiter.api.Assertions.assertThrows(java.io.IOException.class,
                () -> Scaling.write(base, "none_", base.resolve("out"), System.out));
        assertTrue(e.getMessage().contains("no checkpoints folder"), e.getMessage());
    }
}
