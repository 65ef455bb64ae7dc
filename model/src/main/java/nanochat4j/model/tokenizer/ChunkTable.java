package nanochat4j.model.tokenizer;

import java.util.Arrays;

/**
 * An open-addressing hash set of char strings, each stored once in one char arena and numbered 0, 1, 2, … in
 * insertion order. Callers keep their values in arrays indexed by that number (a count while training, token ids
 * in the encoder's cache), so a lookup of a chunk in a document allocates nothing.
 */
final class ChunkTable {
    private char[] arena = new char[1 << 16];
    private int arenaUsed;
    private int[] keyStart = new int[1024];
    private int[] keyLen = new int[1024];
    private int[] keyHash = new int[1024];
    private int size;
    private int[] slots = new int[2048]; // entry + 1, 0 = empty
    private int mask = slots.length - 1;

    int size() {
        return size;
    }

    long arenaChars() {
        return arenaUsed;
    }

    static int hash(char[] s, int off, int len) {
        int h = len;
        for (int i = off, end = off + len; i < end; i++) h = 31 * h + s[i];
        return h ^ (h >>> 15) * 0x2c1b3c6d;
    }

    /** Index of the string or -1. */
    int find(int h, char[] s, int off, int len) {
        int slot = h & mask;
        while (true) {
            int e = slots[slot] - 1;
            if (e < 0) return -1;
            if (keyHash[e] == h && keyLen[e] == len && sameChars(keyStart[e], s, off, len)) return e;
            slot = (slot + 1) & mask;
        }
    }

    private boolean sameChars(int start, char[] s, int off, int len) {
        if (len > 16) return Arrays.equals(arena, start, start + len, s, off, off + len);
        for (int i = 0; i < len; i++) if (arena[start + i] != s[off + i]) return false;
        return true;
    }

    /** Adds a string known to be absent; returns its index. */
    int add(int h, char[] s, int off, int len) {
        if (arenaUsed + len > arena.length) arena = Arrays.copyOf(arena, Math.max(arena.length * 2, arenaUsed + len));
        System.arraycopy(s, off, arena, arenaUsed, len);
        if (size == keyStart.length) {
            int cap = size * 2;
            keyStart = Arrays.copyOf(keyStart, cap);
            keyLen = Arrays.copyOf(keyLen, cap);
            keyHash = Arrays.copyOf(keyHash, cap);
        }
        int e = size++;
        keyStart[e] = arenaUsed;
        keyLen[e] = len;
        keyHash[e] = h;
        arenaUsed += len;
        if (size * 2 > slots.length) rehash();
        else insertSlot(e);
        return e;
    }

    private void insertSlot(int e) {
        int slot = keyHash[e] & mask;
        while (slots[slot] != 0) slot = (slot + 1) & mask;
        slots[slot] = e + 1;
    }

    private void rehash() {
        slots = new int[slots.length * 2];
        mask = slots.length - 1;
        for (int e = 0; e < size; e++) insertSlot(e);
    }

    void clear() {
        Arrays.fill(slots, 0);
        size = 0;
        arenaUsed = 0;
    }

    char[] arena() {
        return arena;
    }

    int start(int e) {
        return keyStart[e];
    }

    int length(int e) {
        return keyLen[e];
    }

    int hashOf(int e) {
        return keyHash[e];
    }

    String key(int e) {
        return new String(arena, keyStart[e], keyLen[e]);
    }
}
