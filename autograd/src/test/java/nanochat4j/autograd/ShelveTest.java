package nanochat4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.DeviceStandIn;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.StandInCuda;
import nanochat4j.tensor.StandInCuda.HostStorage;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * {@link Autograd#shelve}: what it replaces (every full-size view of a fresh op output of this forward that it reads no
 * more and some backward reads, on a backend that keeps saved activations in another form), what it gives back with no
 * copy on any backend (such values that no backward reads), and what it leaves (the vars still read, the leaves, what
 * an earlier forward recorded, anything outside a recycling scope or a recording tape, and the values a backward reads
 * on a backend that keeps fp32). The stand-in keeps real BF16 tensors and poisons the memory given back, so a backward
 * that read either wrongly fails here.
 */
class ShelveTest {
    static final int N = 16, C = 32;

    @BeforeEach
    @AfterEach
    void emptyTape() {
        Tape.current().clear();
    }

    /** x → h = rms_norm(x) → r = h as (N, C/8, 8) → back to (N, C) → y = r·Wᵀ; the loss Σ y·R. */
    private record Graph(Parameter x, Parameter w, Var h, Var r, Var y, Var loss) {}

    private static Graph graph(Backend be) {
        SplittableRandom rnd = new SplittableRandom(4);
        Parameter x = new Parameter("x", be.upload(Tensor.of(random(rnd, N * C, 1), N, C)));
        Parameter w = new Parameter("w", be.upload(Tensor.of(random(rnd, C * C, 0.3), C, C)));
        Var h = Ops.rmsNorm(x.var(), 1f);
        Var r = Ops.reshape(h, N, C / 8, 8);
        Var y = Ops.linear(Ops.reshape(r, N, C), w.var());
        Tensor dir = be.upload(Tensor.of(random(rnd, N * C, 1), N, C));
        return new Graph(x, w, h, r, y, Ops.dot(y, dir));
    }

    @Test
    void onABackendThatKeepsBf16TheShelvedGroupReadsOneBf16CopyAndItsFp32MemoryGoesBack() {
        float[][] plain, shelved;
        try (DeviceStandIn.Installed d = StandInCuda.installWithBf16Saves(); Recycler.Scope s = Recycler.open()) {
            Backend be = Backend.forDevice(Device.CUDA);
            Graph g = graph(be);
            Tensor x = g.x().tensor(), yBefore = g.y().value();
            long before = HostStorage.handedOut();
            Autograd.shelve(0, g.y());
            long freed = before - HostStorage.handedOut();
            assertEquals((long) N * C * (4 - 2), freed, "h's fp32 storage went back, a bf16 copy came");
            assertEquals(DType.BF16, g.h().value().dtype());
            assertEquals(DType.BF16, g.r().value().dtype());
            assertSame(g.h().value().storage(), g.r().value().storage(), "the reshape reads the same copy");
            assertSame(yBefore, g.y().value(), "a var still read stays");
            assertSame(x, g.x().var().value(), "a leaf stays");
            Autograd.shelve(0, g.y());
            assertEquals(before - freed, HostStorage.handedOut(), "shelving again changes nothing");
            g.loss().backward();
            shelved = new float[][] {g.x().grad().toCpu().toFloatArray(), g.w().grad().toCpu().toFloatArray()};
        }
        try (DeviceStandIn.Installed d = StandInCuda.installWithBf16Saves(); Recycler.Scope s = Recycler.open()) {
            Graph g = graph(Backend.forDevice(Device.CUDA));
            g.loss().backward();
            plain = new float[][] {g.x().grad().toCpu().toFloatArray(), g.w().grad().toCpu().toFloatArray()};
        }
        assertArrayEquals(plain[0], shelved[0], "dx reads x (a leaf) and W, nothing shelved");
        double num = 0, den = 0;
        int differ = 0;
        for (int j = 0; j < plain[1].length; j++) {
            double e = plain[1][j] - shelved[1][j];
            num += e * e;
            den += plain[1][j] * (double) plain[1][j];
            if (e != 0) differ++;
        }
        double rel = Math.sqrt(num / den);
        assertTrue(rel < 1e-2 && differ > 0, "dW = dyᵀ·h from bf16 h: relative error " + rel + ", " + differ + " of " + plain[1].length + " differ");
    }

