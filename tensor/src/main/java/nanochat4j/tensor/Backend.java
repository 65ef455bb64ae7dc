package nanochat4j.tensor;

import java.util.List;
import nanochat4j.tensor.cpu.CpuBackend;

/**
 * THE seam between the model/autograd and the hardware: every operation the GPT, its backward pass, the optimizer
 * and inference need, as one method each. {@code CpuBackend} implements it with Vector API kernels; a CUDA backend
 * implements the same methods on device memory. Callers never branch on the device.
 *
 * <p>Conventions:
 * <ul>
 *   <li>Float tensors are F32; ids are I32. Ops return new tensors unless the name
 *       says otherwise ({@code …Into}, {@code axpy}, {@code embeddingBackward}, {@code narrowAssign} write into
 *       an argument).</li>
 *   <li>"rows" = all leading dims flattened, "last dim" = the dim an op works along.</li>
 *   <li>Bad input (shape mismatch, wrong dtype, out-of-range id, non-finite logits) throws
 *       {@link IllegalArgumentException} naming the op and the shapes.</li>
 *   <li>Backward methods return the gradient w.r.t. the inputs for the given upstream gradient {@code dy};
 *       those that accumulate into an existing gradient say so.</li>
 * </ul>
 */
public interface Backend {

    /** The CPU backend (one shared instance). */
    static Backend cpu() {
        return CpuBackend.INSTANCE;
    }

    /**
     * The backend that computes on {@code device}: the CPU backend, or the CUDA backend of GPU 0 (which throws
     * {@code CudaUnavailableException}, a one-line reason, where there is no usable GPU).
     */
    static Backend forDevice(Device device) {
        return switch (device) {
            case CPU -> CpuBackend.INSTANCE;
            case CUDA -> {
                Backend standIn = DeviceStandIn.cuda();
                yield standIn != null ? standIn : nanochat4j.tensor.cuda.CudaBackend.get();
            }
        };
    }

    /** Null when {@code device} can compute here, else the one-line reason (CUDA: no library, no driver, no GPU). */
    static String unavailableReason(Device device) {
        return switch (device) {
            case CPU -> null;
            case CUDA -> DeviceStandIn.cuda() != null ? null : nanochat4j.tensor.cuda.CudaContext.unavailableReason();
        };
    }

    /** The backend of the device {@code t} lives on: how callers dispatch without branching on the device. */
    static Backend of(Tensor t) {
        return forDevice(t.device());
    }

    Device device();

    /** What computes, for a run's log: the device, and for a GPU its name, architecture and driver. */
    default String describe() {
        return device().toString();
    }

    /** A zero-filled F32 tensor on this backend's device. */
    Tensor zeros(int... shape);

    /** Sets every element of {@code x} (on this backend's device) to zero in place (gradients between steps). */
    default void zero(Tensor x) {
        x.fill(0f);
    }

    /**
     * A copy of {@code x} on this backend's device (the tensor itself when it already lives there): the explicit
     * host → device move of a token batch or of loaded weights.
     */
    default Tensor upload(Tensor x) {
        if (x.device() != device()) {
            throw new IllegalArgumentException("upload: " + x + " cannot move to " + device() + " with this backend");
        }
        return x;
    }

    // ------------------------------------------------------------------ matmul

    /**
     * op(A)·op(B), batched over leading dims. a (..., m, k) or (..., k, m) when transA; b (..., k, n) or
     * (..., n, k) when transB. The leading dims of a and b must be equal, or one side is 2-d and is shared by the
     * whole batch. Result (..., m, n).
     */
    Tensor matmul(Tensor a, boolean transA, Tensor b, boolean transB);

    /**
     * {@link #matmul} at the precision this backend's linear layers run at: where they take bf16 operands (the CUDA
     * backend under bf16 matmuls) A and B are rounded to bf16 and multiplied with fp32 accumulation on the tensor
     * cores, as nanochat runs Muon's polar-express iterations in bf16 on CUDA; elsewhere the fp32 {@link #matmul}. The
     * result is fp32 either way.
     */
    default Tensor matmulAtPrecision(Tensor a, boolean transA, Tensor b, boolean transB) {
        return matmul(a, transA, b, transB);
    }

