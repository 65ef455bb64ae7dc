package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.gpt.GPT.ParamGroup;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.Test;

/** nanochat's tests/test_optim.py behaviours: AdamW vs a float64 AdamW, determinism, convergence, orthogonality. */
class MuonAdamWBehaviourTest {

    private static float[] randn(Random r, int n, double scale, double offset) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) (r.nextGaussian() * scale + offset);
        return a;
    }

    static Parameter param(String name, float[] data, int... shape) {
        return new Parameter(name, Tensor.of(data, shape));
    }

    static float[] data(Parameter p) {
        return p.tensor().floats();
    }

    static float[] grad(Parameter p) {
        return p.grad().floats();
    }

    static ParamGroup adamw(String name, List<Parameter> ps, double lr, double b1, double b2, double eps, double wd) {
        return new ParamGroup(name, ParamGroup.Kind.ADAMW, ps, lr, b1, b2, eps, wd, Double.NaN, 0);
    }

    static ParamGroup muon(String name, List<Parameter> ps, double lr, double momentum, double beta2, int nsSteps, double wd) {
        return new ParamGroup(name, ParamGroup.Kind.MUON, ps, lr, Double.NaN, beta2, Double.NaN, wd, momentum, nsSteps);
    }

    /** The menagerie: small (48) and large (1024×4) AdamW params, wide (32×64 ×3) and tall (64×32 ×2) Muon stacks. */
    static List<Parameter> menagerie(long seed, double offset) {
        Random r = new Random(seed);
        List<Parameter> ps = new ArrayList<>();
        ps.add(param("small", randn(r, 48, 0.05, offset), 48));
        ps.add(param("large", randn(r, 4096, 0.05, offset), 1024, 4));
        for (int i = 0; i < 3; i++) ps.add(param("wide" + i, randn(r, 32 * 64, 0.05, offset), 32, 64));
        for (int i = 0; i < 2; i++) ps.add(param("tall" + i, randn(r, 64 * 32, 0.05, offset), 64, 32));
        return ps;
    }

    static List<ParamGroup> menagerieGroups(List<Parameter> ps) {
        return List.of(
                adamw("small", ps.subList(0, 1), 0.02, 0.8, 0.95, 1e-10, 0.0),
                adamw("large", ps.subList(1, 2), 0.02, 0.8, 0.96, 1e-10, 0.0),
                muon("wide", ps.subList(2, 5), 0.02, 0.95, 0.9, 5, 0.0),
                muon("tall", ps.subList(5, 7), 0.02, 0.95, 0.9, 5, 0.0));
    }

    @Test
    void adamwMatchesAFloat64ReferenceOverTenSteps() {
        double lr = 0.01, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
        float[] p = randn(new Random(7), 64 * 32, 1, 0);
        Parameter ours = param("p", p, 64, 32);
        MuonAdamW opt = new MuonAdamW(List.of(adamw("p", List.of(ours), lr, b1, b2, eps, wd)));
        double[] ref = new double[p.length], m = new double[p.length], v = new double[p.length];
        for (int i = 0; i < p.length; i++) ref[i] = p[i];
        for (int step = 0; step < 10; step++) {
            float[] g = randn(new Random(100 + step), p.length, 1, 0);
            System.arraycopy(g, 0, grad(ours), 0, g.length);
            opt.step();
            int t = step + 1;
            double bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
            for (int i = 0; i < p.length; i++) { // torch.optim.AdamW in float64
                ref[i] *= 1 - lr * wd;
                m[i] = b1 * m[i] + (1 - b1) * g[i];
                v[i] = b2 * v[i] + (1 - b2) * g[i] * (double) g[i];
                ref[i] -= lr / bc1 * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
            }
        }
        for (int i = 0; i < p.length; i++) {
            assertEquals(ref[i], data(ours)[i], 1e-6 + 1e-5 * Math.abs(ref[i]), "element " + i);
        }
    }

    private static void fillGrads(List<Parameter> ps, int step) {
        Random r = new Random(step);
        for (Parameter p : ps) System.arraycopy(randn(r, p.numel(), 0.01, 0), 0, grad(p), 0, p.numel());
    }

    @Test
    void twoIdenticalRunsGiveBitwiseIdenticalParameters() {
        List<float[]> first = null;
        for (int run = 0; run < 2; run++) {
            List<Parameter> ps = menagerie(1337, 0);
            MuonAdamW opt = new MuonAdamW(menagerieGroups(ps));
            for (int step = 0; step < 5; step++) {
                fillGrads(ps, step);
                opt.step();
            }
            if (first == null) {
                first = ps.stream().map(p -> data(p).clone()).toList();
            } else {
                for (int i = 0; i < ps.size(); i++) assertArrayEquals(first.get(i), data(ps.get(i)), ps.get(i).name());
            }
        }
    }

    @Test
    void minimisingDistanceToTargetHalvesEveryDistanceIn50Steps() {
        List<Parameter> targets = menagerie(999, 0);
        List<Parameter> ps = menagerie(999, 0.1);
        MuonAdamW opt = new MuonAdamW(menagerieGroups(ps));
        double[] initial = distances(ps, targets);
        for (int step = 0; step < 50; step++) {
            for (int k = 0; k < ps.size(); k++) {
                float[] p = data(ps.get(k)), t = data(targets.get(k)), g = grad(ps.get(k));
                for (int i = 0; i < p.length; i++) g[i] = 2 * (p[i] - t[i]);
            }
            opt.step();
        }
        double[] fin = distances(ps, targets);
        for (int k = 0; k < ps.size(); k++) {
            assertTrue(fin[k] < 0.5 * initial[k], ps.get(k).name() + " did not converge: " + initial[k] + " -> " + fin[k]);
            for (float x : data(ps.get(k))) assertTrue(Float.isFinite(x), ps.get(k).name() + " has a non-finite value");
        }
    }

    private static double[] distances(List<Parameter> ps, List<Parameter> ts) {
        double[] d = new double[ps.size()];
        for (int k = 0; k < ps.size(); k++) {
            double s = 0;
            for (int i = 0; i < ps.get(k).numel(); i++) {
                double e = data(ps.get(k))[i] - data(ts.get(k))[i];
                s += e * e;
            }
            d[k] = Math.sqrt(s);
        }
        return d;
    }

    @Test
    void firstMuonUpdateIsNearlySemiOrthogonal() {
        int rows = 32, cols = 64;
        Parameter p = param("w", new float[rows * cols], rows, cols);
        System.arraycopy(randn(new Random(0), rows * cols, 1, 0), 0, grad(p), 0, rows * cols);
        MuonAdamW opt = new MuonAdamW(List.of(muon("w", List.of(p), 1.0, 0.0, 1.0, 5, 0.0)));
        opt.step();
        // lr 1, wd 0, zero params: the update is −p. Singular values = sqrt(eigenvalues of U Uᵀ).
        double[][] gram = new double[rows][rows];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < rows; j++) {
                double s = 0;
                for (int c = 0; c < cols; c++) s += (double) data(p)[i * cols + c] * data(p)[j * cols + c];
                gram[i][j] = s;
            }
        }
        double[] sv = Arrays.stream(JacobiEigen.eigenvalues(gram)).map(e -> Math.sqrt(Math.max(e, 0))).toArray();
        double mean = Arrays.stream(sv).average().orElseThrow();
        double max = Arrays.stream(sv).max().orElseThrow() / mean, min = Arrays.stream(sv).min().orElseThrow() / mean;
        assertTrue(min > 0 && max / min < 4.0, "update far from semi-orthogonal: normalised singular values "
                + min + " .. " + max);
        // and the raw gradient is far from it (the test can fail): its spread is much larger
        assertTrue(spread(randn(new Random(0), rows * cols, 1, 0), rows, cols) > 4.0);
    }

    private static double spread(float[] x, int rows, int cols) {
        double[][] gram = new double[rows][rows];
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < rows; j++) {
                double s = 0;
                for (int c = 0; c < cols; c++) s += (double) x[i * cols + c] * x[j * cols + c];
                gram[i][j] = s;
            }
        }
        double[] ev = JacobiEigen.eigenvalues(gram);
        double max = Arrays.stream(ev).max().orElseThrow(), min = Arrays.stream(ev).min().orElseThrow();
        return Math.sqrt(max / min);
    }

    @Test
    void jacobiEigenvaluesOfAKnownMatrix() {
        // [[2,1],[1,2]] has eigenvalues 1 and 3; diag(5, -1, 0.5) its diagonal
        double[] ev = JacobiEigen.eigenvalues(new double[][] {{2, 1}, {1, 2}});
        Arrays.sort(ev);
        assertArrayEquals(new double[] {1, 3}, ev, 1e-12);
        ev = JacobiEigen.eigenvalues(new double[][] {{5, 0, 0}, {0, -1, 0}, {0, 0, 0.5}});
        Arrays.sort(ev);
        assertArrayEquals(new double[] {-1, 0.5, 5}, ev, 1e-12);
    }

    @Test
    void resumingFromSavedStateContinuesBitwise() {
        // 6 steps straight vs 3 steps, state() → fresh optimizer → loadState → 3 more
        List<Parameter> straight = menagerie(42, 0);
        MuonAdamW a = new MuonAdamW(menagerieGroups(straight));
        Schedules sched = Schedules.nanochat(6, 0.2);
        for (int step = 0; step < 6; step++) runStep(a, straight, sched, step);

        List<Parameter> first = menagerie(42, 0);
        MuonAdamW b = new MuonAdamW(menagerieGroups(first));
        for (int step = 0; step < 3; step++) runStep(b, first, sched, step);
        MuonAdamW.State saved = b.state();
        List<Parameter> resumed = new ArrayList<>();
        for (Parameter p : first) resumed.add(param(p.name(), data(p).clone(), p.shape()));
        MuonAdamW c = new MuonAdamW(menagerieGroups(resumed));
        c.loadState(saved);
        assertEquals(b.lr(2), c.lr(2));
        assertEquals(b.momentum(2), c.momentum(2));
        for (int step = 3; step < 6; step++) runStep(c, resumed, sched, step);
        for (int i = 0; i < straight.size(); i++) {
            assertArrayEquals(data(straight.get(i)), data(resumed.get(i)), straight.get(i).name());
        }
    }

    private static void runStep(MuonAdamW opt, List<Parameter> ps, Schedules s, int step) {
        fillGrads(ps, step);
        opt.setLrMultiplier(s.lrMultiplier(step));
        opt.setMuonMomentum(s.muonMomentum(step));
        opt.setMuonWeightDecay(s.muonWeightDecay(step));
        opt.step();
        opt.zeroGrad();
    }

    @Test
    void stateFileRoundTripsAndAMismatchNamesTheFile(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        List<Parameter> ps = menagerie(3, 0);
        MuonAdamW opt = new MuonAdamW(menagerieGroups(ps));
        Schedules sched = Schedules.nanochat(10, 0.2);
        for (int step = 0; step < 2; step++) runStep(opt, ps, sched, step);
        java.nio.file.Path file = opt.save(dir, 2);
        assertEquals(dir.resolve("optim_000002_rank0.safetensors"), file);
        MuonAdamW other = new MuonAdamW(menagerieGroups(menagerie(3, 0)));
        other.load(dir, 2);
        MuonAdamW.State a = opt.state(), b = other.state();
        assertEquals(a.metadata(), b.metadata());
        for (String k : a.tensors().keySet()) assertArrayEquals(a.tensors().get(k).data(), b.tensors().get(k).data(), k);
        // an optimizer over other groups refuses the file, naming it
        List<Parameter> fewer = menagerie(3, 0);
        MuonAdamW different = new MuonAdamW(menagerieGroups(fewer).subList(0, 3));
        var e = assertThrows(IllegalArgumentException.class, () -> different.load(dir, 2));
        assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("groups"), e.getMessage());
    }

    @Test
    void stateNamesShapesAndMetadata() {
        MuonAdamW opt = new MuonAdamW(menagerieGroups(menagerie(1, 0)));
        MuonAdamW.State st = opt.state();
        assertEquals(List.of("adamw.small.exp_avg", "adamw.small.exp_avg_sq", "adamw.large.exp_avg", "adamw.large.exp_avg_sq",
                "muon.32x64.momentum_buffer", "muon.32x64.second_momentum_buffer",
                "muon.64x32.momentum_buffer", "muon.64x32.second_momentum_buffer"), List.copyOf(st.tensors().keySet()));
        assertArrayEquals(new int[] {1024, 4}, st.tensors().get("adamw.large.exp_avg").shape());
        assertArrayEquals(new int[] {3, 32, 64}, st.tensors().get("muon.32x64.momentum_buffer").shape());
        assertArrayEquals(new int[] {3, 1, 64}, st.tensors().get("muon.32x64.second_momentum_buffer").shape());
        assertArrayEquals(new int[] {2, 64, 1}, st.tensors().get("muon.64x32.second_momentum_buffer").shape());
        assertEquals("0", st.metadata().get("adamw.small.step"));
        assertEquals("1", st.metadata().get("world_size"));
    }

    @Test
    void loadingMismatchedStateFailsNamingTheProblem() {
        MuonAdamW opt = new MuonAdamW(menagerieGroups(menagerie(1, 0)));
        MuonAdamW.State st = opt.state();
        var tensors = new java.util.LinkedHashMap<>(st.tensors());
        tensors.put("muon.32x64.momentum_buffer", new MuonAdamW.StateTensor(new int[] {2, 32, 64}, new float[2 * 32 * 64]));
        var e = assertThrows(IllegalArgumentException.class, () -> opt.loadState(new MuonAdamW.State(tensors, st.metadata())));
        assertTrue(e.getMessage().contains("muon.32x64.momentum_buffer"), e.getMessage());

        var missing = new java.util.LinkedHashMap<>(st.tensors());
        missing.remove("adamw.large.exp_avg_sq");
        e = assertThrows(IllegalArgumentException.class, () -> opt.loadState(new MuonAdamW.State(missing, st.metadata())));
        assertTrue(e.getMessage().contains("adamw.large.exp_avg_sq"), e.getMessage());

        var md = new java.util.LinkedHashMap<>(st.metadata());
        md.put("world_size", "2");
        e = assertThrows(IllegalArgumentException.class, () -> opt.loadState(new MuonAdamW.State(st.tensors(), md)));
        assertTrue(e.getMessage().contains("world_size"), e.getMessage());
    }

    @Test
    void badGroupsAreRejectedNamingTheParameter() {
        List<Parameter> ps = menagerie(1, 0);
        var twice = List.of(adamw("a", ps.subList(0, 2), 0.1, 0.8, 0.9, 1e-10, 0), adamw("b", ps.subList(1, 2), 0.1, 0.8, 0.9, 1e-10, 0));
        var e = assertThrows(IllegalArgumentException.class, () -> new MuonAdamW(twice));
        assertTrue(e.getMessage().contains("large"), e.getMessage());
        var mixed = List.of(muon("m", List.of(ps.get(2), ps.get(5)), 0.02, 0.95, 0.9, 5, 0));
        e = assertThrows(IllegalArgumentException.class, () -> new MuonAdamW(mixed));
        assertTrue(e.getMessage().contains("tall0"), e.getMessage());
        var sameShape = List.of(muon("m1", ps.subList(2, 3), 0.02, 0.95, 0.9, 5, 0), muon("m2", ps.subList(3, 4), 0.02, 0.95, 0.9, 5, 0));
        e = assertThrows(IllegalArgumentException.class, () -> new MuonAdamW(sameShape));
        assertTrue(e.getMessage().contains("same shape"), e.getMessage());
    }

    @Test
    void scheduleSettersScaleEveryGroupFromItsInitialLr() {
        MuonAdamW opt = new MuonAdamW(menagerieGroups(menagerie(1, 0)));
        opt.setLrMultiplier(0.5);
        opt.setMuonMomentum(0.9);
        opt.setMuonWeightDecay(0.1);
        for (int g = 0; g < opt.groupCount(); g++) assertEquals(opt.initialLr(g) * 0.5, opt.lr(g));
        assertEquals(0.9, opt.momentum(3));
        assertEquals(0.1, opt.weightDecay(3));
        assertEquals(0.0, opt.weightDecay(0)); // AdamW weight decay is not scheduled
        assertTrue(Double.isNaN(opt.momentum(0)));
    }
}
