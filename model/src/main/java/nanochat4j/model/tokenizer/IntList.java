package nanochat4j.model.tokenizer;

import java.util.Arrays;

/** A growable int array (no boxing). */
final class IntList {
    private int[] a = new int[256];
    private int size;

    void add(int v) {
        if (size == a.length) a = Arrays.copyOf(a, size * 2);
        a[size++] = v;
    }

    void addAll(int[] src, int off, int len) {
        if (size + len > a.length) a = Arrays.copyOf(a, Math.max(a.length * 2, size + len));
        System.arraycopy(src, off, a, size, len);
        size += len;
    }

    int get(int i) {
        return a[i];
    }

    int size() {
        return size;
    }

    void clear() {
        size = 0;
    }

    int[] toArray() {
        return Arrays.copyOf(a, size);
    }
}