    /** y = x·Wᵀ: x (..., in), W (out, in) → (..., out). No bias. x may also be what {@link #relu2Operand} returned. */
    Tensor linear(Tensor x, Tensor w);

    /** dx = dy·W: dy (..., out), W (out, in) → (..., in). */
    Tensor linearBackwardInput(Tensor dy, Tensor w);

    /**
     * dW = dyᵀ·x (+ dW when accumulate): dy (..., out), x (..., in), dW (out, in). x may also be what
     * {@link #saveForBackward} returned (a bf16 copy where this backend keeps one, which its bf16 GEMM takes as it is).
     */
    void linearBackwardWeight(Tensor dy, Tensor x, Tensor dW, boolean accumulate);

    // ------------------------------------------------------------------ normalization, rotary

    /** eps of nanochat's rms_norm: fp32 machine epsilon (PyTorch's default for an fp32 input). */
    float RMS_EPS = 1.1920929e-7f;

    /**
     * y = scale·x/sqrt(mean(x²) + eps) over the last dim, no weight. QK-norm is scale = 1.2 over head dim. x may also
     * be what {@link #saveForBackward} returned (a backward recomputing a norm from its kept input).
     */
    Tensor rmsNorm(Tensor x, float scale);

    /** dx of {@link #rmsNorm} for upstream dy (recomputes the row statistics from x, which may be a saved copy as there). */
    Tensor rmsNormBackward(Tensor x, Tensor dy, float scale);

    /** {@link #rmsNorm}'s output y and each row's 1/rms = 1/sqrt(mean(x²) + eps), shaped (..., 1). */
    record NormOut(Tensor y, Tensor inv) {}

    /**
     * {@link #rmsNorm} keeping each row's 1/rms for {@link #rmsNormBackwardFromOutput}, so the backward needs y and not
     * x (the residual stream, which then goes back after the forward). The GPU makes both in one pass over x.
     */
    default NormOut rmsNormKeepingInv(Tensor x, float scale) {
        Tensor y = rmsNorm(x, scale);
        int[] s = x.shape();
        int d = s[s.length - 1];
        s[s.length - 1] = 1;
        Tensor zero = zeros(1), eps = clamp(zero, RMS_EPS, RMS_EPS);   // made where x is: no upload
        Tensor norms = rowNorms(x), sq = mul(norms, norms), ms = scale(sq, 1f / d), msEps = add(ms, eps);
        Tensor inv = rsqrt(msEps).reshape(s);
        for (Tensor t : new Tensor[] {zero, eps, norms, sq, ms, msEps}) Recycler.give(t);
        return new NormOut(y, inv);
    }

    /**
     * dx of {@link #rmsNorm} from its output y (..., D) and inv = 1/rms (..., 1) ({@link #rmsNormKeepingInv}):
     * inv·(scale·dy − y·Σ_D(dy·y)/(D·scale)). y may also be what {@link #saveForBackward} returned. The GPU does it in
     * one pass over dy and y.
     */
    default Tensor rmsNormBackwardFromOutput(Tensor dy, Tensor saved, Tensor inv, float scale) {
        Tensor y = savedValue(saved);
        int[] s = y.shape();
        int d = s[s.length - 1];
        s[s.length - 1] = 1;
        Tensor dyy = mul(dy, y);
        Tensor sum = sumToShape(dyy, s);
        Tensor coef = scale(sum, 1f / (d * scale));
        Tensor yc = mul(y, coef);
        Tensor diff = axpby(scale, dy, -1f, yc);
        Tensor dx = mul(diff, inv);
        for (Tensor t : new Tensor[] {dyy, sum, coef, yc, diff}) Recycler.give(t);
        if (y != saved) Recycler.give(y);
        return dx;
    }

    /** cos/sin tables (maxT, headDim/2) with angle(t, i) = t·base^(−2i/headDim), computed in fp32 like nanochat. */
    RotaryTables rotaryTables(int maxT, int headDim, double base);

    /**
     * Rotary embedding, halves layout, rotation by −θ: x (B, T, H, D), positions offset..offset+T−1 read from
     * cos/sin (Tmax, D/2): y1 = x1·cos + x2·sin, y2 = −x1·sin + x2·cos.
     */
    Tensor rotary(Tensor x, Tensor cos, Tensor sin, int offset);

