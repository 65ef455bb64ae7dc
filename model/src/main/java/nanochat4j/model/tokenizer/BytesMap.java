package nanochat4j.model.tokenizer;

import java.util.Arrays;

/** Open-addressing map from byte strings (slices of one arena) to token ranks: tiktoken's mergeable ranks. */
final class BytesMap {
    private final int[] slots; // rank + 1, 0 = empty
    private final int mask;
    private final int[] keyOff, keyLen, keyHash;
    private byte[] arena;

    BytesMap(int capacity) {
        int size = Integer.highestOneBit(Math.max(16, capacity * 3)) << 1;
        slots = new int[size];
        mask = size - 1;
        keyOff = new int[capacity];
        keyLen = new int[capacity];
        keyHash = new int[capacity];
    }

    static int hash(byte[] b, int off, int len) {
        int h = len;
        for (int i = off, end = off + len; i < end; i++) h = 31 * h + b[i];
        return h ^ (h >>> 16) * 0x45d9f3b;
    }

    /** Adds bytes [off, off+len) of {@code arena} (the same arena on every call) with rank {@code rank}. */
    void put(byte[] arena, int off, int len, int rank) {
        this.arena = arena;
        int h = hash(arena, off, len);
        keyOff[rank] = off;
        keyLen[rank] = len;
        keyHash[rank] = h;
        int s = h & mask;
        while (slots[s] != 0) s = (s + 1) & mask;
        slots[s] = rank + 1;
    }

    /** Rank of bytes [off, off+len) of {@code b}, or -1. */
    int get(byte[] b, int off, int len) {
        int h = hash(b, off, len);
        int s = h & mask;
        while (true) {
            int r = slots[s] - 1;
            if (r < 0) return -1;
            if (keyHash[r] == h && keyLen[r] == len && Arrays.equals(arena, keyOff[r], keyOff[r] + len, b, off, off + len)) return r;
            s = (s + 1) & mask;
        }
    }
}
