package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;
import nanochat4j.autograd.Parameter;
import nanochat4j.autograd.Var;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.fixture.FixtureFile;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.api.TestFactory;

/**
 * Parity with the PyTorch reference fixtures (format nanochat-fixture/1) for ANY fixture directory given by
 * {@code -Dfixtures.dir}: the config, batch, cases and stages are read from model.json. For each case and each stage
 * whose parameters are known (stage 0: init/params0 + the case's params0 overrides; later stages: the case's
 * params{s} when stored complete), our forward/backward must match the stored logits, loss, every gradient and every
 * stored activation within the README's tolerances: |ours − ref| ≤ max(1e-6·maxabs, 10·err64_max) + 1e-4·|ref|
 * (skipping unstable_idx; sampled tensors compared at their stored indices), loss rtol 1e-5.
 */
class FixtureParityTest {
    static final double RTOL = 1e-4, LOSS_RTOL = 1e-5;

    @TestFactory
    Stream<DynamicTest> matchesPyTorchReference() throws Exception {
        Path dir = SharedDir.locate(Path.of(System.getProperty("fixtures.dir", "../shared/fixtures/nanochat-tiny")));
        assumeTrue(dir != null, SharedDir.skipMessage("fixtures"));
        FixtureFile fx = FixtureFile.open(dir.resolve("model.json"));
        JsonNode root = fx.json();
        GPTConfig cfg = GPTConfig.fromJson(root.get("config"));
        List<DynamicTest> tests = new ArrayList<>();
        for (var it = root.get("cases").properties().iterator(); it.hasNext(); ) {
            var c = it.next();
            String name = c.getKey();
            int stages = c.getValue().path("fwd_bwd_stages").asInt(1);
            for (int s = 0; s < stages; s++) {
                int stage = s;
                // A later stage whose parameters are stored sampled starts from our own optimizer's parameters:
                // MuonAdamWFixtureParityTest (train) runs and checks it, chaining the steps.
                if (s > 0 && !storedComplete(fx, cfg, name + "/params" + s + "/")) continue;
                tests.add(DynamicTest.dynamicTest(name + " stage " + s, () -> checkStage(fx, cfg, name, stage)));
            }
        }
        return tests.stream();
    }

    /**
     * The same checks on a copy of the shared set with every large tensor stored sampled (as other fixture sets
     * are): pert/params0 is then rebuilt from init/params0 by the case's recipe, and gradients, logits and
     * activations are compared at their stored indices.
     */
    @Test
    void aCopyWithEveryLargeTensorStoredSampledPassesToo(@TempDir Path tmp) throws Exception {
        Path dir = SharedDir.locate(Path.of(System.getProperty("fixtures.dir", "../shared/fixtures/nanochat-tiny")));
        assumeTrue(dir != null, SharedDir.skipMessage("fixtures"));
        FixtureFile.writeSampled(dir.resolve("model.json"), tmp, 64, 7);
        FixtureFile fx = FixtureFile.open(tmp.resolve("model.json"));
        assertTrue(fx.get("pert/params0/lm_head.weight").sampled() && fx.get("pert/grads0/lm_head.weight").sampled(),
                "the copy stores the large tensors sampled");
        GPTConfig cfg = GPTConfig.fromJson(fx.json().get("config"));
        for (String kase : new String[] {"init", "pert"}) checkStage(fx, cfg, kase, 0);
    }

