package nanochat4j.train.optim;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * nanochat's MuonAdamW: AdamW for embeddings, lm_head and scalars; Muon for the transformer matrices, one Muon
 * group per distinct shape (nanochat reference §5).
 * <ul>
 *   <li>Every group remembers its {@code initialLr}; the training loop's schedules set lr = initialLr·multiplier
 *       ({@link #setLrMultiplier}), the Muon momentum and the Muon weight decay (AdamW weight decay is constant).</li>
 *   <li>fp32 master weights and fp32 state; the update math is in {@link AdamW}, {@link Muon}, {@link PolarExpress}.</li>
 *   <li>{@link #step()} runs nanochat's ZeRO-2 shape in three phases — reduce gradients, update the owned slice,
 *       gather — so a collective plugs in without touching the math. On one rank there is no communication and
 *       the owned slice is everything.</li>
 *   <li>State (moments, step counts, Muon buffers, current hyperparameters) is exported as named fp32 tensors plus
 *       string metadata ({@link #state()}, {@link #loadState}) for {@code optim_<step>_rank<r>.safetensors};
 *       a resumed run continues bitwise.</li>
 * </ul>
 */
public final class MuonAdamW {

    /** A parameter as the optimizer sees it: its name, shape, and fp32 values and gradient (row-major, same size). */
    public record Param(String name, int[] shape, float[] data, float[] grad) {
        public Param {
            long n = 1;
            for (int d : shape) {
                if (d < 0) throw new IllegalArgumentException("param " + name + ": negative dimension in " + Arrays.toString(shape));
                n *= d;
            }
            if (data.length != n || grad.length != n) {
                throw new IllegalArgumentException("param " + name + " of shape " + Arrays.toString(shape) + " (" + n
                        + " elements) has data[" + data.length + "] and grad[" + grad.length + "]");
            }
        }

        public int numel() {
            return data.length;
        }
    }

    /** A parameter group, as nanochat's setup_optimizer forms them; {@code params} are parameter names. */
    public sealed interface Group permits AdamWGroup, MuonGroup {
        List<String> params();

        double lr();
    }

    public record AdamWGroup(List<String> params, double lr, double beta1, double beta2, double eps, double weightDecay)
            implements Group {
        public AdamWGroup {
            params = List.copyOf(params);
        }
    }

    /** All params of a Muon group are 2-D with the same shape. */
    public record MuonGroup(List<String> params, double lr, double momentum, double beta2, int nsSteps, double weightDecay)
            implements Group {
        public MuonGroup {
            params = List.copyOf(params);
        }
    }

    /** One state tensor: shape and fp32 values. */
    public record StateTensor(int[] shape, float[] data) {}

    /** Everything needed to resume: tensors by name plus string metadata (what a safetensors file holds). */
    public record State(Map<String, StateTensor> tensors, Map<String, String> metadata) {}

    public static final String STATE_FORMAT = "nanochat4j-muonadamw/1";

    // ------------------------------------------------------------------ per-group runtime state

    /** AdamW state of one parameter: the owned flat range [begin, end) and its moments. */
    private static final class AdamWSlot {
        final Param param;
        final int begin, end;
        final float[] expAvg, expAvgSq;
        long step;

        AdamWSlot(Param param, int begin, int end) {
            this.param = param;
            this.begin = begin;
            this.end = end;
            this.expAvg = new float[end - begin];
            this.expAvgSq = new float[end - begin];
        }
    }

    private abstract static sealed class GroupState permits AdamWState, MuonState {
        final double initialLr;
        double lr;

        GroupState(double initialLr) {
            this.initialLr = initialLr;
            this.lr = initialLr;
        }
    }

    private static final class AdamWState extends GroupState {
        final AdamWGroup spec;
        final List<AdamWSlot> slots = new ArrayList<>();

        AdamWState(AdamWGroup spec) {
            super(spec.lr());
            this.spec = spec;
        }
    }

    private static final class MuonState extends GroupState {
        final MuonGroup spec;
        final List<Param> params;
        final int rows, cols;
        /** Owned params: indices [first, first + muon.count) of {@code params}. */
        final int first;
        final Muon muon;
        double momentum, weightDecay;

        MuonState(MuonGroup spec, List<Param> params, int first, int owned) {
            super(spec.lr());
            this.spec = spec;
            this.params = params;
            this.rows = params.getFirst().shape()[0];
            this.cols = params.getFirst().shape()[1];
            this.first = first;
            this.muon = new Muon(owned, rows, cols);
            this.momentum = spec.momentum();
            this.weightDecay = spec.weightDecay();
        }

        String key() {
            return "muon." + rows + "x" + cols;
        }
    }

    private final List<GroupState> groups = new ArrayList<>();
    private final List<Param> params;
    private final int rank = 0, world = 1;

    /**
     * Binds the groups to the parameters by name. Every parameter must be in exactly one group; Muon groups hold
     * 2-D parameters of one shape.
     */
    public MuonAdamW(List<? extends Group> groups, List<Param> params) {
        this.params = List.copyOf(params);
        Map<String, Param> byName = new LinkedHashMap<>();
        for (Param p : params) {
            if (byName.put(p.name(), p) != null) throw new IllegalArgumentException("duplicate parameter name " + p.name());
        }
        Map<String, Integer> groupOf = new HashMap<>();
        for (int gi = 0; gi < groups.size(); gi++) {
            Group g = groups.get(gi);
            if (g.params().isEmpty()) throw new IllegalArgumentException("optimizer group " + gi + " has no parameters");
            List<Param> ps = new ArrayList<>();
            for (String name : g.params()) {
                Param p = byName.get(name);
                if (p == null) throw new IllegalArgumentException("optimizer group " + gi + " names unknown parameter " + name);
                Integer prev = groupOf.put(name, gi);
                if (prev != null) {
                    throw new IllegalArgumentException("parameter " + name + " is in optimizer groups " + prev + " and " + gi);
                }
                ps.add(p);
            }
            switch (g) {
                case AdamWGroup a -> {
                    AdamWState st = new AdamWState(a);
                    for (Param p : ps) st.slots.add(new AdamWSlot(p, 0, p.numel()));
                    this.groups.add(st);
                }
                case MuonGroup m -> {
                    int[] shape = ps.getFirst().shape();
                    for (Param p : ps) {
                        if (p.shape().length != 2 || !Arrays.equals(p.shape(), shape)) {
                            throw new IllegalArgumentException("Muon group " + gi + ": parameter " + p.name() + " has shape "
                                    + Arrays.toString(p.shape()) + ", expected 2-D " + Arrays.toString(shape)
                                    + " like " + ps.getFirst().name());
                        }
                    }
                    int chunk = (ps.size() + world - 1) / world;
                    int first = Math.min(ps.size(), rank * chunk);
                    int owned = Math.min(ps.size(), first + chunk) - first;
                    this.groups.add(new MuonState(m, List.copyOf(ps), first, owned));
                }
            }
        }
        for (String name : byName.keySet()) {
            if (!groupOf.containsKey(name)) throw new IllegalArgumentException("parameter " + name + " is in no optimizer group");
        }
    }

    // ------------------------------------------------------------------ step

    /** One optimizer step over every group, using the parameters' current gradients. */
    public void step() {
        // Phase 1 (reduce gradients): with a single rank the local gradients are already the batch's.
        // Phase 2: update what this rank owns (on one rank: every parameter, every row).
        for (GroupState g : groups) {
            switch (g) {
                case AdamWState a -> updateAdamW(a);
                case MuonState m -> updateMuon(m);
            }
        }
        // Phase 3 (gather updated slices): nothing to gather on one rank.
    }

    private static void updateAdamW(AdamWState g) {
        AdamWGroup h = g.spec;
        for (AdamWSlot s : g.slots) {
            s.step++;
            AdamW.Scalars sc = AdamW.Scalars.of(g.lr, h.beta1(), h.beta2(), h.eps(), h.weightDecay(), s.step);
            AdamW.update(s.param.data(), s.begin, s.param.grad(), s.begin, s.expAvg, s.expAvgSq, 0, s.end - s.begin, sc);
        }
    }

    private static void updateMuon(MuonState g) {
        int n = g.muon.count;
        float[][] p = new float[n][], gr = new float[n][];
        int[] off = new int[n];
        for (int j = 0; j < n; j++) {
            Param q = g.params.get(g.first + j);
            p[j] = q.data();
            gr[j] = q.grad();
        }
        g.muon.step(p, off, gr, off, Muon.effectiveLr(g.lr, g.rows, g.cols), g.momentum, g.spec.beta2(), g.weightDecay, g.spec.nsSteps());
    }

    /** Sets every gradient to zero. */
    public void zeroGrad() {
        for (Param p : params) Arrays.fill(p.grad(), 0f);
    }

    // ------------------------------------------------------------------ schedules

    /** lr = initialLr·multiplier on every group. */
    public void setLrMultiplier(double multiplier) {
        for (GroupState g : groups) g.lr = g.initialLr * multiplier;
    }

    public void setMuonMomentum(double momentum) {
        for (GroupState g : groups) if (g instanceof MuonState m) m.momentum = momentum;
    }

    public void setMuonWeightDecay(double weightDecay) {
        for (GroupState g : groups) if (g instanceof MuonState m) m.weightDecay = weightDecay;
    }

    public int groupCount() {
        return groups.size();
    }

    public double lr(int group) {
        return groups.get(group).lr;
    }

    public double initialLr(int group) {
        return groups.get(group).initialLr;
    }

    /** Muon momentum of a Muon group (NaN for AdamW groups). */
    public double momentum(int group) {
        return groups.get(group) instanceof MuonState m ? m.momentum : Double.NaN;
    }

    /** Current weight decay of a group (scheduled for Muon, constant for AdamW). */
    public double weightDecay(int group) {
        return switch (groups.get(group)) {
            case AdamWState a -> a.spec.weightDecay();
            case MuonState m -> m.weightDecay;
        };
    }

    // ------------------------------------------------------------------ state

    /**
     * This rank's state. Tensors: {@code adamw.<param>.exp_avg}, {@code adamw.<param>.exp_avg_sq} (the owned rows),
     * {@code muon.<rows>x<cols>.momentum_buffer} (owned, rows, cols) and {@code .second_momentum_buffer}
     * (owned, rows, 1) or (owned, 1, cols). Metadata: format, rank, world size, AdamW step counts, each group's
     * lr / initial lr / momentum / weight decay and parameter list. The arrays are copies.
     */
    public State state() {
        Map<String, StateTensor> t = new LinkedHashMap<>();
        Map<String, String> md = new LinkedHashMap<>();
        md.put("format", STATE_FORMAT);
        md.put("rank", Integer.toString(rank));
        md.put("world_size", Integer.toString(world));
        md.put("groups", Integer.toString(groups.size()));
        for (int gi = 0; gi < groups.size(); gi++) {
            GroupState g = groups.get(gi);
            String pre = "group." + gi + ".";
            md.put(pre + "lr", Double.toString(g.lr));
            md.put(pre + "initial_lr", Double.toString(g.initialLr));
            switch (g) {
                case AdamWState a -> {
                    md.put(pre + "kind", "adamw");
                    md.put(pre + "params", String.join(",", a.spec.params()));
                    for (AdamWSlot s : a.slots) {
                        String k = "adamw." + s.param.name();
                        int[] shape = sliceShape(s);
                        t.put(k + ".exp_avg", new StateTensor(shape, s.expAvg.clone()));
                        t.put(k + ".exp_avg_sq", new StateTensor(shape, s.expAvgSq.clone()));
                        md.put(k + ".step", Long.toString(s.step));
                    }
                }
                case MuonState m -> {
                    md.put(pre + "kind", "muon");
                    md.put(pre + "params", String.join(",", m.spec.params()));
                    md.put(pre + "momentum", Double.toString(m.momentum));
                    md.put(pre + "weight_decay", Double.toString(m.weightDecay));
                    int n = m.muon.count;
                    t.put(m.key() + ".momentum_buffer", new StateTensor(new int[] {n, m.rows, m.cols}, m.muon.momentum.clone()));
                    int[] sShape = m.muon.perRow ? new int[] {n, m.rows, 1} : new int[] {n, 1, m.cols};
                    t.put(m.key() + ".second_momentum_buffer", new StateTensor(sShape, m.muon.second.clone()));
                }
            }
        }
        return new State(t, md);
    }

    private static int[] sliceShape(AdamWSlot s) {
        int[] shape = s.param.shape().clone();
        if (shape.length == 0) return shape;
        int rowLen = s.param.numel() / Math.max(1, shape[0]);
        shape[0] = rowLen == 0 ? 0 : (s.end - s.begin) / rowLen;
        return shape;
    }

    /**
     * Restores a state written by {@link #state()} from an optimizer over the same groups, parameters and world
     * size; any difference (missing or extra tensor, wrong shape, other groups, other rank layout) is an error
     * naming it. Nothing is changed unless everything matches.
     */
    public void loadState(State state) {
        Map<String, String> md = state.metadata();
        State mine = state();
        for (String key : List.of("format", "rank", "world_size", "groups")) {
            if (!mine.metadata().get(key).equals(md.get(key))) {
                throw new IllegalArgumentException("optimizer state: " + key + " is " + md.get(key) + ", expected "
                        + mine.metadata().get(key));
            }
        }
        for (int gi = 0; gi < groups.size(); gi++) {
            for (String f : List.of("kind", "params")) {
                String key = "group." + gi + "." + f;
                if (!mine.metadata().get(key).equals(md.get(key))) {
                    throw new IllegalArgumentException("optimizer state: " + key + " is '" + md.get(key) + "', expected '"
                            + mine.metadata().get(key) + "'");
                }
            }
        }
        for (Map.Entry<String, StateTensor> e : mine.tensors().entrySet()) {
            StateTensor got = state.tensors().get(e.getKey());
            if (got == null) throw new IllegalArgumentException("optimizer state: missing tensor " + e.getKey());
            if (!Arrays.equals(got.shape(), e.getValue().shape()) || got.data().length != e.getValue().data().length) {
                throw new IllegalArgumentException("optimizer state: tensor " + e.getKey() + " has shape "
                        + Arrays.toString(got.shape()) + " (" + got.data().length + " values), expected "
                        + Arrays.toString(e.getValue().shape()));
            }
        }
        for (String name : state.tensors().keySet()) {
            if (!mine.tensors().containsKey(name)) throw new IllegalArgumentException("optimizer state: unexpected tensor " + name);
        }
        // everything matches: copy in
        for (int gi = 0; gi < groups.size(); gi++) {
            GroupState g = groups.get(gi);
            String pre = "group." + gi + ".";
            g.lr = parseDouble(md, pre + "lr");
            switch (g) {
                case AdamWState a -> {
                    for (AdamWSlot s : a.slots) {
                        String k = "adamw." + s.param.name();
                        copy(state, k + ".exp_avg", s.expAvg);
                        copy(state, k + ".exp_avg_sq", s.expAvgSq);
                        s.step = (long) parseDouble(md, k + ".step");
                    }
                }
                case MuonState m -> {
                    m.momentum = parseDouble(md, pre + "momentum");
                    m.weightDecay = parseDouble(md, pre + "weight_decay");
                    copy(state, m.key() + ".momentum_buffer", m.muon.momentum);
                    copy(state, m.key() + ".second_momentum_buffer", m.muon.second);
                }
            }
        }
    }

    private static void copy(State state, String name, float[] into) {
        float[] src = state.tensors().get(name).data();
        System.arraycopy(src, 0, into, 0, into.length);
    }

    private static double parseDouble(Map<String, String> md, String key) {
        String v = md.get(key);
        if (v == null) throw new IllegalArgumentException("optimizer state: missing metadata " + key);
        try {
            return Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("optimizer state: metadata " + key + " = '" + v + "' is not a number", e);
        }
    }
}