    /** dx of {@link #rotary}: rotation by +θ of dy. */
    Tensor rotaryBackward(Tensor dy, Tensor cos, Tensor sin, int offset);

    /**
     * QK-norm after RoPE: rms_norm(rotary(x))·scale over each head (x (B,T,H,D)) and, with {@code keepInv}, each head's
     * 1/rms ((B,T,H,1)) for {@link #rotaryRmsNormBackward} (else null). The GPU does it in one pass over x, without the
     * rotated tensor in between.
     */
    default NormOut rotaryRmsNorm(Tensor x, Tensor cos, Tensor sin, int offset, float scale, boolean keepInv) {
        Tensor r = rotary(x, cos, sin, offset);
        NormOut n = keepInv ? rmsNormKeepingInv(r, scale) : new NormOut(rmsNorm(r, scale), null);
        Recycler.give(r);
        return n;
    }

    /**
     * dx of {@link #rotaryRmsNorm} from its output y (or what {@link #saveForBackward} returned for it) and 1/rms:
     * rotation by +θ of rms_norm's gradient from the output.
     */
    default Tensor rotaryRmsNormBackward(Tensor dy, Tensor y, Tensor inv, Tensor cos, Tensor sin, int offset, float scale) {
        Tensor dr = rmsNormBackwardFromOutput(dy, y, inv, scale);
        Tensor dx = rotaryBackward(dr, cos, sin, offset);
        Recycler.give(dr);
        return dx;
    }

    // ------------------------------------------------------------------ activations

    /** relu(x)². */
    Tensor relu2(Tensor x);

    /** dx = 2·relu(x)·dy. x may also be what {@link #saveForBackward} returned. */
    Tensor relu2Backward(Tensor x, Tensor dy);

    /**
     * relu(x)² as the GEMM that takes it next reads it ({@link #linear}, {@link #linearBackwardWeight}): bf16 where this
     * backend's linear layers read bf16 (a GPU under bf16 matmuls: the MLP's hidden layer in one pass, not an fp32
     * result and then its cast; the same bits), else fp32. x may also be what {@link #saveForBackward} returned.
     */
    default Tensor relu2Operand(Tensor x) {
        Tensor xv = savedValue(x);
        Tensor y = relu2(xv);
        if (xv != x) Recycler.give(xv);
        return y;
    }

    /** 1/(1+exp(−x)). */
    Tensor sigmoid(Tensor x);

    /** dx = dy·y·(1−y) from the forward output y. */
    Tensor sigmoidBackward(Tensor y, Tensor dy);

    /** cap·tanh(x/cap) (nanochat's logit softcap, cap = 15). */
    Tensor softcap(Tensor x, float cap);

    /** dx = dy·(1 − tanh²(x/cap)). */
    Tensor softcapBackward(Tensor x, Tensor dy, float cap);

    // ------------------------------------------------------------------ elementwise with broadcasting

    /** a + b with NumPy broadcasting (shapes right-aligned; a dim of 1 or a missing dim broadcasts). */
    Tensor add(Tensor a, Tensor b);

    /** a·b with broadcasting. */
    Tensor mul(Tensor a, Tensor b);

    /** a / b with broadcasting. */
    Tensor div(Tensor a, Tensor b);

    /** sqrt(x). */
    Tensor sqrt(Tensor x);

    /** 1/sqrt(x). */
    Tensor rsqrt(Tensor x);

    /** Sums x down to {@code shape} (the inverse of broadcasting {@code shape} up to x's shape): the gradient of a broadcast operand. */
    Tensor sumToShape(Tensor x, int... shape);

    /** s·x. */
    Tensor scale(Tensor x, float s);

    /** y += alpha·x in place (gradient accumulation). */
    void axpy(float alpha, Tensor x, Tensor y);

    /** a·x + b·y (new tensor). */
    Tensor axpby(float a, Tensor x, float b, Tensor y);

    /** y = a·x + b·x0 where a and b are one-element tensors (nanochat's per-layer resid/x0 lambdas). */
    Tensor lambdaMix(Tensor a, Tensor x, Tensor b, Tensor x0);

