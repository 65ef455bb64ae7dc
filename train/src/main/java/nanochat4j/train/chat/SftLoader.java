package nanochat4j.train.chat;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;
import nanochat4j.model.tokenizer.ChatRenderer;
import nanochat4j.model.tokenizer.Conversation;
import nanochat4j.train.tasks.Task;

/**
 * chat_sft's BOS-aligned best-fit loader with padding, minus its best-known bug.
 * <ul>
 *   <li>rank r fetches conversations r, r+W, … of the dataset (wrapping around, counting epochs) into a buffer of
 *       {@code bufferSize} rendered conversations; each row of capacity T+1 takes the largest buffered conversation
 *       that still fits, again and again; when none fits, the rest of the row is BOS padding (mask 0) and the row is
 *       closed. inputs = row[:T], targets = row[1:], −1 where the mask is 0 and on the padding;</li>
 *   <li>the fix (nanochat issues #590/#618/#486/#603): every conversation is rendered cropped to the row capacity.
 *       nanochat renders to 2048 tokens, so with --max-seq-len 512 a longer conversation never fits any row, stays in
 *       the buffer for ever, and once the buffer is full of them every row is all padding: a mean over zero
 *       supervised tokens, NaN, a stalled run. Here every conversation fits an empty row, and {@link Batch#supervised}
 *       tells the trainer when a micro-batch still has nothing to learn from (it is then skipped and counted);</li>
 *   <li>progress = consumed / dataset size (consumed starts at r and grows by W per conversation packed), and
 *       {@link Batch#epochDone} is set once consumed reaches the size (nanochat's last_step);</li>
 *   <li>{@link #state()} is exact: the cursor, counters and the dataset indices in the buffer, in order; a loader
 *       built from it continues with the same batches.</li>
 * </ul>
 */
public final class SftLoader {
    /** Where the loader is: enough to continue bitwise (the buffer is re-rendered from its dataset indices). */
    public record State(int cursor, long consumed, int epoch, int[] buffer, long cropped) {}

    /** One micro-batch. {@code supervised} = targets ≥ 0. */
    public record Batch(int[] inputs, int[] targets, int supervised, double progress, boolean epochDone, int epoch) {}

    private final Task dataset;
    private final Function<Conversation, ChatRenderer.Rendered> render;
    private final int batch, seq, bos, rank, world, bufferSize;
    private final List<int[]> bufIds = new ArrayList<>(), bufMask = new ArrayList<>();
    private final List<Integer> bufIndex = new ArrayList<>();
    private int cursor, epoch;
    private long consumed, cropped;

    /**
     * {@code render} renders a conversation (uncropped is fine: it is cropped here to T+1). {@code state} null starts
     * at the beginning.
     */
    public SftLoader(Task dataset, Function<Conversation, ChatRenderer.Rendered> render, int batch, int seq, int bos, int rank, int world,
                     int bufferSize, State state) {
        if (dataset.size() == 0) throw new IllegalArgumentException("SFT dataset " + dataset.name() + " is empty");
        this.dataset = dataset;
        this.render = render;
        this.batch = batch;
        this.seq = seq;
        this.bos = bos;
        this.rank = rank;
        this.world = world;
        this.bufferSize = bufferSize;
        if (state == null) {
            cursor = rank;
            consumed = rank;
            epoch = 1;
        } else {
            cursor = state.cursor();
            consumed = state.consumed();
            epoch = state.epoch();
            cropped = state.cropped();
            for (int idx : state.buffer()) addToBuffer(idx);
        }
    }

    public State state() {
        return new State(cursor, consumed, epoch, bufIndex.stream().mapToInt(Integer::intValue).toArray(), cropped);
    }

    /** Conversations cut to the row capacity so far (they would have stalled nanochat's loader). */
    public long cropped() {
        return cropped;
    }

    /** Renders and buffers conversation {@code idx}; true when it had to be cropped. */
    private boolean addToBuffer(int idx) {
        ChatRenderer.Rendered r = render.apply(dataset.get(idx).conversation());
        int cap = seq + 1;
        int[] ids = r.ids(), mask = r.mask();
        boolean crop = ids.length > cap;
        if (crop) {
            ids = Arrays.copyOf(ids, cap);
            mask = Arrays.copyOf(mask, cap);
        }
        bufIds.add(ids);
        bufMask.add(mask);
        bufIndex.add(idx);
        return crop;
    }

    private void refill() {
        while (bufIds.size() < bufferSize) {
            int idx = cursor;
            cursor += world;
            if (cursor >= dataset.size()) {
                cursor %= dataset.size();
                epoch++;
            }
            if (addToBuffer(idx)) cropped++;
        }
    }

    public Batch next() {
        int cap = seq + 1;
        int[] inputs = new int[batch * seq], targets = new int[batch * seq];
        int supervised = 0;
        for (int b = 0; b < batch; b++) {
            int[] row = new int[cap], mask = new int[cap];
            int len = 0, content = cap;
            while (len < cap) {
                refill();
                int remaining = cap - len, best = -1, bestLen = 0;
                for (int i = 0; i < bufIds.size(); i++) {
                    int l = bufIds.get(i).length;
                    if (l <= remaining && l > bestLen) {
                        best = i;
                        bestLen = l;
                    }
                }
                if (best >= 0) {
                    System.arraycopy(bufIds.get(best), 0, row, len, bestLen);
                    System.arraycopy(bufMask.get(best), 0, mask, len, bestLen);
                    bufIds.remove(best);
                    bufMask.remove(best);
                    bufIndex.remove(best);
                    len += bestLen;
                    consumed += world;
                } else {
                    content = len;
                    Arrays.fill(row, len, cap, bos);
                    break;
                }
            }
            for (int t = 0; t < seq; t++) {
                inputs[b * seq + t] = row[t];
                boolean keep = mask[t + 1] != 0 && t < content - 1;
                targets[b * seq + t] = keep ? row[t + 1] : -1;
                if (keep) supervised++;
            }
        }
        double progress = (double) consumed / dataset.size();
        return new Batch(inputs, targets, supervised, progress, consumed >= dataset.size(), epoch);
    }
}
