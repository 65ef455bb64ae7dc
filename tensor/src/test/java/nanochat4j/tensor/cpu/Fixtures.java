package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.fail;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.fixture.FixtureFile;
import nanochat4j.tensor.fixture.SharedDir;

/** The PyTorch op fixtures ({@code shared/fixtures/nanochat-tiny/ops.json}) and the README's tolerance rule. */
final class Fixtures {
    private Fixtures() {}

    private static FixtureFile ops;

    /** The ops fixture file; skips the test (fails under CI=true) when shared/ is absent. */
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

    static Tensor tensor(String name) {
        FixtureFile.Entry e = ops().get(name);
        if (e.ints() != null) return Tensor.ofInts(e.ints(), e.shape());
        return Tensor.of(e.values(), e.shape());
    }

    /** README check: |ours − stored| ≤ atol + rtol·|stored|, atol = max(1e-6·maxabs, 10·err64_max), skipping unstable_idx. */
    static void check(String name, Tensor ours, double rtol) {
        FixtureFile.Entry e = ops().get(name);
        float[] got = ours.toFloatArray();
        if (got.length != e.numel()) fail(name + ": we produced " + got.length + " values, fixture has " + e.numel());
        java.util.Set<Integer> unstable = new java.util.HashSet<>();
        for (int u : e.unstable()) unstable.add(u);
        double atol = e.atol();
        for (int i = 0; i < e.values().length; i++) {
            int flat = e.sampled() ? e.indices()[i] : i;
            if (unstable.contains(flat)) continue;
            double ref = e.values()[i], err = Math.abs(got[flat] - ref);
            if (!(err <= atol + rtol * Math.abs(ref))) {
                fail(String.format("%s: flat index %d = %.9g, PyTorch %.9g (|err| %.3g > atol %.3g + rtol %.1g·|ref|)",
                        name, flat, got[flat], ref, err, atol, rtol));
            }
        }
    }
}
