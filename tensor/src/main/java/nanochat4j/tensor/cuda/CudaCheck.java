package nanochat4j.tensor.cuda;

import java.util.Locale;
import java.util.Random;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;

/**
 * {@code java -cp nanochat4j.jar nanochat4j.tensor.cuda.CudaCheck [probe|bench]}: the GPU machine's first look.
 * {@code probe} prints the device and where each library came from, or the one-line reason CUDA is unusable
 * (exit 3). {@code bench} times, with CUDA events: launch overhead of a tiny kernel, cuBLAS fp32 SGEMM and bf16
 * GemmEx (fp32 accumulation) at 4096³, and our attention forward/backward at T=2048, head dim 128 (FLOPs counted
 * as nanochat does: 4·T²·D·H per layer forward, causal half, backward 2.5×). One JSON object per line on stdout.
 */
public final class CudaCheck {
    private CudaCheck() {}

    public static void main(String[] args) {
        String mode = args.length > 0 ? args[0] : "probe";
        String why = CudaContext.unavailableReason();
        if (why != null) {
            System.out.println(json("probe", "ok", false, "reason", why));
            System.err.println(why);
            System.exit(3);
        }
        CudaContext ctx = CudaContext.get();
        long[] mem = ctx.driver().memoryInfo();
        System.out.println(json("probe", "ok", true, "device", ctx.describe(), "driver_lib", ctx.driver().from(),
                "free_bytes", mem[0], "total_bytes", mem[1]));
        if (mode.equals("bench")) bench(ctx);
    }

    private static void bench(CudaContext ctx) {
        try (StreamTimer timer = new StreamTimer(ctx.driver(), ctx.stream())) {
            bench(ctx, timer);
        }
    }

    private static void bench(CudaContext ctx, StreamTimer timer) {
        CudaBackend be = CudaBackend.get();
        // launch overhead: a 1-element axpy, back to back
        Tensor one = be.zeros(1);
        for (int i = 0; i < 200; i++) be.axpy(1f, one, one);
        int launches = 5000;
        long t0 = System.nanoTime();
        double launchMs = timer.ms(() -> {
            for (int i = 0; i < launches; i++) be.axpy(1f, one, one);
        });
        double hostUs = (System.nanoTime() - t0) / 1e3 / launches;
        System.out.println(json("bench", "op", "launch_axpy_1", "us_per_launch_host", hostUs,
                "us_per_launch_gpu", launchMs * 1e3 / launches));
        // cuBLAS fp32 and bf16
        int n = 4096;
        Random r = new Random(1);
        Tensor a = be.upload(rand(r, n, n)), b = be.upload(rand(r, n, n));
        Tensor c = be.zeros(n, n);
        Cublas blas = ctx.cublas();
        int reps = 10;
        blas.sgemm(Cublas.OP_N, Cublas.OP_N, n, n, n, 1f, a.deviceAddress(), n, b.deviceAddress(), n, 0f, c.deviceAddress(), n);
        timer.start();
        for (int i = 0; i < reps; i++) {
            blas.sgemm(Cublas.OP_N, Cublas.OP_N, n, n, n, 1f, a.deviceAddress(), n, b.deviceAddress(), n, 0f, c.deviceAddress(), n);
        }
        double ms = timer.stopMs() / reps;
        System.out.println(json("bench", "op", "sgemm_fp32_4096", "ms", ms, "tflops", 2.0 * n * n * n / (ms * 1e-3) / 1e12));
        Tensor ah = be.toBf16(a), bh = be.toBf16(b);
        blas.gemmEx(Cublas.OP_N, Cublas.OP_N, n, n, n, 1f, ah.deviceAddress(), Cublas.R_16BF, n, bh.deviceAddress(), Cublas.R_16BF, n,
                0f, c.deviceAddress(), Cublas.R_32F, n, Cublas.COMPUTE_32F);
        timer.start();
        for (int i = 0; i < reps; i++) {
            blas.gemmEx(Cublas.OP_N, Cublas.OP_N, n, n, n, 1f, ah.deviceAddress(), Cublas.R_16BF, n, bh.deviceAddress(), Cublas.R_16BF, n,
                    0f, c.deviceAddress(), Cublas.R_32F, n, Cublas.COMPUTE_32F);
        }
        ms = timer.stopMs() / reps;
        System.out.println(json("bench", "op", "gemmex_bf16_fp32acc_4096", "ms", ms, "tflops", 2.0 * n * n * n / (ms * 1e-3) / 1e12));
        // attention, nanochat d12-like: B=4, T=2048, H=6 (heads of 128), full causal
        int bsz = 4, t = 2048, h = 6, d = 128;
        Tensor q = be.upload(rand(r, bsz, t, h, d)), k = be.upload(rand(r, bsz, t, h, d)), v = be.upload(rand(r, bsz, t, h, d));
        float scale = (float) (1 / Math.sqrt(d));
        Backend.AttentionOut out = be.attention(q, k, v, -1, scale);
        timer.start();
        for (int i = 0; i < 3; i++) out = be.attention(q, k, v, -1, scale);
        double fwdMs = timer.stopMs() / 3;
        double fwdFlops = 4.0 * bsz * h * (double) t * t * d / 2; // causal: half the score matrix
        System.out.println(json("bench", "op", "attention_fwd_fp32_T2048_D128", "ms", fwdMs, "tflops", fwdFlops / (fwdMs * 1e-3) / 1e12));
        Tensor dy = be.upload(rand(r, bsz, t, h, d));
        be.attentionBackward(q, k, v, out.y(), out.lse(), dy, -1, scale);
        timer.start();
        for (int i = 0; i < 3; i++) be.attentionBackward(q, k, v, out.y(), out.lse(), dy, -1, scale);
        double bwdMs = timer.stopMs() / 3;
        System.out.println(json("bench", "op", "attention_bwd_fp32_T2048_D128", "ms", bwdMs, "tflops", 2.5 * fwdFlops / (bwdMs * 1e-3) / 1e12));
        // decode: one query over a 2048-long cache
        Tensor q1 = be.upload(rand(r, 1, 1, h, d));
        be.attentionCached(q1, k.slice(0, 1), v.slice(0, 1), t - 1, -1, scale);
        timer.start();
        for (int i = 0; i < 100; i++) be.attentionCached(q1, k.slice(0, 1), v.slice(0, 1), t - 1, -1, scale);
        System.out.println(json("bench", "op", "attention_decode_fp32_T2048_D128_H6", "us", timer.stopMs() * 1e3 / 100));
    }

    private static Tensor rand(Random r, int... shape) {
        float[] a = new float[Tensor.numel(shape)];
        for (int i = 0; i < a.length; i++) a[i] = (float) r.nextGaussian();
        return Tensor.of(a, shape);
    }

    /** A flat JSON object from key, value pairs (strings quoted and escaped, numbers as is). */
    static String json(String kind, Object... kv) {
        StringBuilder sb = new StringBuilder("{\"kind\":\"").append(kind).append('"');
        for (int i = 0; i + 1 < kv.length; i += 2) {
            sb.append(",\"").append(kv[i]).append("\":");
            Object v = kv[i + 1];
            if (v instanceof Number || v instanceof Boolean) {
                sb.append(v instanceof Double dd ? String.format(Locale.ROOT, "%.4f", dd) : v.toString());
            } else {
                sb.append('"').append(String.valueOf(v).replace("\\", "\\\\").replace("\"", "\\\"")).append('"');
            }
        }
        return sb.append('}').toString();
    }

}
