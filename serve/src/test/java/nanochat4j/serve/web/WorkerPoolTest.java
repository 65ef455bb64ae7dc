package nanochat4j.serve.web;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import nanochat4j.model.engine.Engine;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import org.junit.jupiter.api.Test;

/** Queueing rules: first come first served, a bounded queue (429), a bounded wait (503). */
class WorkerPoolTest {
    private static final Engine ENGINE = new Engine(GPT.create(new GPTConfig(16, TestServers.TOK.vocabSize(), 1, 1, 1, 32, "L"), 1),
            TestServers.TOK);

    @Test
    void aWaitThatOutlastsTheTimeoutIs503WithRetryAfter() throws Exception {
        WorkerPool pool = new WorkerPool(List.of(ENGINE), 4);
        WorkerPool.Worker w = pool.acquire(0);
        ApiError e = assertThrows(ApiError.class, () -> pool.acquire(TimeUnit.MILLISECONDS.toNanos(50)));
        assertEquals(503, e.status);
        assertTrue(e.retryAfter >= 1);
        assertEquals(0, pool.waiting(), "a request that gave up no longer counts as waiting");
        pool.release(w);
        assertSame(w, pool.acquire(0));
    }

    @Test
    void theQueueLimitRefusesAtOnceAndAReleasedWorkerGoesToTheWaitingRequest() throws Exception {
        WorkerPool pool = new WorkerPool(List.of(ENGINE), 1);
        WorkerPool.Worker w = pool.acquire(0);
        CompletableFuture<WorkerPool.Worker> waiting = CompletableFuture.supplyAsync(() -> {
            try {
                return pool.acquire(TimeUnit.SECONDS.toNanos(30));
            } catch (Exception ex) {
                throw new RuntimeException(ex);
            }
        });
        assertTrue(TestServers.eventually(10, () -> pool.waiting() == 1));
        long t0 = System.nanoTime();
        ApiError e = assertThrows(ApiError.class, () -> pool.acquire(TimeUnit.SECONDS.toNanos(30)));
        assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(5), "refused without waiting");
        assertEquals(429, e.status);
        assertEquals("queue_full", e.code);
        pool.release(w);
        assertSame(w, waiting.get(10, TimeUnit.SECONDS));
        assertEquals(0, pool.available());
        assertEquals(1, w.served.get());
    }
}
