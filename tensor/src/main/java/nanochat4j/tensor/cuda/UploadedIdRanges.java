package nanochat4j.tensor.cuda;

import java.util.Map;
import java.util.WeakHashMap;
import nanochat4j.tensor.DeviceStorage;

/**
 * The smallest and largest id of each int tensor the backend copied up from the host, read there as it went up, so
 * an embedding of those ids can skip its device-side range check, which costs a device → host wait per table: in a
 * cached decode step that was one wait for the token table and one per value-embedding layer. Keyed weakly by the
 * storage (a view's ids lie within its storage's range); the backend forgets a storage it writes into in place, so
 * a range is never stale.
 */
final class UploadedIdRanges {
    private record Range(int min, int max) {}

    private final Map<DeviceStorage, Range> ranges = new WeakHashMap<>();

    /** Records the ids just copied into {@code storage}. */
    synchronized void remember(DeviceStorage storage, int[] ids) {
        if (ids.length == 0) return;
        int min = Integer.MAX_VALUE, max = Integer.MIN_VALUE;
        for (int id : ids) {
            min = Math.min(min, id);
            max = Math.max(max, id);
        }
        ranges.put(storage, new Range(min, max));
    }

    /** True when every id in {@code storage} is known to lie in [0, {@code v}); false when unknown or outside. */
    synchronized boolean within(DeviceStorage storage, int v) {
        Range r = storage == null ? null : ranges.get(storage);
        return r != null && r.min >= 0 && r.max < v;
    }

    /** Drops what is known of {@code storage} (it is about to be, or was, written in place). */
    synchronized void forget(DeviceStorage storage) {
        if (storage != null && !ranges.isEmpty()) ranges.remove(storage);
    }
}
