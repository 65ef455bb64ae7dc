package nanochat4j.train.base;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * What base-train's loop carries from one step to the next besides the model, the optimizer and the data position:
 * the step, the best val bpb so far, the EMA of the train loss and the training time (steps after the 10th, so the
 * JIT's warm-up is left out). A checkpoint stores it, so a resumed run logs and decides exactly as one that never
 * stopped.
 */
record LoopState(int step, double minValBpb, double smoothLoss, double trainingTime) {

    static LoopState fresh() {
        return new LoopState(0, Double.POSITIVE_INFINITY, 0, 0);
    }

    LoopState withValBpb(double bpb) {
        return new LoopState(step, Math.min(minValBpb, bpb), smoothLoss, trainingTime);
    }

    /** The state after this step trained with raw loss {@code loss} in {@code dt} seconds (EMA β 0.9). */
    LoopState after(float loss, double dt) {
        return new LoopState(step + 1, minValBpb, 0.9 * smoothLoss + 0.1 * loss, step > 10 ? trainingTime + dt : trainingTime);
    }

    /** The loss EMA corrected for its start at 0 (nanochat's debiased smooth loss). */
    double debiasedLoss() {
        return smoothLoss / (1 - Math.pow(0.9, step));
    }

    /** Seconds left for the steps up to {@code total}, from the timed steps so far; NaN until there are some. */
    double etaSeconds(int total) {
        return step > 11 ? trainingTime / (step - 11) * (total - step) : Double.NaN;
    }

    /** As the meta file's {@code loop_state}: strings, so that ∞ (no evaluation yet) and every bit of a double survive JSON. */
    Map<String, Object> toMeta() {
        Map<String, Object> loop = new LinkedHashMap<>();
        loop.put("min_val_bpb", Double.toString(minValBpb));
        loop.put("smooth_train_loss", Double.toString(smoothLoss));
        loop.put("total_training_time", Double.toString(trainingTime));
        return loop;
    }

    static LoopState fromMeta(Object loopState, int step) {
        if (!(loopState instanceof Map<?, ?> loop)) throw new IllegalArgumentException("checkpoint meta lacks its loop_state");
        return new LoopState(step, number(loop, "min_val_bpb"), number(loop, "smooth_train_loss"), number(loop, "total_training_time"));
    }

    private static double number(Map<?, ?> loop, String key) {
        Object v = loop.get(key);
        if (v == null) throw new IllegalArgumentException("checkpoint meta lacks the loop_state value " + key);
        return Double.parseDouble(v.toString());
    }
}
