package nanochat4j.tensor.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.function.Function;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Tensor;

/**
 * The bf16 copy of each weight a bf16 GEMM reads, made once and reused until the weight changes, so a training
 * step casts every matrix once instead of once per use (forward, backward input, every micro-step of gradient
 * accumulation). Keyed by the weight's storage (weakly: a dead weight's entry goes with it) and its element
 * window. The backend forgets a storage's copies whenever it writes into it in place — the optimizer kernels,
 * accumulation, copies from the host or another tensor ({@link #forget}) — so a copy is never stale.
 */
final class Bf16WeightCache {
    private record Entry(int offset, int[] shape, Tensor bf16) {}

    private final Map<DeviceStorage, List<Entry>> copies = new WeakHashMap<>();
    private long casts, hits;
    /** Bumped whenever a copy is dropped: a recorded graph that read copies is stale once it moves. */
    private long generation;

    /** The cached bf16 copy of {@code w}, made with {@code cast} when there is none. */
    synchronized Tensor get(Tensor w, Function<Tensor, Tensor> cast) {
        DeviceStorage s = w.deviceStorage();
        List<Entry> list = copies.computeIfAbsent(s, k -> new ArrayList<>(1));
        for (Entry e : list) {
            if (e.offset == w.offset() && w.hasShape(e.shape)) {
                hits++;
                return e.bf16;
            }
        }
        Tensor b = cast.apply(w);
        list.add(new Entry(w.offset(), w.shape(), b));
        casts++;
        return b;
    }

    /** Drops every copy made from {@code storage} (it is about to be, or was, written in place). */
    synchronized void forget(DeviceStorage storage) {
        if (storage != null && !copies.isEmpty() && copies.remove(storage) != null) generation++;
    }

    /** Drops every copy (weights changed by a path that does not name its storage). */
    synchronized void clear() {
        if (!copies.isEmpty()) generation++;
        copies.clear();
    }

    /** Changes whenever a copy is dropped (a weight was written). */
    synchronized long generation() {
        return generation;
    }

    /** Casts made and cache hits so far (the tests and the step log check one cast per weight per step). */
    synchronized long[] counts() {
        return new long[] {casts, hits};
    }
}
