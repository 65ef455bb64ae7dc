package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * Recorded work on the GPU ({@link Backend#record}, CUDA graphs; skipped with the reason where no GPU is usable): a
 * recording runs nothing until replayed, a replay reads device memory as it is then, the buffers a recording took stay
 * its own (a temporary it gave back is not handed to later work a replay would overwrite) until the recording is
 * closed or collected, a host read inside a recording fails with CUDA's error and leaves the device usable, a weight
 * written after recording makes a bf16 replay decline, and the position-reading ops agree with their host-position
 * forms.
 */
class CudaGraphTest {
    private CudaBackend be;

    @BeforeEach
    void gpu() {
        be = CudaTesting.gpu("CUDA graph tests");
    }

    @Test
    void aRecordingRunsOnlyWhenReplayedAndReadsMemoryAsItIsThen() {
        Tensor a = be.upload(Tensor.of(new float[] {1, 2, 3}));
        Tensor b = be.upload(Tensor.of(new float[] {10, 20, 30}));
        Tensor counter = be.upload(Tensor.ofInts(new int[] {5}, 1));
        Tensor[] out = new Tensor[1];
        try (Backend.Recording r = be.record(() -> {
            out[0] = be.add(be.scale(a, 2f), b);
            be.addToInt(counter, 1);
        })) {
            assertNotNull(r);
            assertEquals(5, counter.toIntArray()[0], "recording ran nothing");
            assertTrue(r.replay());
            assertArrayEquals(new float[] {12, 24, 36}, out[0].toFloatArray());
            a.copyFrom(Tensor.of(new float[] {-1, 0, 1}));
            assertTrue(r.replay());
            assertTrue(r.replay());
            assertArrayEquals(new float[] {8, 20, 32}, out[0].toFloatArray(), "a replay reads a as it is when it runs");
            assertEquals(8, counter.toIntArray()[0], "three replays, three increments");
        }
    }

    @Test
    void aTemporaryGivenBackInsideARecordingIsNotHandedToLaterWork() {
        int n = 300_000; // its own pool bucket
        float[] av = new float[n];
        for (int i = 0; i < n; i++) av[i] = i % 7;
        Tensor a = be.upload(Tensor.of(av));
        Tensor[] out = new Tensor[1];
        try (Backend.Recording r = be.record(() -> {
            Tensor tmp = be.scale(a, 3f);
            out[0] = be.add(tmp, a);
            Recycler.give(tmp); // the recording keeps its block: every replay writes it
        })) {
            float[] sevens = new float[n];
            java.util.Arrays.fill(sevens, 7f);
            Tensor later = be.upload(Tensor.of(sevens)); // eager work after the recording, in the bucket tmp used
            assertTrue(r.replay());
            assertArrayEquals(sevens, later.toFloatArray(), "a replay wrote into memory handed to later work");
            float[] want = new float[n];
            for (int i = 0; i < n; i++) want[i] = 4 * av[i];
            assertArrayEquals(want, out[0].toFloatArray());
        }
    }

    /** A recording dropped without close is collected: its graph destroyed and its buffers back in the pool. */
    @Test
    void aRecordingDroppedUnclosedGivesItsBuffersBackAtAGc() throws Exception {
        CudaContext ctx = be.context();
        ctx.releasePool();
        int n = 2_900_000; // 11.6 MB: a 12 MiB bucket no other tensor here uses
        Tensor a = be.upload(Tensor.of(new float[n]));
        long[] taken = new long[1];
        Backend.Recording r = be.record(() -> taken[0] = be.scale(a, 2f).deviceAddress());
        assertTrue(r.replay());
        r = null;   // dropped, not closed
        List<Tensor> held = new ArrayList<>();   // each try's tensor kept, so the next try takes another block
        long deadline = System.nanoTime() + 10_000_000_000L;
        boolean back = false;
        while (!back && System.nanoTime() < deadline) {
            System.gc();
            Thread.sleep(50);
            Tensor t = be.scale(a, 3f);
            held.add(t);
            back = t.deviceAddress() == taken[0];
        }
        assertTrue(back, "the GC found the dropped recording and a new tensor of its size took its block");
    }

    @Test
    void aHostReadInsideARecordingFailsWithCudasErrorAndTheDeviceStillWorks() {
        Tensor a = be.upload(Tensor.of(new float[] {1, 2}));
        CudaException e = assertThrows(CudaException.class, () -> be.record(() -> be.relu2(a).toFloatArray()));
        assertTrue(e.getMessage().contains("CAPTURE"), e.getMessage());
        assertFalse(be.context().recording());
        assertArrayEquals(new float[] {1, 4}, be.relu2(a).toFloatArray(), "eager work after a failed recording");
    }

    @Test
    void aBf16ReplayDeclinesOnceAWeightItReadWasWritten() {
        MatmulPrecision old = be.setMatmulPrecision(MatmulPrecision.BF16);
        try {
            Tensor x = be.upload(Tensor.of(new float[] {1, 2, 3, 4}, 1, 4));
            Tensor w = be.upload(Tensor.of(new float[] {1, 0, 0, 0, 0, 1, 0, 0}, 2, 4));
            be.linear(x, w); // the bf16 copy of w is made here, before the recording (a recording may not make one)
            Tensor[] y = new Tensor[1];
            try (Backend.Recording r = be.record(() -> y[0] = be.linear(x, w))) {
                assertTrue(r.replay());
                assertArrayEquals(new float[] {1, 2}, y[0].toFloatArray());
                w.copyFrom(Tensor.of(new float[] {0, 0, 1, 0, 0, 0, 0, 1}, 2, 4));
                assertFalse(r.replay(), "w changed: its bf16 copy in the recording is stale");
            }
            Tensor w2 = be.upload(Tensor.of(new float[] {0, 1, 0, 0, 1, 0, 0, 0}, 2, 4));
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> be.record(() -> be.linear(x, w2)));
            assertTrue(e.getMessage().contains("inside a recording"), e.getMessage());
            assertFalse(be.context().recording());
        } finally {
            be.setMatmulPrecision(old);
        }
    }

    @Test
    void positionReadingOpsAgreeWithTheirHostPositionForms() {
        SplittableRandom rnd = new SplittableRandom(2);
        int b = 2, tmax = 40, h = 4, kv = 2, d = 32, pos = 23;
        Backend.RotaryTables rt = be.rotaryTables(64, d, 10000);
        Tensor x = be.upload(random(rnd, b, 1, h, d));
        Tensor at = be.upload(Tensor.ofInts(new int[] {pos}, 1));
        assertArrayEquals(be.rotaryRmsNorm(x, rt.cos(), rt.sin(), pos, 1.2f, false).y().toFloatArray(), be.rotaryRmsNormAt(x, rt.cos(), rt.sin(), at, 1.2f).toFloatArray());

        Tensor k1 = be.upload(random(rnd, b, tmax, kv, d)), k2 = be.upload(k1.toCpu());
        Tensor v = be.upload(random(rnd, b, tmax, kv, d));
        Tensor kNew = be.upload(random(rnd, b, 1, kv, d));
        be.narrowAssign(k1, 1, pos, kNew);
        be.narrowAssignAt(k2, 1, at, kNew);
        assertArrayEquals(k1.toFloatArray(), k2.toFloatArray());

        Tensor q = be.upload(random(rnd, b, 1, h, d));
        for (int window : new int[] {-1, 8}) {
            assertArrayEquals(be.attentionCached(q, k1, v, pos, window, 0.17f).toFloatArray(),
                    be.attentionCachedAt(q, k1, v, at, window, 0.17f).toFloatArray(), "window " + window);
        }
        Tensor chunk = be.upload(random(rnd, b, 2, h, d));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> be.attentionCachedAt(chunk, k1, v, at, -1, 0.17f));
        assertTrue(e.getMessage().contains("decode step"), e.getMessage());
        be.addToInt(at, 3);
        assertEquals(pos + 3, at.toIntArray()[0]);
    }

    private static Tensor random(SplittableRandom rnd, int... shape) {
        float[] a = new float[Tensor.numel(shape)];
        for (int i = 0; i < a.length; i++) a[i] = (float) rnd.nextDouble(-1, 1);
        return Tensor.of(a, shape);
    }
}
