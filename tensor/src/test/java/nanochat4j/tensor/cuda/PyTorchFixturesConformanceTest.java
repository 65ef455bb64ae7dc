package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.cuda.BackendConformanceTest.backend;
import static nanochat4j.tensor.cuda.BackendConformanceTest.up;
import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.fixture.FixtureFile;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The PyTorch op fixtures ({@code shared/fixtures/nanochat-tiny/ops.json}, written by nanochat's own code) on every
 * backend: rms_norm, rotary, softcap, cross-entropy and attention (full, window 5, decode through a KV cache), with
 * the fixture README's tolerance rule. Skipped when shared/ is absent (fails under CI=true, as the CPU suites do);
 * the CUDA half skipped where no GPU is usable.
 */
class PyTorchFixturesConformanceTest {
    private static FixtureFile ops;

    static synchronized FixtureFile ops() {
        if (ops == null) {
            Path p = SharedDir.locate("fixtures/nanochat-tiny/ops.json");
            assumeTrue(p != null, SharedDir.skipMessage("fixtures/nanochat-tiny/ops.json"));
            try {
                ops = FixtureFile.open(p);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return ops;
    }

    static Tensor t(Backend be, String name) {
        FixtureFile.Entry e = ops().get(name);
        return up(be, e.ints() != null ? Tensor.ofInts(e.ints(), e.shape()) : Tensor.of(e.values(), e.shape()));
    }

    /** |ours − stored| ≤ atol + rtol·|stored| with the fixture's atol, skipping its unstable indices. */
    static void check(String backend, String name, Tensor ours, double rtol) {
        FixtureFile.Entry e = ops().get(name);
        float[] got = ours.toFloatArray();
        if (got.length != e.numel()) fail(backend + " " + name + ": " + got.length + " values, fixture has " + e.numel());
        Set<Integer> unstable = new HashSet<>();
        for (int u : e.unstable()) unstable.add(u);
        for (int i = 0; i < e.values().length; i++) {
            int flat = e.sampled() ? e.indices()[i] : i;
            if (unstable.contains(flat)) continue;
            double ref = e.values()[i], err = Math.abs(got[flat] - ref);
            if (!(err <= e.atol() + rtol * Math.abs(ref))) {
                fail(String.format("%s %s: flat index %d = %.9g, PyTorch %.9g (|err| %.3g)", backend, name, flat, got[flat], ref, err));
            }
        }
    }

    @ParameterizedTest
    @MethodSource("nanochat4j.tensor.cuda.BackendConformanceTest#backends")
    void normRotarySoftcap(String name) {
        ops();
        Backend be = backend(name);
        Tensor x = t(be, "rms_norm/x");
        check(name, "rms_norm/y", be.rmsNorm(x, 1f), 1e-4);
        check(name, "rms_norm/dx", be.rmsNormBackward(x, t(be, "rms_norm/dy"), 1f), 1e-4);
        Backend.RotaryTables tab = be.rotaryTables(16, 32, 100000);
        check(name, "rope/cos", tab.cos(), 1e-5);
        check(name, "rope/sin", tab.sin(), 1e-5);
        Tensor cos = t(be, "rope/cos"), sin = t(be, "rope/sin");
        check(name, "rope/y", be.rotary(t(be, "rope/x"), cos, sin, 0), 1e-4);
        check(name, "rope/dx", be.rotaryBackward(t(be, "rope/dy"), cos, sin, 0), 1e-4);
        check(name, "rope/y_offset9", be.rotary(t(be, "rope/x_offset9"), cos, sin, 9), 1e-4);
        Tensor sx = t(be, "softcap/x");
        check(name, "softcap/y", be.softcap(sx, 15f), 1e-5);
        check(name, "softcap/dx", be.softcapBackward(sx, t(be, "softcap/dy"), 15f), 1e-5);
    }

    @ParameterizedTest
    @MethodSource("nanochat4j.tensor.cuda.BackendConformanceTest#backends")
    void crossEntropy(String name) {
        ops();
        Backend be = backend(name);
        Tensor logits = t(be, "cross_entropy/logits"), tg = t(be, "cross_entropy/targets");
        Backend.Loss mean = be.crossEntropy(logits, tg, 0f, Reduction.MEAN, true);
        check(name, "cross_entropy/loss", mean.loss(), 1e-5);
        check(name, "cross_entropy/dlogits", mean.dlogits(), 1e-4);
        check(name, "cross_entropy/loss_sum", be.crossEntropy(logits, tg, 0f, Reduction.SUM, false).loss(), 1e-5);
    }

    @ParameterizedTest
    @MethodSource("nanochat4j.tensor.cuda.BackendConformanceTest#backends")
    void attentionFullWindowAndDecode(String name) {
        ops();
        Backend be = backend(name);
        float scale = 0.25f; // 1/sqrt(16)
        Tensor q = t(be, "attention/q"), k = t(be, "attention/k"), v = t(be, "attention/v"), dy = t(be, "attention/dy");
        for (String c : new String[] {"full", "window5"}) {
            int window = c.equals("full") ? -1 : 5;
            Backend.AttentionOut out = be.attention(q, k, v, window, scale);
            check(name, "attention/y_" + c, out.y(), 1e-4);
            Backend.AttentionGrads g = be.attentionBackward(q, k, v, out.y(), out.lse(), dy, window, scale);
            check(name, "attention/dq_" + c, g.dq(), 1e-4);
            check(name, "attention/dk_" + c, g.dk(), 1e-4);
            check(name, "attention/dv_" + c, g.dv(), 1e-4);
        }
        // decode at position 11 over a 20-long cache filled in two chunks by narrowAssign (the KV-cache path)
        int kv = k.shape(2), d = k.shape(3);
        Tensor kc = up(be, Tensor.zeros(1, 20, kv, d)), vc = up(be, Tensor.zeros(1, 20, kv, d));
        Tensor k0 = k.slice(0, 1), v0 = v.slice(0, 1);
        be.narrowAssign(kc, 1, 0, be.narrow(k0, 1, 0, 7));
        be.narrowAssign(vc, 1, 0, be.narrow(v0, 1, 0, 7));
        be.narrowAssign(kc, 1, 7, be.narrow(k0, 1, 7, 5));
        be.narrowAssign(vc, 1, 7, be.narrow(v0, 1, 7, 5));
        Tensor q11 = be.narrow(q.slice(0, 1), 1, 11, 1);
        check(name, "attention/decode_y_full", be.attentionCached(q11, kc, vc, 11, -1, scale), 1e-4);
        check(name, "attention/decode_y_window5", be.attentionCached(q11, kc, vc, 11, 5, scale), 1e-4);
    }
}
