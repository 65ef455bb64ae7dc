package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The collective with ranks as threads of this JVM (each its own Aeron client): results, handshake, misuse. */
@Timeout(120)
class CollectiveTest {

    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {1, 2, 3, 4})
    void everyCollectiveEqualsTheRingOrderSerialReferenceBitForBit(int world) throws Exception {
        List<Integer> ops = InProcessRing.run(world, "cfg", CollectiveChecks::runAll);
        assertEquals(world, ops.size());
    }

    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {1, 2, 3, 4})
    void sharedBufferCollectivesReadingThePeersDirectlyEqualTheSameReferenceBitForBit(int world) throws Exception {
        List<Integer> ops = InProcessRing.run(world, "cfg", CollectiveChecks::runShared);
        assertEquals(world, ops.size());
    }

    @Test
    void sharedBuffersAcrossHostsGoOverTheRingWithTheSameResults() throws Exception {
        // 2 nodes × 2 ranks: the buffers cannot be mapped across hosts, so the ring carries them (UDP between nodes)
        InProcessRing.run(4, 2, r -> "cfg", Duration.ofSeconds(60), c -> {
            SharedFloats b = c.sharedFloats(5000 + 6);
            for (int len : new int[] {0, 3, 5000}) {
                CollectiveChecks.allReduceF32(c, len, ReduceOp.AVG, b);
                CollectiveChecks.reduceScatterF32(c, len, ReduceOp.MAX, b);
                CollectiveChecks.allGatherF32(c, len, b);
            }
            return null;
        });
    }

    @Test
    void sharedBuffersOfDifferentSizesOrOperationsAreRefusedWithAMessage() throws Exception {
        List<Object> sizes = InProcessRing.runCollecting(2, 1, r -> "cfg", Duration.ofSeconds(60),
                c -> c.sharedFloats(100 + c.rank()));
        for (Object r : sizes) {
            assertInstanceOf(CollectiveException.class, r);
            assertTrue(((Exception) r).getMessage().contains("ranks allocated shared buffers of different sizes"),
                    String.valueOf(r));
        }
        List<Object> ops = InProcessRing.runCollecting(2, 1, r -> "cfg", Duration.ofSeconds(60), c -> {
            SharedFloats b = c.sharedFloats(100);
            if (c.rank() == 0) c.allReduce(b, 0, 100, ReduceOp.SUM);
            else c.allReduce(b, 0, 90, ReduceOp.SUM);
            return "completed";
        });
        for (Object r : ops) {
            assertInstanceOf(CollectiveException.class, r);
            assertTrue(((Exception) r).getMessage().contains("allReduce(SUM) of 100 elements at 0"), String.valueOf(r));
        }
    }

    @Test
    void aRankThatAbortsWhileOthersWaitInASharedBufferOperationStopsThemWithItsReason() throws Exception {
        assertAnAbortOfRank1StopsTheOthers(c -> {
            SharedFloats b = c.sharedFloats(1000);
            return () -> c.allReduce(b, 0, 1000, ReduceOp.SUM);
        });
    }

    @Test
    void udpLinksBetweenNodesGiveTheSameResultsAsIpc() throws Exception {
        // 2 nodes × 2 ranks on the loopback interface: links 1→2 and 3→0 are UDP, 0→1 and 2→3 IPC
        InProcessRing.run(4, 2, r -> "cfg", Duration.ofSeconds(60), c -> {
            for (int len : new int[] {0, 3, 5000, 3 * CollectiveChecks.CHUNK_F32 + 7}) {
                CollectiveChecks.allReduceF32(c, len, ReduceOp.SUM);
                CollectiveChecks.reduceScatterF32(c, len, ReduceOp.MAX);
                CollectiveChecks.allGatherF32(c, len);
            }
            return null;
        });
    }

    @ParameterizedTest(name = "world {0}")
    @ValueSource(ints = {2, 3})
    void largeAllReducesForwardChunksStraightFromTheReceivedFrameAndMatchTheReference(int world) throws Exception {
        // many frames per segment, so interleaved steps and the fused combine-and-forward path carry most of the data
        int len = 40 * CollectiveChecks.CHUNK_F32 + 5;
        List<Integer> fused = InProcessRing.run(world, "cfg", c -> {
            int total = 0;
            for (ReduceOp op : ReduceOp.values()) {
                CollectiveChecks.allReduceF32(c, len, op);
                total += c.fusedFrames();
            }
            CollectiveChecks.reduceScatterF32(c, len, ReduceOp.AVG);
            CollectiveChecks.allGatherF32(c, len);
            return total;
        });
        for (int r = 0; r < world; r++) assertTrue(fused.get(r) > 0, "rank " + r + " fused no frame");
    }

    @Test
    void asyncOperationsCompleteInCallOrderAndMatchTheReference() throws Exception {
        InProcessRing.run(3, "cfg", c -> {
            int len = 40_001;
            List<float[]> bufs = new ArrayList<>();
            List<Collective.Pending> pending = new ArrayList<>();
            for (int k = 0; k < 4; k++) {
                float[] a = CollectiveChecks.input(c.rank(), len, 100 + k);
                bufs.add(a);
                pending.add(k % 2 == 0 ? c.reduceScatterAsync(a, 0, len, ReduceOp.AVG) : c.allReduceAsync(a, 0, len, ReduceOp.SUM));
            }
            c.barrier(); // a synchronous call waits for the pending ones first
            for (Collective.Pending p : pending) assertTrue(p.isDone());
            for (int k = 0; k < 4; k++) {
                float[][] xs = new float[3][];
                for (int r = 0; r < 3; r++) xs[r] = CollectiveChecks.input(r, len, 100 + k);
                float[] ref = CollectiveChecks.reference(xs, k % 2 == 0 ? ReduceOp.AVG : ReduceOp.SUM);
                int s = k % 2 == 0 ? CollectiveChecks.shardStart(c, len, 0) : 0, e = k % 2 == 0 ? CollectiveChecks.shardStart(c, len, 1) : len;
                assertArrayEquals(java.util.Arrays.copyOfRange(ref, s, e), java.util.Arrays.copyOfRange(bufs.get(k), s, e));
            }
            return null;
        });
    }

    @Test
    void aConfigMismatchIsRefusedAtTheFirstCollectiveOnEveryRank() throws Exception {
        List<Object> res = InProcessRing.runCollecting(3, 1, r -> r == 1 ? "d4-other" : "d4", Duration.ofSeconds(30), c -> {
            c.allReduce(new float[10], 0, 10, ReduceOp.SUM);
            return "completed";
        });
        for (int r = 0; r < 3; r++) {
            CollectiveException e = assertInstanceOf(CollectiveException.class, res.get(r), "rank " + r);
            assertTrue(e.getMessage().contains("config=d4-other") && e.getMessage().contains("config=d4]"), e.getMessage());
            assertTrue(e.getMessage().contains("same world size and model config"), e.getMessage());
        }
    }

    @Test
    void ranksThatCallDifferentSizesFailWithAMessageInsteadOfMixingData() throws Exception {
        List<Object> res = InProcessRing.runCollecting(2, 1, r -> "cfg", Duration.ofSeconds(30), c -> {
            int len = c.rank() == 0 ? 1000 : 1001;
            c.allReduce(new float[len], 0, len, ReduceOp.SUM);
            return "completed";
        });
        for (int r = 0; r < 2; r++) {
            CollectiveException e = assertInstanceOf(CollectiveException.class, res.get(r), "rank " + r);
            assertTrue(e.getMessage().contains("different collectives or sizes"), e.getMessage());
        }
    }

    @Test
    void aRankWithAnotherWorldSizeIsRefusedOnEveryRank() throws Exception {
        // rank 1 believes WORLD_SIZE=2: it sends to rank 0, which expects rank 2, and rank 2 never hears from anyone
        List<Object> res = InProcessRing.runCollecting(3, 1, r -> "cfg", Duration.ofSeconds(8), r -> r == 1 ? 2 : 3, c -> {
            c.allReduce(new float[10], 0, 10, ReduceOp.SUM);
            return "completed";
        });
        for (int r = 0; r < 3; r++) {
            Throwable t = assertInstanceOf(CollectiveException.class, res.get(r), "rank " + r);
            assertTrue(t.getMessage().contains("WORLD_SIZE"), "rank " + r + ": " + t.getMessage());
        }
    }

    @Test
    void aCollectiveAfterAFailureThrowsImmediately() throws Exception {
        List<Object> res = InProcessRing.runCollecting(2, 1, r -> r == 0 ? "a" : "b", Duration.ofSeconds(30), c -> {
            try {
                c.barrier();
            } catch (CollectiveException first) {
                long t0 = System.nanoTime();
                try {
                    c.barrier();
                } catch (CollectiveException second) {
                    assertTrue(second.getMessage().startsWith("collective unusable after an earlier failure"));
                    return (System.nanoTime() - t0) / 1_000_000;
                }
            }
            return -1L;
        });
        for (Object o : res) assertTrue(o instanceof Long l && l >= 0 && l < 100, String.valueOf(o));
    }

    @Test
    void allGatherDoublesIsExactAndRankMajor() throws Exception {
        InProcessRing.run(3, "cfg", c -> {
            double[] mine = {Math.PI * (c.rank() + 1), -0.0, 1e300 / (c.rank() + 1), Double.longBitsToDouble(0x7ff8dead0000beefL)};
            double[] all = c.allGatherDoubles(mine);
            assertEquals(12, all.length);
            for (int r = 0; r < 3; r++) {
                double[] theirs = {Math.PI * (r + 1), -0.0, 1e300 / (r + 1), Double.longBitsToDouble(0x7ff8dead0000beefL)};
                for (int i = 0; i < 4; i++)
                    assertEquals(Double.doubleToRawLongBits(theirs[i]), Double.doubleToRawLongBits(all[r * 4 + i]), "rank " + r + " value " + i);
            }
            return null;
        });
    }

    @Test
    void aRankThatAbortsMakesTheOthersFailWithItsReason() throws Exception {
        assertAnAbortOfRank1StopsTheOthers(c -> {
            float[] a = new float[1000];
            return () -> c.allReduce(a, 0, 1000, ReduceOp.SUM);
        });
    }

    /**
     * The overlapped gradient reduce runs synchronous collectives on its own thread; when the training thread then
     * fails, its abort must stop that operation (the ring's links have one writer) and tell the ring its reason. Rank 1
     * takes no part meanwhile, so the operation in flight can only end through the abort (over UDP: two "nodes").
     */
    @Test
    void anAbortFromAnotherThreadStopsTheOperationInFlightAndSendsItsReason() throws Exception {
        CountDownLatch released = new CountDownLatch(1);
        List<Object> res = InProcessRing.runCollecting(2, 2, r -> "cfg", Duration.ofSeconds(120), c -> {
            float[] a = new float[1000];
            c.allReduce(a, 0, 1000, ReduceOp.SUM);
            if (c.rank() == 1) {
                assertTrue(released.await(60, TimeUnit.SECONDS));
                try {
                    c.allReduce(a, 0, 1000, ReduceOp.SUM);
                    return "completed";
                } catch (CollectiveException e) {
                    return e.getMessage();
                }
            }
            CompletableFuture<Object> inFlight = new CompletableFuture<>();
            Thread reducer = Thread.ofPlatform().name("reducer").start(() -> {
                try {
                    c.allReduce(a, 0, 1000, ReduceOp.SUM); // waits for rank 1
                    inFlight.complete("completed");
                } catch (CollectiveException e) {
                    inFlight.complete(e);
                }
            });
            Thread.sleep(300);
            long t0 = System.nanoTime();
            c.abort("rank 0 failed: out of memory");
            try {
                Object end = inFlight.get(30, TimeUnit.SECONDS);
                return end instanceof CollectiveException e ? "stopped after " + (System.nanoTime() - t0) / 1e9 + " s: " + e.getMessage() : end;
            } finally {
                released.countDown();
                reducer.join();
            }
        });
        assertTrue(res.get(0) instanceof String s0 && s0.startsWith("stopped after ") && s0.contains("rank 0 failed: out of memory"),
                String.valueOf(res.get(0)));
        assertTrue(res.get(1) instanceof String s1 && s1.contains("rank 0 failed: out of memory"), String.valueOf(res.get(1)));
    }

    /**
     * Three ranks run the operation once; then rank 1 aborts while the others wait in it again: they must stop within
     * 10 s with rank 1's reason.
     */
    private static void assertAnAbortOfRank1StopsTheOthers(InProcessRing.Body<Runnable> operation) throws Exception {
        List<Object> res = InProcessRing.runCollecting(3, 1, r -> "cfg", Duration.ofSeconds(60), c -> {
            Runnable op = operation.run(c);
            op.run();
            if (c.rank() == 1) {
                c.abort("rank 1 failed: out of memory");
                return "aborted";
            }
            long t0 = System.nanoTime();
            try {
                op.run(); // waits for rank 1, which never comes
            } catch (CollectiveException e) {
                assertTrue(e.getMessage().contains("rank 1 failed: out of memory"), e.getMessage());
                return (System.nanoTime() - t0) / 1_000_000_000.0;
            }
            return "completed";
        });
        assertEquals("aborted", res.get(1));
        for (int r : new int[] {0, 2}) assertTrue(res.get(r) instanceof Double d && d < 10, "rank " + r + ": " + res.get(r));
    }
}
