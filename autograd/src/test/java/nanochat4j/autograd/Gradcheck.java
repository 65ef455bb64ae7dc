package nanochat4j.autograd;

import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.function.Function;
import nanochat4j.tensor.Tensor;

/**
 * Gradient check of an op against finite differences of a float64 reference.
 *
 * <p>Method: the op (our fp32 forward + backward) is turned into a scalar with a fixed random cotangent r,
 * L = Σ r·op(x), and {@code backward()} gives the analytic fp32 gradients dL/dx. The caller also supplies the same op
 * written in float64; its L is differentiated numerically with central differences
 * (L(x+h·e_i) − L(x−h·e_i))/2h, h = 1e-6·max(1, |x_i|), whose truncation and rounding error (~1e-10 relative) is far
 * below fp32 rounding. So the comparison measures only our fp32 backward: each element must satisfy
 * |analytic − numeric| ≤ atol + rtol·|numeric| with atol = atolFrac·max|numeric| of that input.
 * Checking a float64 reference rather than differencing our own fp32 forward avoids the ~1e-3 noise fp32 finite
 * differences would have and also validates the forward's math (the fp32 output is compared with the float64 one
 * under the same tolerance first).
 */
public final class Gradcheck {
    private Gradcheck() {}

    /** A leaf var whose gradient is kept in {@link Var#grad()} after backward (what a gradient check differentiates). */
    static Var leaf(Tensor value) {
        return new Var(value, true, null, true);
    }

    /** A float64 reference of the op: inputs (flat, row-major) → output (flat). */
    @FunctionalInterface
    public interface Ref64 {
        double[] apply(double[][] inputs);
    }

    /** Worst element found: input index, flat index, analytic and numeric value. */
    public record Report(int input, int index, double analytic, double numeric, double maxAbsErr, int checked) {}

    /**
     * Checks every element of every input. {@code op} maps leaf vars (one per input tensor) to the op's output var;
     * {@code ref} is the float64 reference. Throws {@link AssertionError} naming the op, input and element on failure.
     */
    public static Report check(String what, Tensor[] inputs, Function<Var[], Var> op, Ref64 ref, double rtol, double atolFrac,
                               long seed) {
        Var[] vars = new Var[inputs.length];
        for (int i = 0; i < inputs.length; i++) vars[i] = leaf(inputs[i]);
        Var y = op.apply(vars);
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] r = new float[y.value().numel()];
        for (int i = 0; i < r.length; i++) r[i] = (float) (rnd.nextDouble() * 2 - 1);
        Tensor rt = Tensor.of(r, y.value().shape().length == 0 ? new int[] {1} : y.value().shape()).reshape(y.value().shape());
        Ops.dot(y, rt).backward();

        double[][] x64 = new double[inputs.length][];
        for (int i = 0; i < inputs.length; i++) {
            float[] f = inputs[i].toFloatArray();
            x64[i] = new double[f.length];
            for (int j = 0; j < f.length; j++) x64[i][j] = f[j];
        }
        double[] y64 = ref.apply(x64);
        if (y64.length != r.length) {
            throw new AssertionError(what + ": float64 reference returns " + y64.length + " values, op returns " + r.length);
        }
        float[] y32 = y.value().toFloatArray();
        double maxY = 0;
        for (double v : y64) maxY = Math.max(maxY, Math.abs(v));
        for (int j = 0; j < y32.length; j++) {
            double err = Math.abs(y32[j] - y64[j]);
            if (!(err <= atolFrac * maxY + 1e-12 + rtol * Math.abs(y64[j]))) {
                throw new AssertionError(what + ": forward output at flat index " + j + ": " + y32[j] + " vs float64 " + y64[j]);
            }
        }
        Report worst = null;
        int checked = 0;
        for (int i = 0; i < inputs.length; i++) {
            double[] num = new double[x64[i].length];
            double maxNum = 0;
            for (int j = 0; j < num.length; j++) {
                double keep = x64[i][j], h = 1e-6 * Math.max(1, Math.abs(keep));
                x64[i][j] = keep + h;
                double lp = dotR(ref.apply(x64), r);
                x64[i][j] = keep - h;
                double lm = dotR(ref.apply(x64), r);
                x64[i][j] = keep;
                num[j] = (lp - lm) / (2 * h);
                maxNum = Math.max(maxNum, Math.abs(num[j]));
            }
            Tensor g = vars[i].grad();
            float[] ana = g == null ? new float[num.length] : g.toFloatArray();
            double atol = atolFrac * maxNum + 1e-12;
            for (int j = 0; j < num.length; j++) {
                double err = Math.abs(ana[j] - num[j]);
                if (worst == null || err > worst.maxAbsErr()) worst = new Report(i, j, ana[j], num[j], err, 0);
                if (!(err <= atol + rtol * Math.abs(num[j]))) {
                    throw new AssertionError(what + ": gradient of input " + i + " " + Arrays.toString(inputs[i].shape()) + " at flat index " + j
                            + ": backward " + ana[j] + " vs float64 finite difference " + num[j] + " (|err| " + err + " > atol " + atol
                            + " + rtol " + rtol + "·|fd|)");
                }
                checked++;
            }
        }
        return new Report(worst.input(), worst.index(), worst.analytic(), worst.numeric(), worst.maxAbsErr(), checked);
    }

    private static double dotR(double[] y, float[] r) {
        double s = 0;
        for (int i = 0; i < y.length; i++) s += y[i] * r[i];
        return s;
    }
}
