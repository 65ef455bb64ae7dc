package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.aeron.driver.MediaDriver;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.gpt.GPT.ParamGroup;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.DistEnv;
import nanochat4j.train.collective.LocalDriver;
import org.junit.jupiter.api.Test;

/**
 * The ZeRO-2 path over the real ring collective, ranks as threads of this JVM (IPC through one media driver):
 * N ranks with their own gradients must end with the parameters a single process reaches from the averaged
 * gradients — bitwise here, because the gradients are chosen so that every sum and the division by N are exact —
 * identical on every rank, with state only for the owned shards, and resumable per rank.
 */
class MuonAdamWDistributedTest {
    private static final int WORLD = 2;

    interface RankBody<T> {
        T run(Collective c) throws Exception;
    }

    /** Runs body on every rank of a fresh in-process ring; returns each rank's result. */
    static <T> List<T> onRanks(int world, RankBody<T> body) throws Exception {
        Path base = Files.isWritable(Path.of("/dev/shm")) ? Path.of("/dev/shm") : Path.of(System.getProperty("java.io.tmpdir"));
        Path dir = Files.createTempDirectory(base, "nanochat4j-optim-test-").resolve("aeron");
        int port = 42000 + (int) (ProcessHandle.current().pid() % 2000) * 8;
        ExecutorService pool = Executors.newFixedThreadPool(world);
        MediaDriver driver = LocalDriver.launch(dir);
        try {
            List<Future<T>> fs = new ArrayList<>();
            for (int r = 0; r < world; r++) {
                DistEnv env = new DistEnv(r, world, r, world, 0, List.of("127.0.0.1"), port, dir, false, Duration.ofSeconds(60));
                fs.add(pool.submit(() -> {
                    try (Collective c = Collective.create(env, "optim-test")) {
                        return body.run(c);
                    }
                }));
            }
            List<T> out = new ArrayList<>();
            for (Future<T> f : fs) out.add(f.get(120, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
            driver.close();
            Files.deleteIfExists(dir.getParent());
        }
    }

    /** Small and large AdamW params, Muon stacks of 3 wide (uneven over 2 ranks), 2 tall, and 1 gate (rank 1 owns none). */
    private static List<Parameter> params() {
        List<Parameter> ps = MuonAdamWBehaviourTest.menagerie(5, 0);
        Random r = new Random(6);
        float[] gate = new float[12];
        for (int i = 0; i < gate.length; i++) gate[i] = (r.nextInt(200) - 100) / 1024f;
        ps.add(MuonAdamWBehaviourTest.param("gate", gate, 1, 12));
        return ps;
    }

    private static List<ParamGroup> groups(List<Parameter> ps) {
        List<ParamGroup> g = new ArrayList<>(MuonAdamWBehaviourTest.menagerieGroups(ps));
        g.add(MuonAdamWBehaviourTest.muon("gate", ps.subList(7, 8), 0.02, 0.95, 0.9, 5, 0.2));
        return g;
    }

    /** Rank r's gradient at a step: multiples of 2^-16 below 2^-6 in magnitude, so sums over ranks are exact in fp32. */
    private static void rankGrads(List<Parameter> ps, int rank, int step) {
        Random r = new Random(1000L * step + rank);
        for (Parameter p : ps) {
            float[] g = MuonAdamWBehaviourTest.grad(p);
            for (int i = 0; i < g.length; i++) g[i] = (r.nextInt(2048) - 1024) / 65536f;
        }
    }

    private static void meanGrads(List<Parameter> ps, int world, int step) {
        List<List<float[]>> per = new ArrayList<>();
        for (int rank = 0; rank < world; rank++) {
            rankGrads(ps, rank, step);
            per.add(ps.stream().map(p -> MuonAdamWBehaviourTest.grad(p).clone()).toList());
        }
        for (int k = 0; k < ps.size(); k++) {
            float[] g = MuonAdamWBehaviourTest.grad(ps.get(k));
            for (int i = 0; i < g.length; i++) {
                float s = 0;
                for (int rank = 0; rank < world; rank++) s += per.get(rank).get(k)[i];
                g[i] = s / world;
            }
        }
    }

    private static List<float[]> values(List<Parameter> ps) {
        return ps.stream().map(p -> MuonAdamWBehaviourTest.data(p).clone()).toList();
    }

    @Test
    void ranksEndWithTheSingleProcessResultOfTheAveragedGradients() throws Exception {
        int steps = 3;
        List<Parameter> ref = params();
        MuonAdamW single = new MuonAdamW(groups(ref));
        for (int s = 0; s < steps; s++) {
            meanGrads(ref, WORLD, s);
            single.step();
        }
        List<float[]> want = values(ref);

        List<List<float[]>> got = onRanks(WORLD, c -> {
            List<Parameter> ps = params();
            MuonAdamW opt = new MuonAdamW(groups(ps), c);
            assertEquals(c.rank(), opt.rank());
            for (int s = 0; s < steps; s++) {
                rankGrads(ps, c.rank(), s);
                opt.step();
                opt.zeroGrad();
            }
            return values(ps);
        });
        List<Parameter> names = params();
        for (int r = 0; r < WORLD; r++) {
            for (int k = 0; k < want.size(); k++) {
                assertArrayEquals(want.get(k), got.get(r).get(k), "rank " + r + " " + names.get(k).name());
            }
        }
    }

    @Test
    void stateIsShardedAndResumesBitwisePerRank() throws Exception {
        List<Boolean> ok = onRanks(WORLD, c -> {
            // 4 steps straight
            List<Parameter> a = params();
            MuonAdamW optA = new MuonAdamW(groups(a), c);
            for (int s = 0; s < 4; s++) {
                rankGrads(a, c.rank(), s);
                optA.step();
            }
            // 2 steps, save this rank's state to a file, fresh optimizer, load, 2 more
            List<Parameter> b = params();
            MuonAdamW optB = new MuonAdamW(groups(b), c);
            for (int s = 0; s < 2; s++) {
                rankGrads(b, c.rank(), s);
                optB.step();
            }
            MuonAdamW.State st = optB.state();
            int shardRows = 1024 / WORLD;
            assertArrayEquals(new int[] {shardRows, 4}, st.tensors().get("adamw.large.exp_avg").shape());
            assertArrayEquals(new int[] {48}, st.tensors().get("adamw.small.exp_avg").shape()); // < 1024: replicated
            assertArrayEquals(new int[] {c.rank() == 0 ? 2 : 1, 32, 64}, st.tensors().get("muon.32x64.momentum_buffer").shape());
            assertArrayEquals(new int[] {c.rank() == 0 ? 1 : 0, 1, 12}, st.tensors().get("muon.1x12.second_momentum_buffer").shape());
            assertEquals(Integer.toString(c.rank()), st.metadata().get("rank"));
            Path dir = Files.createTempDirectory("optim-dist-ckpt");
            Path file = optB.save(dir, 2);
            assertEquals("optim_000002_rank" + c.rank() + ".safetensors", file.getFileName().toString());
            List<Parameter> resumed = new ArrayList<>();
            for (Parameter p : b) resumed.add(MuonAdamWBehaviourTest.param(p.name(), MuonAdamWBehaviourTest.data(p).clone(), p.shape()));
            MuonAdamW optC = new MuonAdamW(groups(resumed), c);
            optC.load(dir, 2);
            for (int s = 2; s < 4; s++) {
                rankGrads(resumed, c.rank(), s);
                optC.step();
            }
            for (int k = 0; k < a.size(); k++) {
                assertArrayEquals(MuonAdamWBehaviourTest.data(a.get(k)), MuonAdamWBehaviourTest.data(resumed.get(k)), a.get(k).name());
            }
            // a single-process optimizer must refuse this rank's file
            MuonAdamW solo = new MuonAdamW(groups(params()));
            var e = assertThrows(IllegalArgumentException.class, () -> solo.loadState(optB.state()));
            assertTrue(e.getMessage().contains("world_size"), e.getMessage());
            Files.deleteIfExists(file);
            Files.deleteIfExists(dir);
            return true;
        });
        assertEquals(List.of(true, true), ok);
    }

    @Test
    void largeAdamwParamWhoseRowsDoNotDivideTheWorldIsRejected() throws Exception {
        List<String> msgs = onRanks(WORLD, c -> {
            Parameter odd = MuonAdamWBehaviourTest.param("odd", new float[1025 * 1], 1025, 1);
            var e = assertThrows(IllegalArgumentException.class,
                    () -> new MuonAdamW(List.of(MuonAdamWBehaviourTest.adamw("odd", List.of(odd), 0.1, 0.8, 0.9, 1e-10, 0)), c));
            return e.getMessage();
        });
        assertTrue(msgs.getFirst().contains("odd") && msgs.getFirst().contains("1025"), msgs.getFirst());
    }
}
