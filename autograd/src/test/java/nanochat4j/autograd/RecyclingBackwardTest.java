package nanochat4j.autograd;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.Recycler;
import nanochat4j.tensor.Reduction;
import nanochat4j.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A backward pass inside a {@link Recycler} scope gives dead op outputs and gradients back to the pool; the steps
 * that follow write into them. Training must not see a difference: every gradient, loss and parameter bit for bit
 * as without recycling (the suite runs poisoned, so a buffer given back while something still reads it turns into
 * NaN here). The graph is a one-layer GPT made of every op the model uses, including the aliasing cases: add hands
 * one dy to both inputs, reshape a view of it, lambda_mix may take the same var as x and x0.
 */
class RecyclingBackwardTest {
    static final int B = 2, T = 8, C = 32, H = 4, KV = 2, D = 8, V = 40, VPAD = 48;

    @BeforeEach
    @AfterEach
    void emptyTapeAndPool() {
        Tape.current().clear();
        for (int i = 0; i < 2; i++) Recycler.open().close();
    }

    /** The parameters of the one-layer model, initialised from one seed. */
    static final class Model {
        final List<Parameter> all = new ArrayList<>();
        final Parameter wte, smearW, smearL, lamA, lamB, wq, wk, wv, ve, veGate, wo, fc, proj, backL, lmHead;
        final Backend.RotaryTables rope = Backend.cpu().rotaryTables(T, D, 10000);

        Model(long seed) {
            SplittableRandom r = new SplittableRandom(seed);
            wte = p("wte", r, 1, V, C);
            smearW = p("smear", r, 0.3, 1, 24);
            smearL = p("smear_lambda", r, 0.3, 1);
            lamA = p("resid_lambdas", r, 1, 1);
            lamB = p("x0_lambdas", r, 1, 1);
            wq = p("q", r, 0.2, H * D, C);
            wk = p("k", r, 0.2, KV * D, C);
            wv = p("v", r, 0.2, KV * D, C);
            ve = p("value_embed", r, 1, V, KV * D);
            veGate = p("ve_gate", r, 0.3, KV, 12);
            wo = p("proj", r, 0.2, C, H * D);
            fc = p("c_fc", r, 0.2, 4 * C, C);
            proj = p("c_proj", r, 0.1, C, 4 * C);
            backL = p("backout_lambda", r, 0.2, 1);
            lmHead = p("lm_head", r, 0.2, VPAD, C);
        }

        private Parameter p(String name, SplittableRandom r, double scale, int... shape) {
            float[] v = new float[Tensor.numel(shape)];
            for (int i = 0; i < v.length; i++) v[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
            Parameter p = new Parameter(name, Tensor.of(v, shape));
            all.add(p);
            return p;
        }

        /** Per-row losses (NONE) or their mean. */
        Var loss(Tensor ids, Tensor targets, Reduction red) {
            Var x = Ops.smear(Ops.embedding(wte.var(), ids), smearW.var(), smearL.var(), 24);
            Var x0 = Ops.rmsNorm(x, 1f);
            Var h = Ops.lambdaMix(lamA.var(), 0, x0, lamB.var(), 0, x0);              // the same var as x and x0
            Var hn = Ops.rmsNormOut(h, 1f);                                              // backward from its output
            Var q = Ops.linearRotaryNorm(hn, wq.var(), H, rope.cos(), rope.sin(), 0, 1.2f);   // fused
            Var k = Ops.rmsNorm(Ops.rotary(Ops.reshape(Ops.linear(hn, wk.var()), B, T, KV, D), rope.cos(), rope.sin(), 0), 1.2f);
            Var v = Ops.reshape(Ops.linear(hn, wv.var()), B, T, KV, D);
            v = Ops.valueEmbedMix(v, hn, veGate.var(), ve.var(), ids, 12);
            Var att = Ops.reshape(Ops.attention(q, k, v, 4, 0.35f), B, T, H * D);
            Var mid = Ops.add(h, Ops.linear(att, wo.var()));                           // one dy to h and to proj
            Var mlp = Ops.linear(Ops.relu2(Ops.linear(Ops.rmsNorm(mid, 1f), fc.var())), proj.var());
            Var mid2 = Ops.mlpResidual(Ops.add(mid, mlp), fc.var(), proj.var(), null);   // fused, same weights
            Var out = Ops.backout(Ops.linearResidual(mid2, att, wo.var(), null), backL.var(), mid);
            Var flat = Ops.reshape(Ops.rmsNorm(out, 1f), B * T, C);
            return Ops.linearSoftcapCrossEntropy(flat, lmHead.var(), targets, V, 15f, red);
        }

        void sgdStep() {
            for (Parameter p : all) {
                Backend.cpu().axpy(-0.05f, p.grad(), p.tensor());
                p.zeroGrad();
            }
        }
    }

