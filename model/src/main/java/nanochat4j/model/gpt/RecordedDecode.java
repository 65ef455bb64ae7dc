package nanochat4j.model.gpt;

import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Tensor;

/**
 * A KV cache's decode step on a GPU, recorded once ({@link Backend#record}: a CUDA graph) and replayed for each later
 * token, so the step's few hundred kernels are queued by one call instead of a launch each (~4 µs of host time apiece
 * from Java, more than most of a decode step's kernels run on the device). What changes from step to step is read from
 * device memory by the recorded kernels: the B token ids, copied up before each replay, and the position, which the
 * step adds one to as its last kernel — so a step still moves only its ids up and its logits down. The host keeps
 * track of the position the device holds and copies the cache's up only when they differ (the cache was refilled).
 */
final class RecordedDecode implements AutoCloseable {
    private final Tensor ids;      // (B,1) I32 on the device
    private final Tensor pos;      // (1) I32 on the device
    private final Tensor logits;   // (B,1,vocab): what each replay leaves
    private final Backend.Recording recording;
    private int devicePos;         // what pos holds once the queued work has run
    private long replays;

    RecordedDecode(Tensor ids, Tensor pos, Tensor logits, Backend.Recording recording, int devicePos) {
        this.ids = ids;
        this.pos = pos;
        this.logits = logits;
        this.recording = recording;
        this.devicePos = devicePos;
    }

    /**
     * The soft-capped logits (B,1,vocab), on the host, of the tokens {@code idx} (B,1; checked by the caller) at the
     * cache position {@code cachePos}; null, having queued nothing, when the recording is stale (record anew).
     */
    Tensor step(Tensor idx, int cachePos) {
        if (cachePos != devicePos) pos.copyFrom(Tensor.ofInts(new int[] {cachePos}, 1));
        devicePos = cachePos;
        ids.copyFrom(idx);
        if (!recording.replay()) return null;
        devicePos++;
        replays++;
        return logits.toCpu();
    }

    /** Steps served by replaying the recording. */
    long replays() {
        return replays;
    }

    /** Gives the recording (and the buffers it took) back, and the ids' and position's device memory. */
    @Override
    public void close() {
        recording.close();
        KVCache.release(ids);
        KVCache.release(pos);
    }
}
