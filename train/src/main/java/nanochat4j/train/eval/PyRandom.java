package nanochat4j.train.eval;

import java.util.List;

/**
 * Python's {@code random.Random} (MT19937, seeded by {@code init_by_array}), so that CORE's example shuffle
 * ({@code Random(1337)}) and few-shot choice ({@code Random(1234 + idx).sample(...)}) pick exactly the examples
 * nanochat picks. Only what CORE and the chat tasks use: integer seeds, getrandbits, randbelow, shuffle, sample.
 */
public final class PyRandom {
    private static final int N = 624;
    private static final int M = 397;
    private final int[] mt = new int[N];
    private int mti;

    public PyRandom(long seed) {
        // Python seeds with the 32-bit words of |seed|, least significant first; 0 gives the key [0].
        long s = Math.abs(seed);
        int words = s == 0 ? 1 : (64 - Long.numberOfLeadingZeros(s) + 31) / 32;
        int[] key = new int[words];
        for (int i = 0; i < words; i++) key[i] = (int) (s >>> (32 * i));
        initByArray(key);
    }

    private void initGenrand(int s) {
        mt[0] = s;
        for (mti = 1; mti < N; mti++) {
            mt[mti] = 1812433253 * (mt[mti - 1] ^ (mt[mti - 1] >>> 30)) + mti;
        }
    }

    private void initByArray(int[] key) {
        initGenrand(19650218);
        int i = 1;
        int j = 0;
        for (int k = Math.max(N, key.length); k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1664525)) + key[j] + j;
            i++;
            j++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if (j >= key.length) j = 0;
        }
        for (int k = N - 1; k > 0; k--) {
            mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >>> 30)) * 1566083941)) - i;
            i++;
            if (i >= N) {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x80000000;
    }

    /** genrand_uint32 as an unsigned value in a long. */
    long nextUint32() {
        if (mti >= N) {
            for (int kk = 0; kk < N; kk++) {
                int y = (mt[kk] & 0x80000000) | (mt[(kk + 1) % N] & 0x7fffffff);
                mt[kk] = mt[(kk + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? 0x9908b0df : 0);
            }
            mti = 0;
        }
        int y = mt[mti++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y & 0xffffffffL;
    }

    /** getrandbits(k) for 1 ≤ k ≤ 32. */
    long getrandbits(int k) {
        if (k < 1 || k > 32) throw new IllegalArgumentException("getrandbits(" + k + "): only 1..32 bits supported");
        return nextUint32() >>> (32 - k);
    }

    /** Python's _randbelow_with_getrandbits: a uniform int in [0, n) by rejection. */
    int randbelow(int n) {
        if (n <= 0) throw new IllegalArgumentException("randbelow(" + n + ")");
        int k = 32 - Integer.numberOfLeadingZeros(n);
        long r = getrandbits(k);
        while (r >= n) r = getrandbits(k);
        return (int) r;
    }

    /** random.shuffle: Fisher-Yates from the end. */
    public <T> void shuffle(List<T> x) {
        for (int i = x.size() - 1; i > 0; i--) {
            int j = randbelow(i + 1);
            T t = x.get(i);
            x.set(i, x.get(j));
            x.set(j, t);
        }
    }

    /** random.sample(population, k) for a population of ints, with CPython's pool/set switch. */
    int[] sample(int[] population, int k) {
        int n = population.length;
        if (k < 0 || k > n) throw new IllegalArgumentException("sample larger than population: k=" + k + ", n=" + n);
        int[] result = new int[k];
        int setsize = 21;
        if (k > 5) setsize += (int) Math.pow(4, Math.ceil(Math.log(k * 3) / Math.log(4)));
        if (n <= setsize) {
            int[] pool = population.clone();
            for (int i = 0; i < k; i++) {
                int j = randbelow(n - i);
                result[i] = pool[j];
                pool[j] = pool[n - i - 1];
            }
        } else {
            java.util.HashSet<Integer> selected = new java.util.HashSet<>();
            for (int i = 0; i < k; i++) {
                int j = randbelow(n);
                while (selected.contains(j)) j = randbelow(n);
                selected.add(j);
                result[i] = population[j];
            }
        }
        return result;
    }
}
