package nanochat4j.model.tokenizer;

import java.util.Arrays;

/** Open-addressing map from long keys to non-negative ints (-1 = absent), for the trainer's pair numbering. */
final class LongIntMap {
    private static final long EMPTY = Long.MIN_VALUE;
    private long[] keys = new long[1 << 16];
    private int[] values = new int[1 << 16];
    private int size;
    private int mask = keys.length - 1;

    LongIntMap() {
        Arrays.fill(keys, EMPTY);
    }

    private static int slot(long key, int mask) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29)) & mask;
    }

    int get(long key) {
        int s = slot(key, mask);
        while (true) {
            long k = keys[s];
            if (k == key) return values[s];
            if (k == EMPTY) return -1;
            s = (s + 1) & mask;
        }
    }

    void put(long key, int value) {
        if ((size + 1) * 2 > keys.length) grow();
        int s = slot(key, mask);
        while (keys[s] != EMPTY && keys[s] != key) s = (s + 1) & mask;
        if (keys[s] == EMPTY) size++;
        keys[s] = key;
        values[s] = value;
    }

    private void grow() {
        long[] oldKeys = keys;
        int[] oldValues = values;
        keys = new long[oldKeys.length * 2];
        Arrays.fill(keys, EMPTY);
        values = new int[oldKeys.length * 2];
        mask = keys.length - 1;
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldKeys[i] == EMPTY) continue;
            int s = slot(oldKeys[i], mask);
            while (keys[s] != EMPTY) s = (s + 1) & mask;
            keys[s] = oldKeys[i];
            values[s] = oldValues[i];
        }
    }
}