    /**
     * Gradients of {@link #lambdaMix}: dA = Σ dy·x, dx = a·dy, dB = Σ dy·x0, dx0 = b·dy (dA/dB have a's/b's shape).
     * x and x0 as the forward kept them: fp32, or what {@link #saveForBackward} made of them.
     */
    MixGrads lambdaMixBackward(Tensor dy, Tensor a, Tensor x, Tensor b, Tensor x0);

    /** torch.lerp(a, b, w) = a + w·(b−a) for |w| < 0.5, else b − (b−a)·(1−w). */
    Tensor lerp(Tensor a, Tensor b, float w);

    /** min(max(x, lo), hi). */
    Tensor clamp(Tensor x, float lo, float hi);

    // ------------------------------------------------------------------ reductions

    /** Σ a·b over all elements (same shapes). */
    Tensor dot(Tensor a, Tensor b);

    /** sqrt(Σ x²) over the last dim: (..., n) → (...). */
    Tensor rowNorms(Tensor x);

    /** Index of the first maximum over the last dim: (..., n) → (...) I32. */
    Tensor argmax(Tensor x);

    // ------------------------------------------------------------------ layout (copies)

    /** x[..., start:start+length, ...] along {@code dim} (negative counts from the end), as a copy. */
    Tensor narrow(Tensor x, int dim, int start, int length);

    /** Backward of {@link #narrow}: dy placed at [start, start+len) of a zero tensor whose {@code dim} has size fullSize. */
    Tensor narrowBackward(Tensor dy, int dim, int start, int fullSize);

    /** Concatenation along {@code dim}. */
    Tensor concat(int dim, Tensor... parts);

    /** dst[..., start:start+src.shape(dim), ...] = src along {@code dim}, in place (KV-cache insert). */
    void narrowAssign(Tensor dst, int dim, int start, Tensor src);

    // ------------------------------------------------------------------ embedding

    /** table (V, E) gathered by ids (any shape, I32) → (ids..., E); ids out of [0, V) throw. */
    Tensor embedding(Tensor table, Tensor ids);

    /** dTable[ids[i]] += dy[i] (scatter-add into the existing gradient). */
    void embeddingBackward(Tensor dy, Tensor ids, Tensor dTable);

    // ------------------------------------------------------------------ attention

    /**
     * Causal GQA attention with a left window, flash-style: q (B,T,H,D), k/v (B,T,KV,D) → y (B,T,H,D) and the
     * per-row log-sum-exp lse (B,H,T) for the backward. Key j visible to query i iff j ≤ i and (window < 0 or
     * i − j ≤ window); query head h uses kv head h/(H/KV).
     */
    AttentionOut attention(Tensor q, Tensor k, Tensor v, int window, float scale);

    /**
     * dq, dk, dv of {@link #attention}. q, k, v and y may also be what {@link #saveForBackward} returned (bf16 copies where
     * this backend keeps them, which its tensor-core kernels read as they are).
     */
    AttentionGrads attentionBackward(Tensor q, Tensor k, Tensor v, Tensor y, Tensor lse, Tensor dy, int window, float scale);

    /**
     * Attention of q (B,Tq,H,D) at absolute positions pos..pos+Tq−1 over KV caches (B,Tmax,KV,D) holding keys
     * 0..pos+Tq−1 (prefill and decode) → y (B,Tq,H,D).
     */
    Tensor attentionCached(Tensor q, Tensor kCache, Tensor vCache, int pos, int window, float scale);

    // ------------------------------------------------------------------ loss

    /**
     * Softcap + cross-entropy over logits (N, V) against targets (N) (I32; −1 = ignored), fused forward and
     * backward. cap ≤ 0 disables the softcap. loss: 0-d for MEAN (over the non-ignored rows) and SUM, (N) for
     * NONE (0 where ignored). With withGrad, dlogits (N, V) is the gradient for upstream gradient 1 (per row for
     * NONE); else null. All rows ignored: loss 0 and zero gradient (PyTorch gives NaN for MEAN; we define 0 so a
     * fully masked batch cannot poison training). Non-finite logits throw.
     */
    Loss crossEntropy(Tensor logits, Tensor targets, float cap, Reduction reduction, boolean withGrad);

