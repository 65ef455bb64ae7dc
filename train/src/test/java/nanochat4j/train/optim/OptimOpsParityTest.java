package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.io.IOException;
import java.nio.file.Path;
import nanochat4j.tensor.fixture.FixtureFile;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** Polar express, Muon and AdamW single steps against the PyTorch reference (ops.json, fixture README tolerances). */
class OptimOpsParityTest {
    private static FixtureFile ops;

    @BeforeAll
    static void load() throws IOException {
        Path p = SharedDir.locate(FixtureAssert.fixturesDir().resolve("ops.json"));
        assumeTrue(p != null, SharedDir.skipMessage("fixtures ops.json"));
        ops = FixtureFile.open(p);
    }

    private static PolarExpress polarWith(String entry) {
        FixtureFile.Entry e = ops.get(entry);
        PolarExpress pe = new PolarExpress(e.shape()[0], e.shape()[1], 1);
        System.arraycopy(ops.floats(entry), 0, pe.x(), 0, e.values().length);
        return pe;
    }

    private static float[] result(PolarExpress pe) {
        return java.util.Arrays.copyOf(pe.x(), pe.rows * pe.cols);
    }

    @ParameterizedTest
    @ValueSource(strings = {"polar/wide_64x96", "polar/tall_96x64"})
    void frobeniusNormalisationMatchesX0(String c) {
        PolarExpress pe = polarWith(c + "/G");
        pe.normalize(1);
        FixtureAssert.assertClose(ops.get(c + "/X0"), result(pe));
    }

    @ParameterizedTest
    @ValueSource(strings = {"polar/wide_64x96", "polar/tall_96x64"})
    void fivePolarExpressIterationsMatchTorch(String c) {
        PolarExpress pe = polarWith(c + "/X0");
        pe.iterate(1, 5);
        FixtureAssert.assertClose(ops.get(c + "/polar_express_X0"), result(pe));
    }

    @ParameterizedTest
    @ValueSource(strings = {"polar/wide_64x96", "polar/tall_96x64"})
    void muonOrthogonalizeMatchesTorch(String c) {
        PolarExpress pe = polarWith(c + "/G");
        pe.orthogonalize(1, 5);
        FixtureAssert.assertClose(ops.get(c + "/muon_orthogonalize_G"), result(pe));
    }

    @ParameterizedTest
    @ValueSource(strings = {"muon_step/wide_32x48", "muon_step/tall_48x32"})
    void muonStepFromNonZeroStateMatchesTorch(String c) {
        JsonNode info = ops.json().get("info").get(c);
        FixtureFile.Entry pIn = ops.get(c + "/in_p");
        int rows = pIn.shape()[0], cols = pIn.shape()[1];
        Muon muon = new Muon(1, rows, cols);
        float[] p = ops.floats(c + "/in_p").clone();
        float[] g = ops.floats(c + "/in_grad").clone();
        System.arraycopy(ops.floats(c + "/in_momentum_buffer"), 0, muon.momentum, 0, rows * cols);
        float[] s = ops.floats(c + "/in_second_momentum_buffer");
        org.junit.jupiter.api.Assertions.assertEquals(muon.second.length, s.length, "second moment layout");
        System.arraycopy(s, 0, muon.second, 0, s.length);
        int expectRed = muon.perRow ? -1 : -2;
        org.junit.jupiter.api.Assertions.assertEquals(info.get("red_dim").asInt(), expectRed, "reduction dim");
        muon.step(new float[][] {p}, new int[1], new float[][] {g}, new int[1], info.get("lr").asDouble(),
                info.get("momentum").asDouble(), info.get("beta2").asDouble(), info.get("wd").asDouble(), info.get("ns_steps").asInt());
        FixtureAssert.assertClose(ops.get(c + "/out_p"), p);
        FixtureAssert.assertClose(ops.get(c + "/out_momentum_buffer"), muon.momentum);
        FixtureAssert.assertClose(ops.get(c + "/out_second_momentum_buffer"), muon.second);
    }

    @Test
    void adamwStepThreeFromNonZeroMomentsMatchesTorch() {
        JsonNode info = ops.json().get("info").get("adamw_step");
        float[] p = ops.floats("adamw_step/in_p").clone();
        float[] g = ops.floats("adamw_step/in_grad");
        float[] m = ops.floats("adamw_step/in_exp_avg").clone();
        float[] v = ops.floats("adamw_step/in_exp_avg_sq").clone();
        AdamW.Scalars s = AdamW.Scalars.of(info.get("lr").asDouble(), info.get("beta1").asDouble(), info.get("beta2").asDouble(),
                info.get("eps").asDouble(), info.get("wd").asDouble(), info.get("step").asLong());
        AdamW.update(p, 0, g, 0, m, v, 0, p.length, s);
        FixtureAssert.assertClose(ops.get("adamw_step/out_p"), p);
        FixtureAssert.assertClose(ops.get("adamw_step/out_exp_avg"), m);
        FixtureAssert.assertClose(ops.get("adamw_step/out_exp_avg_sq"), v);
    }
}
