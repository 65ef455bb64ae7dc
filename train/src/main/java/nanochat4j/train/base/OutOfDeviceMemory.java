package nanochat4j.train.base;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.regex.Pattern;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.tensor.cuda.CudaOutOfMemoryException;

/**
 * A device allocation that failed anywhere in a base-train run (model set-up, forward, backward, gradient reduce,
 * optimizer, evaluation, checkpoint copy) as one message a user can act on: what was running, the bytes asked for,
 * free and total device memory, the flag to lower, and the last complete checkpoint, which the failure cannot have
 * touched: every checkpoint file is written to a temp file and renamed, and the meta file, which makes a step
 * loadable, is written last.
 */
final class OutOfDeviceMemory {
    private static final Pattern META_FILE = Pattern.compile("meta_(\\d+)\\.json");

    private OutOfDeviceMemory() {}

    /** The phase that creates the model and its optimizer state, before any activation exists. */
    static final String SETUP = "creating the model and optimizer";

    /**
     * Device bytes a parameter holds before any activation: its fp32 weight and gradient, and the optimizer state
     * (AdamW's two moments; Muon's momentum and the bf16 weight copy the GEMMs read come to less).
     */
    static final long BYTES_PER_PARAMETER = 16;

    /**
     * The message for {@code e}, raised while {@code during} ran ("the optimizer step of step 12"); {@code rank} is
     * named when {@code world} > 1. While the model of {@code parameters} is being set up the batch is not the cause:
     * the advice is a smaller model.
     */
    static IllegalStateException explain(CudaOutOfMemoryException e, String during, int rank, int world, int deviceBatchSize,
                                         int maxSeqLen, long parameters, Path ckptDir) {
        String who = world > 1 ? "rank " + rank + ": " : "";
        String advice = during.startsWith(SETUP)
                ? String.format(Locale.ROOT, "the model alone needs about %s (its %,d parameters' fp32 weights, gradients and optimizer state, ~%d bytes "
                        + "each) before any activation: use a smaller --depth (--device-batch-size does not change this)",
                        CudaOutOfMemoryException.human(parameters * BYTES_PER_PARAMETER), parameters, BYTES_PER_PARAMETER)
                : deviceBatchSize > 1
                ? "rerun with a smaller --device-batch-size (e.g. " + Math.max(1, deviceBatchSize / 2)
                        + "; gradient accumulation keeps the total batch)"
                : "--device-batch-size is already 1: use a shorter --max-seq-len or a smaller model";
        String msg = String.format(Locale.ROOT,
                "%sout of GPU memory during %s: %s with %s free of %s on the device (device batch %d × %d tokens); %s; %s",
                who, during, e.requested() >= 0 ? "allocating " + CudaOutOfMemoryException.human(e.requested()) + " failed"
                        : e.what() + " failed for lack of memory", CudaOutOfMemoryException.human(e.free()),
                CudaOutOfMemoryException.human(e.total()), deviceBatchSize, maxSeqLen, advice, lastCheckpoint(ckptDir));
        return new IllegalStateException(msg, e);
    }

    /** Where a rerun can resume from: the last step whose meta file (written last, atomically) is on disk. */
    static String lastCheckpoint(Path ckptDir) {
        long step;
        try {
            step = Checkpoint.largestStep(ckptDir, META_FILE);
        } catch (IOException ex) {
            return "the checkpoints in " + ckptDir + " could not be listed (" + ex.getMessage() + ")";
        }
        if (step < 0) return "no checkpoint had been saved yet in " + ckptDir;
        return "the last checkpoint on disk, step " + step + " (" + Checkpoint.metaFile(ckptDir, step)
                + "), is intact (saves are atomic, meta file last): resume with --resume-from-step=" + step;
    }
}