    /**
     * The lm_head + softcap + cross-entropy without ever holding the (N, vocab) logits: x (N, C), W (Vpad, C),
     * targets (N). Loops over row chunks: logits = x_c·Wᵀ → crop to vocab → softcap → CE → dlogits → dx_c =
     * dlogits·W, dW += dlogitsᵀ·x_c. Returns the loss (as {@link #crossEntropy}) and, with withGrad, dx (N, C) and
     * dW (Vpad, C) for upstream gradient 1 (the autograd node scales them).
     */
    LinearLoss linearSoftcapCrossEntropy(Tensor x, Tensor w, Tensor targets, int vocab, float cap,
                                         Reduction reduction, boolean withGrad);

    /**
     * Gradients of Σ_i rowGrad_i·loss_i for the per-row losses of {@link #linearSoftcapCrossEntropy} (reduction
     * NONE with a non-uniform upstream gradient); recomputes the logits chunk by chunk. Also returns the losses (N).
     */
    LinearLoss linearSoftcapCrossEntropyBackward(Tensor x, Tensor w, Tensor targets, int vocab, float cap, Tensor rowGrad);

    // ------------------------------------------------------------------ optimizer state on the device

    /**
     * nanochat's fused AdamW step in place over p, its gradient g and its moments m, v (equal element counts), for
     * optimizer state that lives with the parameters on this device; the scalars made on the host
     * ({@code AdamW.Scalars}). The CPU runs {@link nanochat4j.tensor.cpu.AdamWKernel}, CUDA optim.cu's adamw_f32,
     * which rounds as it does.
     */
    void adamw(Tensor p, Tensor g, Tensor m, Tensor v, float decay, float w1, float w2, float bias2, float eps, float stepSize);

    /**
     * Muon's cautious update of one matrix in place, u its NorMuon-scaled orthogonalised update (equal element
     * counts): p ← p − (lr·u + [u·p ≥ 0]·lrWd·p), rounded as the CPU Muon.update.
     */
    default void muonCautious(Tensor p, Tensor u, float lr, float lrWd) {
        OpChecks.sameCount("muonCautious", p, u);
        float[] pa = p.floats(), ua = u.floats();
        int po = p.offset(), uo = u.offset();
        for (int i = 0; i < p.numel(); i++) {
            float pi = pa[po + i], ui = ua[uo + i];
            float decay = ui * pi >= 0f ? lrWd * pi : 0f;
            pa[po + i] = pi - (lr * ui + decay);
        }
    }

    // ------------------------------------------------------------------ dtype

    /** Round-to-nearest-even conversion to BF16 storage. */
    Tensor toBf16(Tensor x);

    /**
     * An activation that a backward pass reads at bf16 precision only, as it is kept until then: where activations are
     * bf16 (the CUDA backend under bf16 matmuls: nanochat's autocast keeps the MLP's hidden layer in bf16) a bf16
     * copy, half the memory, which the caller keeps instead of x; everywhere else x itself. Either way the caller owns
     * the result (it may give it back).
     */
    default Tensor saveForBackward(Tensor x) {
        return x;
    }

    /** The fp32 values of what {@link #saveForBackward} returned: that tensor when it is fp32, else a new fp32 tensor (the caller's). */
    default Tensor savedValue(Tensor saved) {
        return saved;
    }

    // ------------------------------------------------------------------ recorded work (CUDA graphs)

    /**
     * Device work recorded once and replayed whole: on a GPU a CUDA graph, which queues all of a decode step's kernels
     * with one call instead of a launch each (~4 µs of host time apiece from Java, more than most of those kernels run).
     */
    interface Recording extends AutoCloseable {
        /**
         * Queues the recorded work again; false, queuing nothing, when what it was recorded against has changed since
         * (a weight it read through a bf16 copy was written, the matmul precision was set): record it anew.
         */
        boolean replay();

        /** Gives the recording and its buffers back. */
        @Override
        void close();
    }

    /**
     * Records the device work {@code work} queues, without running it (its host side runs now, once), for
     * {@link Recording#replay}: what it allocates stays the recording's, and it must not read results on the host.
     * The values the work depends on at replay are those in device memory — positions through the {@code …At} ops
     * below. Null where this backend records nothing (the CPU runs work as it is issued).
     */
    default Recording record(Runnable work) {
        return null;
    }

