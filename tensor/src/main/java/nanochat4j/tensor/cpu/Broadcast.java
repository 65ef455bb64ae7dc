package nanochat4j.tensor.cpu;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Binary elementwise ops (add, sub, mul, div) with NumPy broadcasting, and their gradient companion {@link #sumTo},
 * which sums a broadcast result back down to an operand's shape.
 * Shapes are right-aligned; each operand gets per-dim strides with 0 on broadcast dims, and the work is done one
 * output row (last dim) at a time, with a vector loop for each of the four stride patterns of the last dim.
 */
final class Broadcast {
    private Broadcast() {}

    static final int ADD = 0, SUB = 1, MUL = 2, DIV = 3;
    private static final VectorSpecies<Float> S = Vec.F;

    /** Row-major strides of {@code shape} aligned to {@code outShape}, with 0 on broadcast (size-1 or missing) dims. */
    static int[] strides(int[] shape, int[] outShape) {
        int r = outShape.length;
        int[] st = new int[r];
        int s = 1;
        for (int i = r - 1; i >= 0; i--) {
            int j = i - (r - shape.length);
            int d = j < 0 ? 1 : shape[j];
            st[i] = (d == 1 && outShape[i] != 1) || j < 0 ? 0 : s;
            s *= d;
        }
        return st;
    }

    // out[i] = a[i] op b[i] with broadcasting; out is contiguous with shape outShape.
    static void binary(int op, float[] a, int ao, int[] aShape, float[] b, int bo, int[] bShape,
                       float[] out, int oo, int[] outShape) {
        int r = outShape.length;
        int n = r == 0 ? 1 : outShape[r - 1];
        int total = 1;
        for (int d : outShape) total *= d;
        if (total == 0) return;
        int rows = total / n;
        int[] as = strides(aShape, outShape), bs = strides(bShape, outShape);
        int aLast = r == 0 ? 0 : as[r - 1], bLast = r == 0 ? 0 : bs[r - 1];
        if (r == 0) aLast = bLast = 0;
        final int fa = aLast, fb = bLast;
        Parallel.forRange(rows, Math.max(1, Elementwise.GRAIN / Math.max(n, 1)), (s, e) -> {
            for (int row = s; row < e; row++) {
                int aOff = ao, bOff = bo, rem = row;
                for (int d = r - 2; d >= 0; d--) {
                    int idx = rem % outShape[d];
                    rem /= outShape[d];
                    aOff += idx * as[d];
                    bOff += idx * bs[d];
                }
                row(op, a, aOff, fa, b, bOff, fb, out, oo + row * n, n);
            }
        });
    }

    /**
     * One output row; aS/bS are the last-dim strides (1, or 0 for a broadcast scalar). One loop per op: a vector
     * op chosen by a switch inside the loop merges the results at a branch, and C2 boxes merged vectors (a heap
     * allocation per lane group). The scalar tail also covers rows where both operands are broadcast.
     */
    private static void row(int op, float[] a, int ao, int aS, float[] b, int bo, int bS, float[] out, int oo, int n) {
        int i = switch (op) {
            case ADD -> add(a, ao, aS, b, bo, bS, out, oo, n);
            case SUB -> sub(a, ao, aS, b, bo, bS, out, oo, n);
            case MUL -> mul(a, ao, aS, b, bo, bS, out, oo, n);
            default -> div(a, ao, aS, b, bo, bS, out, oo, n);
        };
        for (; i < n; i++) out[oo + i] = apply(op, a[ao + aS * i], b[bo + bS * i]);
    }

    // Each returns how far its vector loop got; it does nothing when both operands are broadcast.
    private static int add(float[] a, int ao, int aS, float[] b, int bo, int bS, float[] out, int oo, int n) {
        int i = 0, ub = S.loopBound(n);
        if (aS == 1 && bS == 1) {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).add(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        } else if (aS == 1) {
            var y = FloatVector.broadcast(S, b[bo]);
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).add(y).intoArray(out, oo + i);
        } else if (bS == 1) {
            var x = FloatVector.broadcast(S, a[ao]);
            for (; i < ub; i += S.length()) x.add(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        }
        return i;
    }

    private static int sub(float[] a, int ao, int aS, float[] b, int bo, int bS, float[] out, int oo, int n) {
        int i = 0, ub = S.loopBound(n);
        if (aS == 1 && bS == 1) {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).sub(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        } else if (aS == 1) {
            var y = FloatVector.broadcast(S, b[bo]);
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).sub(y).intoArray(out, oo + i);
        } else if (bS == 1) {
            var x = FloatVector.broadcast(S, a[ao]);
            for (; i < ub; i += S.length()) x.sub(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        }
        return i;
    }

    private static int mul(float[] a, int ao, int aS, float[] b, int bo, int bS, float[] out, int oo, int n) {
        int i = 0, ub = S.loopBound(n);
        if (aS == 1 && bS == 1) {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).mul(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        } else if (aS == 1) {
            var y = FloatVector.broadcast(S, b[bo]);
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).mul(y).intoArray(out, oo + i);
        } else if (bS == 1) {
            var x = FloatVector.broadcast(S, a[ao]);
            for (; i < ub; i += S.length()) x.mul(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        }
        return i;
    }

    private static int div(float[] a, int ao, int aS, float[] b, int bo, int bS, float[] out, int oo, int n) {
        int i = 0, ub = S.loopBound(n);
        if (aS == 1 && bS == 1) {
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).div(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        } else if (aS == 1) {
            var y = FloatVector.broadcast(S, b[bo]);
            for (; i < ub; i += S.length()) FloatVector.fromArray(S, a, ao + i).div(y).intoArray(out, oo + i);
        } else if (bS == 1) {
            var x = FloatVector.broadcast(S, a[ao]);
            for (; i < ub; i += S.length()) x.div(FloatVector.fromArray(S, b, bo + i)).intoArray(out, oo + i);
        }
        return i;
    }

    private static float apply(int op, float x, float y) {
        return switch (op) {
            case ADD -> x + y;
            case SUB -> x - y;
            case MUL -> x * y;
            default -> x / y;
        };
    }

    /**
     * out (shape {@code toShape}, zeroed here) = x summed over every dim where toShape broadcasts to xShape.
     * Split over threads only when every x row has its own output row; otherwise one thread sums them all.
     */
    static void sumTo(float[] x, int xo, int[] xShape, float[] out, int oo, int[] toShape) {
        int r = xShape.length;
        int total = 1;
        for (int d : xShape) total *= d;
        int outTotal = 1;
        for (int d : toShape) outTotal *= d;
        java.util.Arrays.fill(out, oo, oo + outTotal, 0f);
        if (total == 0) return;
        if (outTotal == 1) {
            out[oo] = (float) Reduce.sumParallel(x, xo, total);
            return;
        }
        int n = r == 0 ? 1 : xShape[r - 1];
        int rows = total / n;
        int[] ts = strides(toShape, xShape);
        int tLast = r == 0 ? 0 : ts[r - 1];
        // rows of x map to distinct output rows when no leading dim is broadcast: then split rows over threads
        boolean injective = true;
        for (int d = 0; d < r - 1; d++) if (ts[d] == 0 && xShape[d] != 1) injective = false;
        Parallel.RangeBody body = (s, e) -> {
            for (int row = s; row < e; row++) {
                int tOff = oo, rem = row;
                for (int d = r - 2; d >= 0; d--) {
                    int idx = rem % xShape[d];
                    rem /= xShape[d];
                    tOff += idx * ts[d];
                }
                int xOff = xo + row * n;
                if (tLast == 1) {
                    int i = 0, ub = S.loopBound(n);
                    for (; i < ub; i += S.length()) {
                        FloatVector.fromArray(S, out, tOff + i).add(FloatVector.fromArray(S, x, xOff + i)).intoArray(out, tOff + i);
                    }
                    for (; i < n; i++) out[tOff + i] += x[xOff + i];
                } else {
                    out[tOff] += Reduce.sum(x, xOff, n);
                }
            }
        };
        if (injective) Parallel.forRange(rows, Math.max(1, Elementwise.GRAIN / Math.max(n, 1)), body);
        else body.run(0, rows);
    }
}