    /** Three optimizer steps of two micro-steps each; returns every loss then every parameter, flattened. */
    static float[] train(boolean recycle, Reduction red) {
        Model m = new Model(7);
        SplittableRandom r = new SplittableRandom(3);
        List<Float> trace = new ArrayList<>();
        for (int step = 0; step < 3; step++) {
            for (int micro = 0; micro < 2; micro++) {
                int[] ids = new int[B * T], tg = new int[B * T];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = r.nextInt(V);
                    tg[i] = i % 7 == 3 ? -1 : r.nextInt(V);
                }
                float[] w = new float[B * T];
                for (int i = 0; i < w.length; i++) w[i] = (float) r.nextDouble();
                try (var s = recycle ? Recycler.open() : null) {
                    Var nll = m.loss(Tensor.ofInts(ids, B, T), Tensor.ofInts(tg), red);
                    Var loss = red == Reduction.NONE ? Ops.dot(nll, Tensor.of(w)) : nll;   // RL's weighted per-row losses
                    float before = loss.item();
                    loss.backward(0.5f);
                    assertEquals(before, loss.item(), "the root's value survives its backward pass");
                    trace.add(before);
                }
            }
            for (Parameter p : m.all) for (float g : p.grad().toFloatArray()) assertTrue(Float.isFinite(g), p + " has a non-finite gradient");
            m.sgdStep();
        }
        for (Parameter p : m.all) for (float v : p.tensor().toFloatArray()) trace.add(v);
        float[] out = new float[trace.size()];
        for (int i = 0; i < out.length; i++) out[i] = trace.get(i);
        return out;
    }

    @Test
    void trainingWithRecycledBuffersIsBitIdentical() {
        assertArrayEquals(train(false, Reduction.MEAN), train(true, Reduction.MEAN));
    }

    @Test
    void perRowLossesWeightedLikeRlAreBitIdenticalToo() {
        assertArrayEquals(train(false, Reduction.NONE), train(true, Reduction.NONE));
    }

    @Test
    void aBackwardPassFillsThePoolAndTheNextForwardDrawsFromIt() {
        Model m = new Model(11);
        Tensor ids = Tensor.ofInts(new int[B * T], B, T), tg = Tensor.ofInts(new int[B * T]);
        try (var s = Recycler.open()) {
            m.loss(ids, tg, Reduction.MEAN).backward();
        }
        int pooled = Recycler.pooledCount();
        assertTrue(pooled >= 10, "a step gives back its activations and gradients: " + pooled);
        try (var s = Recycler.open()) {
            m.loss(ids, tg, Reduction.MEAN);
            assertTrue(Recycler.pooledCount() < pooled / 2, "the forward took them back: " + Recycler.pooledCount() + " of " + pooled + " left");
            Tape.current().clear();
        }
    }

    @Test
    void aLeafGradientTheCallerHoldsIsNeverGivenBack() {
        Var a = Gradcheck.leaf(Tensor.of(new float[] {1, -2, 3, 0.5f}, 2, 2));
        try (var s = Recycler.open()) {
            // a's gradient is the dy that add hands to both of its inputs, and a view of it through reshape
            Var y = Ops.add(a, Ops.reshape(Ops.relu2(Ops.reshape(a, 4)), 2, 2));
            Ops.dot(y, Tensor.of(new float[] {1, 2, 3, 4}, 2, 2)).backward();
            Tensor fresh = Tensor.uninitialized(2, 2);   // would be a's gradient's storage if it had gone back
            fresh.fill(99f);
        }
        // d/da (a + relu(a)²)·r = r·(1 + 2·relu(a))
        assertArrayEquals(new float[] {3, 2, 21, 8}, a.grad().toFloatArray());
    }
}
