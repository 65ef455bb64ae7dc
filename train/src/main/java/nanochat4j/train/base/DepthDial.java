package nanochat4j.train.base;

import nanochat4j.model.gpt.GPTConfig;

/**
 * base_train's one dial: from --depth and the shape flags, everything else.
 * <ol>
 *   <li>model: C = ceil(depth·aspect/head_dim)·head_dim, heads = C/head_dim ({@link GPTConfig#fromDepth});</li>
 *   <li>horizon: target_tokens = int(ratio·scaling_params), scaling_params = transformer matrices + lm_head;</li>
 *   <li>reference point: D_REF = ratio·scaling_params of a d12 with the same shape flags, B_REF = 2^19 tokens;</li>
 *   <li>batch (when −1, the Power-Lines rule): B = 2^round(log2(B_REF·(target_tokens/D_REF)^0.383));</li>
 *   <li>LR scale sqrt(B/B_REF) for the embedding, unembedding, matrix and scalar LRs;</li>
 *   <li>weight decay (T_epoch rule): wd·sqrt(B/B_REF)·D_REF/target_tokens (D_REF not truncated; with a negative
 *       ratio both are negative and the signs cancel);</li>
 *   <li>iterations: --num-iterations &gt; 0, else --target-flops &gt; 0 → round(flops/(flops_per_token·B)), else
 *       ratio &gt; 0 → target_tokens // B.</li>
 * </ol>
 *
 * @param totalBatch   tokens per optimizer step (B)
 * @param batchLrScale sqrt(B/B_REF)
 * @param weightDecay  the scaled Muon weight decay
 */
public record DepthDial(GPTConfig config, long scalingParams, long targetTokens, double dRef, long totalBatch,
                        double batchLrScale, double weightDecay, int numIterations, long flopsPerToken) {
    public static final long B_REF = 1L << 19;
    public static final int REFERENCE_DEPTH = 12;

    /** The dial for base-train's options {@code o} and a tokenizer of {@code vocabSize} tokens. */
    public static DepthDial derive(BaseTrainOptions o, int vocabSize) {
        GPTConfig config = GPTConfig.fromDepth(o.depth, o.aspectRatio, o.headDim, o.maxSeqLen, o.windowPattern, vocabSize);
        long scaling = config.numScalingParams().scaling();
        long targetTokens = (long) (o.targetParamDataRatio * scaling); // Python int(): truncation toward zero
        GPTConfig ref = GPTConfig.fromDepth(REFERENCE_DEPTH, o.aspectRatio, o.headDim, o.maxSeqLen, o.windowPattern, vocabSize);
        double dRef = o.targetParamDataRatio * ref.numScalingParams().scaling();
        long batch = o.totalBatchSize;
        if (batch == -1) {
            double ideal = B_REF * Math.pow(targetTokens / dRef, 0.383);
            batch = 1L << (long) Math.rint(Math.log(ideal) / Math.log(2));
        } else if (batch <= 0) {
            throw new IllegalArgumentException("--total-batch-size must be positive, or -1 to derive it: " + o.totalBatchSize);
        }
        double lrScale = batch == B_REF ? 1.0 : Math.sqrt(batch / (double) B_REF);
        double wd = o.weightDecay * Math.sqrt(batch / (double) B_REF) * (dRef / targetTokens);
        long flopsPerToken = config.estimateFlops();
        int iters;
        if (o.numIterations > 0) {
            iters = o.numIterations;
        } else if (o.targetFlops > 0) {
            iters = (int) Math.rint(o.targetFlops / ((double) flopsPerToken * batch));
        } else if (o.targetParamDataRatio > 0) {
            iters = (int) (targetTokens / batch);
        } else {
            throw new IllegalArgumentException("no training horizon: give --num-iterations, --target-flops or a positive --target-param-data-ratio");
        }
        if (iters < 1) {
            throw new IllegalArgumentException("the training horizon is " + iters + " steps (target tokens " + targetTokens
                    + ", batch " + batch + "): give --num-iterations");
        }
        return new DepthDial(config, scaling, targetTokens, dRef, batch, lrScale, wd, iters, flopsPerToken);
    }
}
