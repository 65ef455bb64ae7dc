package nanochat4j.tensor;

import java.lang.ref.SoftReference;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.Map;
import java.util.Set;

/**
 * Reused heap storage for the op outputs of training steps (llm.c plans its activation buffers once; we let each
 * step hand its dead buffers to the next). The JVM clears every new array before the op writes it, and a training
 * step makes gigabytes of outputs: for a memory-bound op (rms_norm, rotary, elementwise) that clearing is as much
 * traffic again as the op's own, and the garbage makes the heap grow (docs/BENCHMARKS.md, session 16).
 *
 * <p>How it is used:
 * <ul>
 *   <li>a training loop wraps each micro-step's forward and backward in {@code try (var s = Recycler.open()) {…}};</li>
 *   <li>ops allocate their outputs with {@link Tensor#uninitialized} (the kernels write every element), which takes
 *       an array of that exact length from this thread's pool, or a new one;</li>
 *   <li>the autograd tape gives back, as its backward pass drops each node, the node's output and its gradient once
 *       nothing can read them again. Inside a scope the values of intermediate vars are therefore gone after
 *       {@code backward()}: read the loss (the root) and nothing else. A training forward goes further
 *       ({@code Autograd.shelve}, after each block): what no backward reads goes back then, what one reads may be
 *       replaced by a bf16 copy on a GPU;</li>
 *   <li>on a GPU the same give-backs hand an op output's device memory ({@link Tensor#uninitializedOn}) straight
 *       back to the CUDA allocator's pool ({@link DeviceStorage#recycle}), so a step's device memory peaks at its
 *       live set instead of growing until a GC finds the dead tensors.</li>
 * </ul>
 * The pool is bounded by one step: closing the outermost scope drops what the previous scope gave back and this
 * one did not take (shapes that stopped recurring), and every pooled array is softly held, so a pool never costs an
 * {@code OutOfMemoryError} (the GC clears soft references first). Outside a scope {@link #take} is {@code new float[]}
 * and {@link #give} does nothing.
 *
 * <p>{@code -Dnanochat4j.recycler.poison=true} (the test suites run with it) fills every taken and every given-back
 * array with NaN and fails on an array given back twice, so a kernel that leaves an output element unwritten, or a
 * read after a buffer was given back, shows up as NaN in the tests rather than as stale numbers in training.
 */
public final class Recycler {
    /** NaN-fill taken and given-back arrays and check for double gives: for tests. */
    public static final boolean POISON = Boolean.getBoolean("nanochat4j.recycler.poison");

    private static final ThreadLocal<Recycler> POOL = ThreadLocal.withInitial(Recycler::new);

    /** Arrays given back in the previous outermost scope, and in this one; by length. */
    private Map<Integer, ArrayDeque<SoftReference<float[]>>> previous = new HashMap<>(), current = new HashMap<>();
    /** POISON only: the arrays in the pool now, to catch a second give of one. */
    private final Set<float[]> pooled = POISON ? Collections.newSetFromMap(new IdentityHashMap<>()) : null;
    private int depth;

    private Recycler() {}

    /** Recycles op outputs on this thread until closed (nestable). */
    public static Scope open() {
        Recycler r = POOL.get();
        r.depth++;
        return new Scope(r);
    }

    /** Whether a scope is open on this thread (the tape gives back only then). */
    public static boolean isOpen() {
        return POOL.get().depth > 0;
    }

    /** An array of length n with undefined contents: a pooled one inside a scope, else new (NaN-filled under POISON). */
    public static float[] take(int n) {
        Recycler r = POOL.get();
        float[] a = r.depth > 0 ? r.poll(n) : null;
        if (a == null) a = new float[n];
        if (POISON) Arrays.fill(a, Float.NaN);
        return a;
    }

    /** Gives back an array nothing reads any more (no-op outside a scope). */
    public static void give(float[] a) {
        Recycler r = POOL.get();
        if (r.depth == 0 || a == null || a.length == 0) return;
        if (POISON) {
            if (!r.pooled.add(a)) throw new IllegalStateException("Recycler: an array of " + a.length + " floats was given back twice");
            Arrays.fill(a, Float.NaN);
        }
        r.current.computeIfAbsent(a.length, k -> new ArrayDeque<>()).push(new SoftReference<>(a));
    }

    /**
     * Gives back t's storage if t was made by {@link Tensor#uninitialized} or {@link Tensor#uninitializedOn} (not a
     * view, not given back already) and nothing reads it any more: a heap array to this pool, device memory to its
     * allocator at once. Returns whether it did; outside a scope it does nothing.
     */
    public static boolean give(Tensor t) {
        return isOpen() && t != null && t.recycleStorage();
    }

    /**
     * Gives back the storage t is a window on (t's own, or that of the tensor t is a view of) if that tensor was made
     * by {@link Tensor#uninitialized} or {@link Tensor#uninitializedOn}: for the autograd tape, which knows that no
     * tensor on that storage is read again (a gradient passed on as a reshaped view). Returns whether it did.
     */
    public static boolean giveStorage(Tensor t) {
        return isOpen() && t != null && t.recycleViewedStorage();
    }

    /** How many arrays the pool holds now (tests). */
    public static int pooledCount() {
        Recycler r = POOL.get();
        return count(r.previous) + count(r.current);
    }

    private static int count(Map<Integer, ArrayDeque<SoftReference<float[]>>> m) {
        int c = 0;
        for (ArrayDeque<SoftReference<float[]>> q : m.values()) for (SoftReference<float[]> s : q) if (s.get() != null) c++;
        return c;
    }

    /**
     * A live array of length n given back earlier, or null: the previous scope's first (what is left of those is
     * dropped when this scope closes), then this one's.
     */
    private float[] poll(int n) {
        float[] a = poll(previous.get(n));
        if (a == null) a = poll(current.get(n));
        if (a != null && POISON) pooled.remove(a);
        return a;
    }

    private static float[] poll(ArrayDeque<SoftReference<float[]>> q) {
        if (q == null) return null;
        for (SoftReference<float[]> s; (s = q.poll()) != null; ) {
            float[] a = s.get();
            if (a != null) return a;
        }
        return null;
    }

    private void closeScope() {
        if (--depth > 0) return;
        if (POISON) for (ArrayDeque<SoftReference<float[]>> q : previous.values()) for (SoftReference<float[]> s : q) pooled.remove(s.get());
        previous = current;
        current = new HashMap<>();
    }

    /** An open recycling scope; close it on the thread that opened it. */
    public static final class Scope implements AutoCloseable {
        private final Recycler pool;
        private boolean closed;

        private Scope(Recycler pool) {
            this.pool = pool;
        }

        @Override
        public void close() {
            if (closed) return;
            if (POOL.get() != pool) throw new IllegalStateException("Recycler scope closed on another thread than the one that opened it");
            closed = true;
            pool.closeScope();
        }
    }
}
