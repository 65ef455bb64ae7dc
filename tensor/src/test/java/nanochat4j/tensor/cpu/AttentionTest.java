package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;
import java.util.SplittableRandom;
import nanochat4j.tensor.fixture.FixtureFile;
import nanochat4j.tensor.fixture.SharedDir;
import org.junit.jupiter.api.Test;

/** Attention kernels against a float64 naive-softmax reference, finite differences and the PyTorch fixtures. */
class AttentionTest {

    // ---- float64 reference: scores → masked softmax → P·V, all in double, T×T allowed here ----

    static boolean visible(int i, int j, int window) {
        return j <= i && (window < 0 || i - j <= window);
    }

    /** y (B,T,H,D) in double; also fills lse (B,H,T) when non-null. */
    static double[] refForward(double[] q, double[] k, double[] v, double[] lse, int B, int T, int H, int KV, int D,
                               int window, double scale) {
        double[] y = new double[B * T * H * D];
        int group = H / KV;
        double[] s = new double[T];
        for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < T; i++) {
            int g = h / group;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j <= i; j++) {
                if (!visible(i, j, window)) continue;
                double dot = 0;
                for (int d = 0; d < D; d++) dot += q[((b * T + i) * H + h) * D + d] * k[((b * T + j) * KV + g) * D + d];
                s[j] = dot * scale;
                max = Math.max(max, s[j]);
            }
            double sum = 0;
            for (int j = 0; j <= i; j++) if (visible(i, j, window)) sum += Math.exp(s[j] - max);
            if (lse != null) lse[(b * H + h) * T + i] = max + Math.log(sum);
            for (int j = 0; j <= i; j++) {
                if (!visible(i, j, window)) continue;
                double p = Math.exp(s[j] - max) / sum;
                for (int d = 0; d < D; d++) y[((b * T + i) * H + h) * D + d] += p * v[((b * T + j) * KV + g) * D + d];
            }
        }
        return y;
    }

    /** Analytic backward in double: returns {dq, dk, dv}. */
    static double[][] refBackward(double[] q, double[] k, double[] v, double[] dy, int B, int T, int H, int KV, int D,
                                  int window, double scale) {
        double[] dq = new double[q.length], dk = new double[k.length], dv = new double[v.length];
        int group = H / KV;
        double[] p = new double[T], dp = new double[T];
        for (int b = 0; b < B; b++) for (int h = 0; h < H; h++) for (int i = 0; i < T; i++) {
            int g = h / group, qo = ((b * T + i) * H + h) * D;
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j <= i; j++) {
                if (!visible(i, j, window)) continue;
                double dot = 0;
                for (int d = 0; d < D; d++) dot += q[qo + d] * k[((b * T + j) * KV + g) * D + d];
                p[j] = dot * scale;
                max = Math.max(max, p[j]);
            }
            double sum = 0;
            for (int j = 0; j <= i; j++) if (visible(i, j, window)) { p[j] = Math.exp(p[j] - max); sum += p[j]; }
            double rowDot = 0;
            for (int j = 0; j <= i; j++) {
                if (!visible(i, j, window)) continue;
                p[j] /= sum;
                int ko = ((b * T + j) * KV + g) * D;
                double d0 = 0;
                for (int d = 0; d < D; d++) d0 += dy[qo + d] * v[ko + d];
                dp[j] = d0;
                rowDot += p[j] * d0;
            }
            for (int j = 0; j <= i; j++) {
                if (!visible(i, j, window)) continue;
                int ko = ((b * T + j) * KV + g) * D;
                double ds = p[j] * (dp[j] - rowDot) * scale;
                for (int d = 0; d < D; d++) {
                    dv[ko + d] += p[j] * dy[qo + d];
                    dq[qo + d] += ds * k[ko + d];
                    dk[ko + d] += ds * q[qo + d];
                }
            }
        }
        return new double[][] {dq, dk, dv};
    }

    // ---- helpers ----

    static float[] randn(SplittableRandom r, int n, double std) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            double u1 = r.nextDouble(), u2 = r.nextDouble();
            a[i] = (float) (std * Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2));
        }
        return a;
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) d[i] = a[i];
        return d;
    }

    /**
     * |got − want| ≤ rtol·(maxabs(want) + |want|) + 1e-5 per element: relative to the tensor's scale, with an absolute
     * floor for outputs that are exactly zero in exact math (window 0 makes dq, dk vanish: dP − D_i cancels O(1)
     * dot products, leaving ~1e-6 of fp32 noise). Inputs and gradients are O(1), so the floor only matters there.
     */
    static void assertClose(String what, double[] want, float[] got, double rtol) {
        assertEquals(want.length, got.length, what + " length");
        double maxAbs = 0;
        for (double w : want) maxAbs = Math.max(maxAbs, Math.abs(w));
        double atol = rtol * maxAbs + 1e-5;
        for (int i = 0; i < want.length; i++) {
            double err = Math.abs(got[i] - want[i]);
            if (!(err <= atol + rtol * Math.abs(want[i]))) {
                throw new AssertionError(what + "[" + i + "]: got " + got[i] + ", want " + want[i] + " (err " + err
                        + ", tensor maxabs " + maxAbs + ", rtol " + rtol + ")");
            }
        }
    }

    record Case(int B, int T, int H, int KV, int D, int window) {
        @Override public String toString() {
            return "B=" + B + " T=" + T + " H=" + H + " KV=" + KV + " D=" + D + " window=" + window;
        }
    }

    static final Case[] CASES = {
        new Case(2, 16, 4, 2, 16, -1),
        new Case(1, 1, 2, 1, 8, -1),          // T = 1
        new Case(2, 37, 4, 1, 12, -1),        // prime T, D not a lane multiple, H/KV = 4
        new Case(1, 29, 2, 2, 20, 0),         // window 0: each query sees only itself
        new Case(2, 23, 4, 2, 20, 1),         // window 1
        new Case(1, 67, 6, 3, 16, 7),         // window < T
        new Case(1, 50, 2, 1, 33, 100),       // window >= T = unlimited
        new Case(2, 131, 4, 2, 64, 40),       // crosses several tiles
        new Case(1, 200, 2, 1, 64, -1),
        new Case(1, 97, 3, 3, 5, 31),         // D < lanes
    };

    // ---- forward ----

    @Test
    void forwardMatchesFloat64ReferenceForCausalWindowsAndGqa() {
        SplittableRandom r = new SplittableRandom(0xA77E);
        for (Case c : CASES) {
            float[] q = randn(r, c.B * c.T * c.H * c.D, 1.0), k = randn(r, c.B * c.T * c.KV * c.D, 1.0);
            float[] v = randn(r, c.B * c.T * c.KV * c.D, 1.0);
            float scale = (float) (1 / Math.sqrt(c.D)) * 2f; // sharper than default so the softmax is not flat
            float[] y = new float[q.length], lse = new float[c.B * c.H * c.T];
            Attention.forward(q, k, v, y, lse, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            double[] lseRef = new double[lse.length];
            double[] yRef = refForward(toDouble(q), toDouble(k), toDouble(v), lseRef, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            assertClose("y " + c, yRef, y, 1e-4);
            assertClose("lse " + c, lseRef, lse, 1e-4);
        }
    }

    @Test
    void largeScoresUseTheRunningMaxAndStayExact() {
        // Rows whose scores can exceed 2^±60 take the online-max path; bounded rows keep m = 0. Mix both in a block.
        SplittableRandom r = new SplittableRandom(0x1A46E);
        for (Case c : new Case[] {new Case(2, 150, 4, 2, 32, -1), new Case(1, 130, 2, 1, 16, 40)}) {
            float[] q = randn(r, c.B * c.T * c.H * c.D, 1.0), k = randn(r, c.B * c.T * c.KV * c.D, 1.0);
            float[] v = randn(r, k.length, 1.0), dy = randn(r, q.length, 1.0);
            for (int row = 0; row < c.B * c.T * c.H; row += 3)
                for (int d = 0; d < c.D; d++) q[row * c.D + d] *= 40f;   // scores up to ~±500
            float scale = (float) (1 / Math.sqrt(c.D));
            float[] y = new float[q.length], lse = new float[c.B * c.H * c.T];
            Attention.forward(q, k, v, y, lse, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            double[] lseRef = new double[lse.length];
            double[] yRef = refForward(toDouble(q), toDouble(k), toDouble(v), lseRef, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            assertClose("y " + c, yRef, y, 1e-4);
            assertClose("lse " + c, lseRef, lse, 1e-4);
            assertBackwardMatchesReference(c, q, k, v, y, lse, dy, scale);
        }
    }

    // ---- backward ----

    /** The kernel's dq, dk, dv (dk pre-filled with junk: it must be overwritten, not accumulated) against float64. */
    private static void assertBackwardMatchesReference(Case c, float[] q, float[] k, float[] v, float[] y, float[] lse, float[] dy,
                                                       float scale) {
        float[] dq = new float[q.length], dk = new float[k.length], dv = new float[v.length];
        java.util.Arrays.fill(dk, 123f);
        Attention.backward(q, k, v, y, lse, dy, dq, dk, dv, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
        double[][] ref = refBackward(toDouble(q), toDouble(k), toDouble(v), toDouble(dy), c.B, c.T, c.H, c.KV, c.D, c.window, scale);
        assertClose("dq " + c, ref[0], dq, 1e-4);
        assertClose("dk " + c, ref[1], dk, 1e-4);
        assertClose("dv " + c, ref[2], dv, 1e-4);
    }

    @Test
    void backwardMatchesFloat64AnalyticGradients() {
        SplittableRandom r = new SplittableRandom(0xBAC4);
        for (Case c : CASES) {
            float[] q = randn(r, c.B * c.T * c.H * c.D, 1.0), k = randn(r, c.B * c.T * c.KV * c.D, 1.0);
            float[] v = randn(r, c.B * c.T * c.KV * c.D, 1.0), dy = randn(r, q.length, 1.0);
            float scale = (float) (1 / Math.sqrt(c.D)) * 2f;
            float[] y = new float[q.length], lse = new float[c.B * c.H * c.T];
            Attention.forward(q, k, v, y, lse, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            assertBackwardMatchesReference(c, q, k, v, y, lse, dy, scale);
        }
    }

    @Test
    void float64AnalyticBackwardMatchesFiniteDifferences() {
        // Validates the reference gradient itself (which the kernel is held to above) on small shapes.
        SplittableRandom r = new SplittableRandom(0xFD);
        for (Case c : new Case[] {new Case(1, 7, 4, 2, 5, -1), new Case(2, 6, 2, 1, 3, 2), new Case(1, 5, 2, 2, 4, 0)}) {
            double[] q = toDouble(randn(r, c.B * c.T * c.H * c.D, 1.0)), k = toDouble(randn(r, c.B * c.T * c.KV * c.D, 1.0));
            double[] v = toDouble(randn(r, c.B * c.T * c.KV * c.D, 1.0)), dy = toDouble(randn(r, q.length, 1.0));
            double scale = 0.7;
            double[][] g = refBackward(q, k, v, dy, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            double[][] xs = {q, k, v};
            for (int which = 0; which < 3; which++) {
                double[] x = xs[which];
                for (int idx = 0; idx < x.length; idx++) {
                    double fd = centralDifference(x, idx,
                            () -> dotD(refForward(q, k, v, null, c.B, c.T, c.H, c.KV, c.D, c.window, scale), dy));
                    assertEquals(fd, g[which][idx], 1e-6 + 1e-6 * Math.abs(fd), "d" + "qkv".charAt(which) + "[" + idx + "] " + c);
                }
            }
        }
    }

    @Test
    void kernelBackwardMatchesFiniteDifferencesOfFloat64Forward() {
        SplittableRandom r = new SplittableRandom(0xFD2);
        Case c = new Case(1, 9, 4, 2, 6, 3);
        float[] qf = randn(r, c.B * c.T * c.H * c.D, 1.0), kf = randn(r, c.B * c.T * c.KV * c.D, 1.0);
        float[] vf = randn(r, kf.length, 1.0), dyf = randn(r, qf.length, 1.0);
        float scale = 0.5f;
        float[] y = new float[qf.length], lse = new float[c.B * c.H * c.T];
        Attention.forward(qf, kf, vf, y, lse, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
        float[] dq = new float[qf.length], dk = new float[kf.length], dv = new float[vf.length];
        Attention.backward(qf, kf, vf, y, lse, dyf, dq, dk, dv, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
        double[] q = toDouble(qf), k = toDouble(kf), v = toDouble(vf), dy = toDouble(dyf);
        double[][] xs = {q, k, v};
        float[][] gs = {dq, dk, dv};
        for (int which = 0; which < 3; which++) {
            double[] x = xs[which];
            double[] fd = new double[x.length];
            for (int idx = 0; idx < x.length; idx++) {
                fd[idx] = centralDifference(x, idx,
                        () -> dotD(refForward(q, k, v, null, c.B, c.T, c.H, c.KV, c.D, c.window, scale), dy));
            }
            assertClose("finite-difference d" + "qkv".charAt(which) + " " + c, fd, gs[which], 1e-4);
        }
    }

    /** d f / d x[idx] by central differences (h = 1e-6); x[idx] is restored afterwards. */
    static double centralDifference(double[] x, int idx, java.util.function.DoubleSupplier f) {
        double save = x[idx], h = 1e-6;
        x[idx] = save + h;
        double fp = f.getAsDouble();
        x[idx] = save - h;
        double fm = f.getAsDouble();
        x[idx] = save;
        return (fp - fm) / (2 * h);
    }

    static double dotD(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    // ---- KV-cache form ----

    @Test
    void cachedPrefillChunksAndDecodesEqualFullForwardAtEveryPosition() {
        SplittableRandom r = new SplittableRandom(0xCAC4E);
        for (Case c : new Case[] {new Case(2, 41, 4, 2, 20, -1), new Case(1, 37, 6, 3, 16, 5), new Case(2, 30, 2, 1, 64, 0),
                                  new Case(1, 70, 4, 4, 12, 17), new Case(1, 160, 2, 1, 20, -1), new Case(2, 150, 4, 2, 8, 50)}) {
            int Tmax = c.T + 3; // cache longer than what is used
            float[] q = randn(r, c.B * c.T * c.H * c.D, 1.0), k = randn(r, c.B * c.T * c.KV * c.D, 1.0);
            float[] v = randn(r, k.length, 1.0);
            float scale = (float) (1 / Math.sqrt(c.D)) * 2f;
            double[] yRef = refForward(toDouble(q), toDouble(k), toDouble(v), null, c.B, c.T, c.H, c.KV, c.D, c.window, scale);
            float[] kc = new float[c.B * Tmax * c.KV * c.D], vc = new float[kc.length];
            java.util.Arrays.fill(kc, Float.NaN); // unwritten cache slots must never be read
            java.util.Arrays.fill(vc, Float.NaN);
            float[] yAll = new float[q.length];
            int[] chunks = {7, 1, 12, 1, 1, 70, 2}; // prefill chunks (70 spans two query blocks) and decodes, then decodes to the end
            int pos = 0, ci = 0;
            while (pos < c.T) {
                int tq = Math.min(ci < chunks.length ? chunks[ci++] : 1, c.T - pos);
                for (int b = 0; b < c.B; b++) for (int t = 0; t < tq; t++) {
                    int src = ((b * c.T + pos + t) * c.KV) * c.D, dst = ((b * Tmax + pos + t) * c.KV) * c.D;
                    System.arraycopy(k, src, kc, dst, c.KV * c.D);
                    System.arraycopy(v, src, vc, dst, c.KV * c.D);
                }
                float[] qc = new float[c.B * tq * c.H * c.D], yc = new float[qc.length];
                for (int b = 0; b < c.B; b++)
                    System.arraycopy(q, ((b * c.T + pos) * c.H) * c.D, qc, (b * tq * c.H) * c.D, tq * c.H * c.D);
                Attention.forwardCached(qc, kc, vc, yc, c.B, tq, Tmax, pos, c.H, c.KV, c.D, c.window, scale);
                for (int b = 0; b < c.B; b++)
                    System.arraycopy(yc, (b * tq * c.H) * c.D, yAll, ((b * c.T + pos) * c.H) * c.D, tq * c.H * c.D);
                pos += tq;
            }
            assertClose("cached y " + c, yRef, yAll, 1e-4);
        }
    }

    // ---- PyTorch fixtures ----

    /**
     * The decode step's kernel: the last query of a T-row sequence against its keys, read out of a cache with rows of
     * KV heads (stride KV·D) at a head offset, against the float64 reference's last row. Key counts around the 4-key
     * blocks, head dims around the 4-vector chunks (below a vector, between, above, not a lane multiple), a window,
     * and scores large enough that the running max matters.
     */
    @Test
    void decodeRowMatchesTheLastRowOfTheFloat64Reference() {
        SplittableRandom r = new SplittableRandom(17);
        int lanes = Vec.LANES;
        int[] dims = {3, lanes, 4 * lanes, 4 * lanes + 3, 6 * lanes, 64, 128};
        for (int D : dims) {
            for (int T : new int[] {1, 2, 3, 4, 5, 8, 9, 67}) {
                for (int window : new int[] {-1, 5}) {
                    for (double std : new double[] {1, 6}) {
                        int KV = 2, H = 2, g = 1;
                        float[] q = randn(r, T * H * D, std), k = randn(r, T * KV * D, std), v = randn(r, T * KV * D, 1);
                        double scale = 1 / Math.sqrt(D);
                        double[] want = refForward(toDouble(q), toDouble(k), toDouble(v), null, 1, T, H, KV, D, window, scale);
                        int i = T - 1, lo = window < 0 ? 0 : Math.max(0, i - window), n = i - lo + 1;
                        float[] y = new float[D + 5], s = new float[n + 7];
                        int qo = (i * H + g) * D, base = (lo * KV + g) * D;
                        // the values copied behind an offset: the kernel reads k and v at their own offsets
                        float[] vShift = new float[v.length + 11];
                        System.arraycopy(v, 0, vShift, 11, v.length);
                        Attention.decodeRow(q, qo, k, base, vShift, base + 11, KV * D, n, D, (float) scale, s, 7, y, 5);
                        double[] w = java.util.Arrays.copyOfRange(want, qo, qo + D);
                        assertClose("decodeRow D=" + D + " T=" + T + " window=" + window + " std=" + std, w,
                                java.util.Arrays.copyOfRange(y, 5, 5 + D), 2e-5 * Math.max(1, std));
                    }
                }
            }
        }
        assertThrows(IllegalArgumentException.class, () -> Attention.decodeRow(new float[4], 0, new float[4], 0, new float[4], 0, 4, 0, 4,
                1f, new float[4], 0, new float[4], 0));
    }

    @Test
    void matchesPyTorchFixtures() throws Exception {
        Path p = SharedDir.locate("fixtures/nanochat-tiny/ops.json");
        assumeTrue(p != null, SharedDir.skipMessage("fixtures/nanochat-tiny/ops.json"));
        FixtureFile f = FixtureFile.open(p);
        int B = 2, T = 16, H = 4, KV = 2, D = 16;
        float scale = (float) (1 / Math.sqrt(D));
        float[] q = f.floats("attention/q"), k = f.floats("attention/k"), v = f.floats("attention/v"), dy = f.floats("attention/dy");
        for (String variant : new String[] {"full", "window5"}) {
            int window = variant.equals("full") ? -1 : 5;
            float[] y = new float[q.length], lse = new float[B * H * T];
            Attention.forward(q, k, v, y, lse, B, T, H, KV, D, window, scale);
            checkFixture(f, "attention/y_" + variant, y);
            float[] dq = new float[q.length], dk = new float[k.length], dv = new float[v.length];
            Attention.backward(q, k, v, y, lse, dy, dq, dk, dv, B, T, H, KV, D, window, scale);
            checkFixture(f, "attention/dq_" + variant, dq);
            checkFixture(f, "attention/dk_" + variant, dk);
            checkFixture(f, "attention/dv_" + variant, dv);
            // decode: query position 11 of batch row 0 over a cache holding keys 0..11
            int Tmax = 12, pos = 11;
            float[] qd = new float[H * D], kc = new float[Tmax * KV * D], vc = new float[Tmax * KV * D], yd = new float[H * D];
            System.arraycopy(q, pos * H * D, qd, 0, H * D);
            System.arraycopy(k, 0, kc, 0, Tmax * KV * D);
            System.arraycopy(v, 0, vc, 0, Tmax * KV * D);
            Attention.forwardCached(qd, kc, vc, yd, 1, 1, Tmax, pos, H, KV, D, window, scale);
            checkFixture(f, "attention/decode_y_" + variant, yd);
        }
    }

    static void checkFixture(FixtureFile f, String name, float[] got) {
        FixtureFile.Entry e = f.get(name);
        float[] want = f.floats(name);
        assertEquals(want.length, got.length, name + " length");
        java.util.Set<Integer> unstable = new java.util.HashSet<>();
        for (int u : e.unstable()) unstable.add(u);
        double atol = e.atol();
        for (int i = 0; i < want.length; i++) {
            if (unstable.contains(i)) continue;
            double err = Math.abs(got[i] - want[i]);
            assertTrue(err <= atol + 1e-4 * Math.abs(want[i]),
                    name + "[" + i + "]: got " + got[i] + ", want " + want[i] + " (err " + err + ", atol " + atol + ")");
        }
    }

    // ---- bad input ----

    @Test
    void badInputsAreRejectedWithOpAndShapes() {
        float[] q = new float[2 * 4 * 3 * 8], k = new float[2 * 4 * 2 * 8], y = new float[q.length], lse = new float[2 * 3 * 4];
        var e1 = assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(q, k, k, y, lse, 2, 4, 3, 2, 8, -1, 1f));
        assertTrue(e1.getMessage().contains("forward") && e1.getMessage().contains("H=3") && e1.getMessage().contains("KV=2"), e1.getMessage());
        float[] q4 = new float[2 * 4 * 4 * 8], y4 = new float[q4.length], lse4 = new float[2 * 4 * 4];
        var e2 = assertThrows(IllegalArgumentException.class,
                () -> Attention.forward(q4, new float[5], k, y4, lse4, 2, 4, 4, 2, 8, -1, 1f));
        assertTrue(e2.getMessage().contains("k has 5 floats") && e2.getMessage().contains("T=4"), e2.getMessage());
        var e3 = assertThrows(IllegalArgumentException.class,
                () -> Attention.backward(q4, k, k, y4, lse4, q4, q4.clone(), k.clone(), new float[3], 2, 4, 4, 2, 8, -1, 1f));
        assertTrue(e3.getMessage().contains("backward") && e3.getMessage().contains("dv"), e3.getMessage());
        float[] cache = new float[1 * 8 * 2 * 8];
        var e4 = assertThrows(IllegalArgumentException.class,
                () -> Attention.forwardCached(new float[2 * 4 * 8], cache, cache, new float[2 * 4 * 8], 1, 2, 8, 7, 4, 2, 8, -1, 1f));
        assertTrue(e4.getMessage().contains("forwardCached") && e4.getMessage().contains("pos=7") && e4.getMessage().contains("Tmax=8"), e4.getMessage());
        var e5 = assertThrows(IllegalArgumentException.class,
                () -> Attention.forwardCached(new float[4 * 8], cache, new float[7], new float[4 * 8], 1, 1, 8, 3, 4, 2, 8, -1, 1f));
        assertTrue(e5.getMessage().contains("vCache"), e5.getMessage());
    }
}