    /**
     * {@link #rotaryRmsNorm}'s output (no 1/rms) at positions offset.. where offset is the int32 scalar {@code offset} on
     * this device, read when the work runs.
     */
    default Tensor rotaryRmsNormAt(Tensor x, Tensor cos, Tensor sin, Tensor offset, float scale) {
        return rotaryRmsNorm(x, cos, sin, offset.toIntArray()[0], scale, false).y();
    }

    /** {@link #narrowAssign} at the start held by the int32 scalar {@code start} on this device, read when the work runs. */
    default void narrowAssignAt(Tensor dst, int dim, Tensor start, Tensor src) {
        narrowAssign(dst, dim, start.toIntArray()[0], src);
    }

    /**
     * {@link #attentionCached} of a decode step (q (B,1,H,D)) at the position held by the int32 scalar {@code pos} on
     * this device, read when the work runs.
     */
    default Tensor attentionCachedAt(Tensor q, Tensor kCache, Tensor vCache, Tensor pos, int window, float scale) {
        if (q.rank() != 4 || q.shape(1) != 1) throw new IllegalArgumentException("attentionCachedAt: a decode step's q is (B, 1, H, D), got " + q);
        return attentionCached(q, kCache, vCache, pos.toIntArray()[0], window, scale);
    }

    /** Adds {@code by} to the int32 scalar {@code counter} on this device, in order with the work queued around it. */
    default void addToInt(Tensor counter, int by) {
        if (counter.dtype() != DType.I32 || counter.numel() != 1 || counter.isOnDevice()) {
            throw new IllegalArgumentException("addToInt: " + counter + " is not a host int32 scalar");
        }
        counter.ints()[counter.offset()] += by;
    }

    // ------------------------------------------------------------------ results

    /**
     * The memory of a backend whose tensors live in device memory, now and at its peaks, or null for the CPU's (the
     * process's resident set measures that).
     */
    default DeviceMemory deviceMemory() {
        return null;
    }

    /**
     * A device allocator's bytes: owned by tensors now and at the peak (as PyTorch's max_memory_allocated, which nanochat
     * prints, but in the pool's bucket sizes, and counting tensors dead but not yet collected), taken from the driver now
     * and at the peak (what nvidia-smi sees of this process besides the CUDA context, cuBLAS's workspace and the
     * kernels' code), and how often a full device made it hand its pool back and wait for a GC to find dead tensors (each
     * such flush stalls a step; a run that flushes every few steps holds memory that only the GC gives back).
     */
    record DeviceMemory(long inUse, long peakInUse, long reserved, long peakReserved, long flushes) {
        /** One line for a run's log, in GiB. */
        public String line() {
            return String.format(java.util.Locale.ROOT, "Peak device memory: %.2f GiB in tensors, %.2f GiB reserved from the driver; %d pool flush%s",
                    peakInUse / GIB, peakReserved / GIB, flushes, flushes == 1 ? "" : "es");
        }

        private static final double GIB = 1024.0 * 1024 * 1024;
    }

    /**
     * Starts timing every kernel this backend queues, for {@link #stopProfile}: a GPU backend's (CUDA events around each
     * launch); false where there is nothing to time that way (the CPU backend runs its ops as they are called).
     */
    default boolean startProfile() {
        return false;
    }

    /** Waits for the work queued since {@link #startProfile} and returns its device time by kernel, the longest first. */
    default List<KernelTime> stopProfile() {
        return List.of();
    }

    /** A kernel's (or cuBLAS call's) share of a profiled stretch: how often it ran and its milliseconds in all. */
    record KernelTime(String name, int calls, double ms) {
        /** The device's busy milliseconds over a profile: every kernel's time summed. */
        public static double totalMs(List<KernelTime> times) {
            return times.stream().mapToDouble(KernelTime::ms).sum();
        }

        /** The launches of a profile. */
        public static int totalCalls(List<KernelTime> times) {
            return times.stream().mapToInt(KernelTime::calls).sum();
        }
    }

    record RotaryTables(Tensor cos, Tensor sin) {}

    record MixGrads(Tensor da, Tensor dx, Tensor db, Tensor dx0) {}

    record AttentionOut(Tensor y, Tensor lse) {}

    record AttentionGrads(Tensor dq, Tensor dk, Tensor dv) {}

    record Loss(Tensor loss, Tensor dlogits) {}

    record LinearLoss(Tensor loss, Tensor dx, Tensor dW) {}
}