    @Test
    void outsideAScopeWithoutATapeForAnEarlierForwardOrOnAnFp32BackendReadValuesStay() {
        try (DeviceStandIn.Installed d = StandInCuda.installWithBf16Saves()) {
            Graph g = graph(Backend.forDevice(Device.CUDA));
            Tensor h = g.h().value();
            Autograd.shelve(0);   // no scope: the fp32 memory could not go back, a copy would only add
            assertSame(h, g.h().value());
            try (Recycler.Scope s = Recycler.open(); Autograd.Scope n = Autograd.noGrad()) {
                Autograd.shelve(0);
                assertSame(h, g.h().value());
            }
            try (Recycler.Scope s = Recycler.open()) {
                Autograd.shelve(0, g.r());   // the group of a var still read stays whole
                assertSame(h, g.h().value());
            }
        }
        Tape.current().clear();
        try (DeviceStandIn.Installed d = StandInCuda.installWithBf16Saves(); Recycler.Scope s = Recycler.open()) {
            Backend be = Backend.forDevice(Device.CUDA);
            Graph first = graph(be);
            int from = Autograd.recorded();
            Graph second = graph(be);
            Tensor h = first.h().value();
            Autograd.shelve(from, second.loss());
            assertSame(h, first.h().value(), "an earlier forward's values are not this forward's to shelve");
            assertEquals(DType.BF16, second.h().value().dtype());
        }
        Tape.current().clear();
        try (DeviceStandIn.Installed d = StandInCuda.install(); Recycler.Scope s = Recycler.open()) {
            Graph g = graph(Backend.forDevice(Device.CUDA));
            Tensor h = g.h().value();
            Autograd.shelve(0);
            assertSame(h, g.h().value(), "a backend that keeps fp32 keeps the value itself");
        }
        Tape.current().clear();
        try (Recycler.Scope s = Recycler.open()) {
            Graph g = graph(Backend.cpu());
            Tensor h = g.h().value();
            Autograd.shelve(0);
            assertSame(h, g.h().value(), "the CPU keeps fp32");
        }
    }

    /**
     * x → h = rms_norm(x) → u = h + h → s = u + h → s·Wᵀ: the adds read no value in backward and rms_norm reads x (a
     * leaf), so h and u are read by no backward; shelved, they go back at once without a copy on any backend, and the
     * gradients are what they were bit for bit (the suite runs poisoned: a value given back and read turns into NaN).
     */
    @Test
    void valuesNoBackwardReadsGoBackWithoutACopyOnAnyBackend() {
        float[][] grads = new float[2][];
        for (int shelve = 0; shelve < 2; shelve++) {
            Tape.current().clear();
            try (Recycler.Scope sc = Recycler.open()) {
                SplittableRandom rnd = new SplittableRandom(9);
                Parameter x = new Parameter("x", Tensor.of(random(rnd, N * C, 1), N, C)), w = new Parameter("w", Tensor.of(random(rnd, C * C, 0.3), C, C));
                Var h = Ops.rmsNorm(x.var(), 1f), u = Ops.add(h, h), s = Ops.add(u, h), y = Ops.linear(s, w.var());
                Var loss = Ops.dot(y, Tensor.of(random(rnd, N * C, 1), N, C));
                if (shelve == 1) {
                    Tensor sv = s.value();
                    Autograd.shelve(0, loss);
                    assertTrue(!h.value().isRecyclable() && !u.value().isRecyclable(), "h and u went back");
                    assertTrue(sv == s.value() && sv.isRecyclable(), "s, which the product's backward reads, stays (fp32 on the CPU)");
                }
                loss.backward();
                grads[shelve] = concat(x.grad().toFloatArray(), w.grad().toFloatArray());
            }
        }
        assertArrayEquals(grads[0], grads[1]);
    }

    private static float[] concat(float[] a, float[] b) {
        float[] c = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    private static float[] random(SplittableRandom r, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        return a;
    }
}