    static void checkStage(FixtureFile fx, GPTConfig cfg, String kase, int stage) {
        GPT model = new GPT(cfg);
        Map<String, float[]> state = new LinkedHashMap<>();
        if (stage == 0) {
            state = fx.params0(kase, shapes(model));
        } else {
            for (String n : cfg.parameterShapes().keySet()) state.put(n, fx.floats(kase + "/params" + stage + "/" + n));
        }
        model.loadStateDict(state);
        FixtureFile.Entry idxE = fx.get("inputs/idx"), tgtE = fx.get("inputs/targets");
        Tensor idx = Tensor.ofInts(idxE.ints(), idxE.shape());
        Tensor targets = Tensor.ofInts(tgtE.ints(), tgtE.shape());

        Map<String, Tensor> trace = new HashMap<>();
        Var loss = model.loss(idx, targets, Reduction.MEAN, trace);
        float lossValue = loss.item();
        loss.backward();
        List<String> failures = new ArrayList<>();
        String p = kase + "/";
        if (fx.has(p + "loss" + stage)) {
            double ref = fx.get(p + "loss" + stage).values()[0];
            if (!(Math.abs(lossValue - ref) <= LOSS_RTOL * Math.abs(ref))) failures.add("loss " + lossValue + " vs " + ref);
        }
        int compared = 0;
        if (fx.has(p + "logits" + stage)) {
            compare(fx.get(p + "logits" + stage), model.logits(idx).toFloatArray(), failures);
            compared++;
        }
        for (String n : cfg.parameterShapes().keySet()) {
            String key = p + "grads" + stage + "/" + n;
            if (fx.has(key)) {
                compare(fx.get(key), model.parameter(n).grad().toFloatArray(), failures);
                compared++;
            }
        }
        for (String name : fx.names()) {
            String prefix = p + "acts" + stage + "/";
            if (!name.startsWith(prefix)) continue;
            String act = name.substring(prefix.length());
            Tensor ours = trace.get(act);
            if (ours == null) {
                failures.add(name + ": activation not produced by our forward");
                continue;
            }
            FixtureFile.Entry e = fx.get(name);
            if (!Arrays.equals(e.shape(), ours.shape())) {
                failures.add(name + ": shape " + Arrays.toString(ours.shape()) + " vs " + Arrays.toString(e.shape()));
                continue;
            }
            compare(e, ours.toFloatArray(), failures);
            compared++;
        }
        for (Parameter par : model.parameters()) assertEquals(par.numel(), par.grad().numel());
        assertTrue(failures.isEmpty(), kase + " stage " + stage + ": " + failures.size() + " mismatches:\n" + String.join("\n", failures));
        assertTrue(compared > 0, "nothing to compare for " + kase + " stage " + stage);
    }

    static boolean storedComplete(FixtureFile fx, GPTConfig cfg, String prefix) {
        for (String n : cfg.parameterShapes().keySet()) if (!fx.has(prefix + n) || fx.get(prefix + n).sampled()) return false;
        return true;
    }

    static Map<String, int[]> shapes(GPT model) {
        Map<String, int[]> shapes = new LinkedHashMap<>();
        model.parameters().forEach(p -> shapes.put(p.name(), p.shape()));
        return shapes;
    }

    /** Elementwise check of our full tensor against a complete or sampled fixture tensor. */
    static void compare(FixtureFile.Entry e, float[] ours, List<String> failures) {
        if (ours.length != e.numel()) {
            failures.add(e.name() + ": " + ours.length + " values vs " + e.numel());
            return;
        }
        Set<Integer> unstable = new HashSet<>();
        for (int u : e.unstable()) unstable.add(u);
        double atol = e.atol();
        int bad = 0;
        String first = null;
        double worst = 0;
        for (int i = 0; i < e.values().length; i++) {
            int flat = e.sampled() ? e.indices()[i] : i;
            if (unstable.contains(flat)) continue;
            double ref = e.values()[i], err = Math.abs(ours[flat] - ref);
            double tol = atol + RTOL * Math.abs(ref);
            if (!(err <= tol)) {
                bad++;
                if (err / tol > worst) {
                    worst = err / tol;
                    first = "index " + flat + ": ours " + ours[flat] + " vs ref " + ref + " (|err| " + err + ", tol " + tol + ")";
                }
            }
        }
        if (bad > 0) failures.add(e.name() + ": " + bad + "/" + e.values().length + " elements off; worst " + first);
    }
}
