package nanochat4j.model.tokenizer;

import java.util.PriorityQueue;

/**
 * tiktoken's byte_pair_merge for long chunks (over 128 bytes) in O(n log n): parts form a linked list, candidate
 * merges sit in a heap ordered by (rank, start), so the lowest rank merges first and the leftmost wins a tie —
 * the same order as the quadratic scan used for short chunks.
 */
final class LongPieceMerge {
    private LongPieceMerge() {}

    /** Rank of bytes [off, off+len), Integer.MAX_VALUE when they are no token. */
    @FunctionalInterface
    interface RankFn {
        int rank(byte[] b, int off, int len);
    }

    static void encode(byte[] b, int n, RankFn rank, IntList out, RankFn tokenOf) {
        int[] next = new int[n + 1], prev = new int[n + 1], rk = new int[n + 1];
        boolean[] dead = new boolean[n + 1];
        PriorityQueue<Long> heap = new PriorityQueue<>();
        for (int i = 0; i <= n; i++) {
            next[i] = i + 1;
            prev[i] = i - 1;
            rk[i] = Integer.MAX_VALUE;
        }
        for (int p = 0; p + 1 < n; p++) {
            rk[p] = rank.rank(b, p, 2);
            if (rk[p] != Integer.MAX_VALUE) heap.add(((long) rk[p] << 32) | p);
        }
        while (!heap.isEmpty()) {
            long e = heap.poll();
            int r = (int) (e >>> 32), p = (int) e;
            if (dead[p] || rk[p] != r) continue;
            int q = next[p];
            dead[q] = true;
            next[p] = next[q];
            if (next[p] <= n) prev[next[p]] = p;
            rk[p] = next[p] < n ? rank.rank(b, p, next[next[p]] - p) : Integer.MAX_VALUE;
            if (rk[p] != Integer.MAX_VALUE) heap.add(((long) rk[p] << 32) | p);
            int pp = prev[p];
            if (pp >= 0) {
                rk[pp] = rank.rank(b, pp, next[p] - pp);
                if (rk[pp] != Integer.MAX_VALUE) heap.add(((long) rk[pp] << 32) | pp);
            }
        }
        for (int p = 0; p < n; p = next[p]) out.add(tokenOf.rank(b, p, next[p] - p));
    }
}
