package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The kernels that training and decoding repeat give the same bits in the interpreter, in C1 and in C2 (a kernel's
 * first calls run interpreted, later ones compiled: a resumed run or a second call must not see other bits). The
 * digest of every kernel's output on fixed inputs is computed here after a warm-up (C2), and by child JVMs forced
 * to the interpreter (-Xint) and to C1 (-XX:TieredStopAtLevel=1), with this JVM's vector flags (-XX:UseAVX=2,
 * -Dnanochat4j.vectorBits=128, …) passed on.
 */
class JitTierDeterminismTest {

    /** The digest of every kernel on fixed inputs; small sizes so the interpreter takes seconds, not minutes. */
    static String digest() {
        SplittableRandom rnd = new SplittableRandom(42);
        List<String> parts = new ArrayList<>();
        // GEMM: the decode GEMV path (m ≤ 8 rows of x·Wᵀ) and the packed path, odd sizes for the edge tiles
        for (int m : new int[] {1, 3, 8, 13}) {
            int n = 37, k = 3 * Vec.LANES + 5;
            float[] a = random(rnd, m * k), b = random(rnd, n * k), c = new float[m * n];
            Gemm.sgemm(false, true, m, n, k, 1f, a, 0, k, b, 0, k, 0f, c, 0, n);
            parts.add("gemm" + m + ":" + hash(c));
        }
        float[] z = random(rnd, 5 * 203);
        float[] y = new float[z.length];
        Elementwise.sigmoid(z, 0, y, 0, z.length);
        parts.add("sigmoid:" + hash(y));
        Elementwise.softcap(z, 0, y, 0, z.length, 15f);
        parts.add("softcap:" + hash(y));
        float[] g = new float[z.length], losses = new float[5];
        for (int i = 0; i < z.length; i++) z[i] *= 20f;
        CrossEntropy.rows(z, 0, 5, 203, new int[] {0, 7, -1, 202, 100}, 0, 15f, 0.25f, null, 0, losses, 0, g, 0, 0, "ce");
        parts.add("ce:" + hash(losses) + "/" + hash(g));
        float[] x = random(rnd, 3 * 67), dy = random(rnd, 3 * 67), dx = new float[3 * 67];
        RmsNorm.forward(x, 0, y, 0, 3, 67, 1f, 1e-6f);
        RmsNorm.backward(x, 0, dy, 0, dx, 0, 3, 67, 1f, 1e-6f);
        parts.add("rmsnorm:" + hash(y) + "/" + hash(dx));
        int B = 1, T = 9, H = 2, KV = 1, D = 2 * Vec.LANES;
        float[] q = random(rnd, B * T * H * D), k = random(rnd, B * T * KV * D), v = random(rnd, B * T * KV * D);
        float[] att = new float[q.length], lse = new float[B * H * T];
        Attention.forward(q, k, v, att, lse, B, T, H, KV, D, 4, 0.125f);
        parts.add("attention:" + hash(att) + "/" + hash(lse));
        float[] big = random(rnd, 70_001);
        parts.add("sum:" + Double.doubleToLongBits(Reduce.sumParallel(big, 0, big.length)));
        return String.join(" ", parts);
    }

    private static float[] random(SplittableRandom rnd, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) x[i] = (float) (rnd.nextDouble() * 2 - 1);
        return x;
    }

    private static String hash(float[] x) {
        long h = 1125899906842597L;
        for (float f : x) h = 31 * h + Float.floatToRawIntBits(f);
        return Long.toHexString(h);
    }

    /** Child JVM entry: prints the digest. */
    public static void main(String[] args) {
        System.out.println("DIGEST " + digest());
    }

    @Test
    void interpreterC1AndC2GiveTheSameBits() throws Exception {
        String first = digest();
        for (int i = 0; i < 300; i++) digest(); // hot enough for C2 (checked: -XX:+PrintCompilation lists the kernels)
        String compiled = digest();
        assertEquals(first, compiled, "the first (interpreted) call and a compiled call differ");
        assertEquals(compiled, child("-Xint"), "interpreter-only JVM differs from C2");
        assertEquals(compiled, child("-XX:TieredStopAtLevel=1"), "C1-only JVM differs from C2");
    }

    private static String child(String tierFlag) throws Exception {
        String out = ChildJvm.run(JitTierDeterminismTest.class, 120, List.of(tierFlag), Gemm.class);
        for (String line : out.split("\n")) {
            if (line.startsWith("DIGEST ")) return line.substring(7);
        }
        throw new AssertionError(tierFlag + " child JVM printed no digest:\n" + out);
    }
}
