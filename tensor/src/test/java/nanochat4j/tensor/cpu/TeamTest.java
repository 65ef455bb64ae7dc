package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

class TeamTest {

    @Test
    void everyChunkRunsExactlyOnceOverManyShortPhases() {
        for (int phase = 0; phase < 2000; phase++) {
            int n = 1 + phase % 37;
            AtomicIntegerArray runs = new AtomicIntegerArray(n);
            Team.run(n, (i, end) -> {
                assertEquals(i + 1, end);
                runs.incrementAndGet(i);
            });
            for (int i = 0; i < n; i++) assertEquals(1, runs.get(i), "phase " + phase + " chunk " + i);
        }
    }

    @Test
    void aFailingChunkIsRethrownAfterTheOthersFinish() {
        AtomicIntegerArray runs = new AtomicIntegerArray(64);
        IllegalStateException boom = new IllegalStateException("chunk 17");
        var e = assertThrows(IllegalStateException.class, () -> Team.run(64, (i, end) -> {
            runs.incrementAndGet(i);
            if (i == 17) throw boom;
        }));
        assertSame(boom, e);
        for (int i = 0; i < 64; i++) assertEquals(1, runs.get(i), "chunk " + i);
    }

    @Test
    void nestedAndConcurrentCallersCompleteTheirOwnPhases() throws Exception {
        int callers = 3;
        AtomicIntegerArray sums = new AtomicIntegerArray(callers);
        Thread[] threads = new Thread[callers];
        for (int c = 0; c < callers; c++) {
            int caller = c;
            threads[c] = new Thread(() -> {
                for (int rep = 0; rep < 200; rep++) {
                    Team.run(8, (i, end) -> Team.run(4, (j, e2) -> sums.incrementAndGet(caller)));
                }
            });
            threads[c].start();
        }
        for (Thread t : threads) t.join(60_000);
        for (int c = 0; c < callers; c++) assertEquals(200 * 8 * 4, sums.get(c), "caller " + c);
    }
}
