package nanochat4j.tensor.cuda;

import java.util.Arrays;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.function.Function;
import nanochat4j.tensor.DeviceStorage;
import nanochat4j.tensor.Tensor;

/**
 * What the backend knows of each int tensor it copied up from the host, read there as it went up, so that work on
 * those ids needs no device → host wait:
 * <ul>
 *   <li>the smallest and largest id: an embedding of ids known in range skips its device-side check (in a cached
 *       decode step that was one wait for the token table and one per value-embedding layer);</li>
 *   <li>how many are the ignore index −1: a mean loss divides by the count of the others without counting them on
 *       the device and reading the count back;</li>
 *   <li>the ids themselves: an embedding's backward, whose deterministic scatter-add reads the ids sorted into
 *       segments of equal id, sorts them here once ({@link #segments}) and keeps the upload for every table of the
 *       step, where it read them back, sorted and uploaded them for each table (five waits a table, the host's sort
 *       in the middle of the backward).</li>
 * </ul>
 * Keyed weakly by the storage (a view's ids are a window of its storage's); the backend forgets a storage it writes
 * into in place, so nothing here is stale.
 */
final class UploadedIds {
    private static final class Known {
        final int min, max;
        final int[] ids;
        Segments segments;   // of one window, made by the first backward that asked

        Known(int[] ids) {
            this.ids = ids;
            int lo = Integer.MAX_VALUE, hi = Integer.MIN_VALUE;
            for (int id : ids) {
                lo = Math.min(lo, id);
                hi = Math.max(hi, id);
            }
            min = lo;
            max = hi;
        }
    }

    /**
     * Ids sorted for a deterministic scatter: {@code count} distinct ids; in one device int buffer the permutation
     * (n positions, by id then position), each segment's start in it (count + 1) and each segment's id (count).
     */
    record Segments(int offset, int n, int count, Tensor packed) {
        DevicePtr perm() { return new DevicePtr(packed, 0); }

        DevicePtr starts() { return new DevicePtr(packed, 4L * n); }

        DevicePtr ids() { return new DevicePtr(packed, 4L * (n + count + 1)); }
    }

    private final Map<DeviceStorage, Known> known = new WeakHashMap<>();

    /** Records the ids just copied into {@code storage} (kept, not copied: the caller hands over its array). */
    synchronized void remember(DeviceStorage storage, int[] ids) {
        if (ids.length == 0) return;
        known.put(storage, new Known(ids));
    }

    /** True when every id in {@code storage} is known to lie in [0, {@code v}); false when unknown or outside. */
    synchronized boolean within(DeviceStorage storage, int v) {
        Known k = storage == null ? null : known.get(storage);
        return k != null && k.min >= 0 && k.max < v;
    }

    /** How many of {@code ids} (a window of an uploaded storage) are {@code value}, or −1 when they are not known here. */
    synchronized int count(Tensor ids, int value) {
        int[] a = window(ids);
        if (a == null) return -1;
        int c = 0;
        for (int i = ids.offset(), end = i + ids.numel(); i < end; i++) if (a[i] == value) c++;
        return c;
    }

    /**
     * The sorted segments of {@code ids} (non-negative), made once per uploaded storage and window and put on the
     * device by {@code upload}; ids not known here are read back ({@code ids.toIntArray()}) and sorted each call.
     */
    synchronized Segments segments(Tensor ids, Function<int[], Tensor> upload) {
        Known k = ids.deviceStorage() == null ? null : known.get(ids.deviceStorage());
        if (k != null && k.segments != null && k.segments.offset == ids.offset() && k.segments.n == ids.numel()) return k.segments;
        int[] a = window(ids);
        int[] host = a != null ? Arrays.copyOfRange(a, ids.offset(), ids.offset() + ids.numel()) : ids.toIntArray();
        int[] packed = sortIntoSegments(host);
        int count = (packed.length - host.length - 1) / 2;
        Segments s = new Segments(ids.offset(), ids.numel(), count, upload.apply(packed));
        if (a != null) k.segments = s;
        return s;
    }

    /**
     * A stable counting sort of non-negative ids: [perm (n) | segment starts (count + 1) | segment ids (count)], the
     * positions of each distinct id in position order, ids ascending.
     */
    static int[] sortIntoSegments(int[] ids) {
        int n = ids.length, max = -1;
        for (int id : ids) max = Math.max(max, id);
        int[] start = new int[max + 2];
        for (int id : ids) start[id + 1]++;
        int count = 0;
        for (int id = 0; id <= max; id++) {
            if (start[id + 1] > 0) count++;
            start[id + 1] += start[id];
        }
        int[] out = new int[n + 2 * count + 1], next = Arrays.copyOf(start, max + 1);
        for (int i = 0; i < n; i++) out[next[ids[i]]++] = i;
        for (int id = 0, s = 0; id <= max; id++) {
            if (start[id + 1] > start[id]) {
                out[n + s] = start[id];
                out[n + count + 1 + s] = id;
                s++;
            }
        }
        out[n + count] = n;
        return out;
    }

    /** The host ids of the storage {@code ids} views, when known and the view lies within them; else null. */
    private int[] window(Tensor ids) {
        Known k = ids.deviceStorage() == null ? null : known.get(ids.deviceStorage());
        return k != null && ids.offset() + ids.numel() <= k.ids.length ? k.ids : null;
    }

    /** Drops what is known of {@code storage} (it is about to be, or was, written in place). */
    synchronized void forget(DeviceStorage storage) {
        if (storage != null && !known.isEmpty()) known.remove(storage);
    }
}
