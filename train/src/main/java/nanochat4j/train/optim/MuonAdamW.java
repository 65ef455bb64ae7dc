package nanochat4j.train.optim;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.autograd.Parameter;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT.ParamGroup;
import nanochat4j.tensor.Backend;
import nanochat4j.tensor.DType;
import nanochat4j.tensor.Device;
import nanochat4j.tensor.Tensor;
import nanochat4j.train.collective.Collective;
import nanochat4j.train.collective.SharedFloats;
import nanochat4j.train.collective.ReduceOp;

/**
 * nanochat's MuonAdamW: AdamW for embeddings, lm_head and scalars; Muon for the transformer
 * matrices, one Muon group per distinct shape — the groups {@code GPT.paramGroups} forms.
 * <ul>
 *   <li>Every group keeps its {@code initialLr}; the training loop's {@link Schedules} set lr = initialLr·multiplier
 *       ({@link #setLrMultiplier}), the Muon momentum and the Muon weight decay (AdamW weight decay is constant).</li>
 *   <li>fp32 master weights, fp32 state; the update math lives in {@link AdamW}, {@link Muon} and {@link PolarExpress}.</li>
 *   <li>{@link #step()} has nanochat's ZeRO-2 shape, three phases, ReduceOp AVG: (1) start the gradient reductions
 *       of every group — AdamW params under 1024 elements all-reduced, larger ones (rows divisible by the world)
 *       reduce-scattered by rows, each Muon group's gradients stacked into (⌈K/W⌉·W, rows, cols), zero-padded and
 *       reduce-scattered; (2) per group, wait for its reduction and update the owned slice (large AdamW: rows
 *       [r·R/W, (r+1)·R/W); Muon: params [r·⌈K/W⌉, (r+1)·⌈K/W⌉)), then start the all-gather of the result;
 *       (3) wait for the gathers and copy the Muon stacks back. State exists only for owned slices.
 *       With one rank nothing is communicated and everything is owned: the same math, no copies.</li>
 *   <li>With a collective, the gradient buffers of reduce-scattered parameters are scratch after {@link #step()}.</li>
 *   <li>State (moments, step counts, Muon buffers, current hyperparameters) is exported as named fp32 tensors plus
 *       string metadata ({@link #state()}) and saved as {@code optim_<step>_rank<r>.safetensors}
 *       ({@link #save}/{@link #load}); a resumed run continues bitwise. Resuming needs the same world size.</li>
 *   <li>Parameters on a device (a GPT on CUDA): on one rank every group is updated in place on the GPU — AdamW by
 *       the fused kernel (bit for bit the CPU update), Muon by {@link DeviceMuon} (batched GEMMs; equal to the CPU
 *       Muon to float rounding) — with the state in device memory (copied through host arrays to save and load).
 *       With several ranks every group is staged: each step copies values and gradients down into host mirrors,
 *       runs the host math and the host collective, and copies the values back up.</li>
 * </ul>
 */
public final class MuonAdamW {

    /** One state tensor: shape and fp32 values. */
    public record StateTensor(int[] shape, float[] data) {}

    /** Everything needed to resume: tensors by name plus string metadata (what the safetensors file holds). */
    public record State(Map<String, StateTensor> tensors, Map<String, String> metadata) {}

    public static final String STATE_FORMAT = "nanochat4j-muonadamw/1";
    /** AdamW parameters with fewer elements are all-reduced and updated whole on every rank (nanochat's threshold). */
    public static final int SMALL_PARAM = 1024;

    // ------------------------------------------------------------------ per-group runtime state

    /** AdamW state of one parameter: the owned flat range [begin, end) and its moments. */
    private static final class AdamWSlot {
        final Parameter param;
        final boolean replicated;
        final int begin, end;
        /** The moments on the host (for a device slot: the copy {@link #state()} and {@link #loadState} go through). */
        final float[] expAvg, expAvgSq;
        /** The moments in device memory for a parameter updated on the GPU, else null. */
        Tensor devAvg, devAvgSq;
        long step;
        Collective.Pending pending;

        AdamWSlot(Parameter param, boolean replicated, int begin, int end) {
            this.param = param;
            this.replicated = replicated;
            this.begin = begin;
            this.end = end;
            this.expAvg = new float[end - begin];
            this.expAvgSq = new float[end - begin];
        }
    }

    private abstract static sealed class GroupState permits AdamWState, MuonState {
        final ParamGroup spec;
        final double initialLr;
        double lr;

        GroupState(ParamGroup spec) {
            this.spec = spec;
            this.initialLr = spec.lr();
            this.lr = spec.lr();
        }
    }

    private static final class AdamWState extends GroupState {
        final List<AdamWSlot> slots = new ArrayList<>();

        AdamWState(ParamGroup spec) {
            super(spec);
        }
    }

    private static final class MuonState extends GroupState {
        final List<Parameter> params;
        final int rows, cols, chunk;
        /** Owned params: indices [first, first + muon.count) of {@link #params}. */
        final int first;
        final Muon muon;
        /** The update on the GPU for a one-rank device model ({@link #muon} then only holds the state for files), else null. */
        final DeviceMuon device;
        /**
         * (chunk·world, rows, cols) gradient/parameter stack for the collective, in a shared buffer so that ranks of
         * one host reduce and gather it without copies; null on one rank.
         */
        final SharedFloats stack;
        /** This rank's reduced chunk of the stack, as Muon reads it; null on one rank. */
        final float[] ownGrads;
        double momentum, weightDecay;
        Collective.Pending pending;

        MuonState(ParamGroup spec, int rank, int world, Collective comm) {
            super(spec);
            this.params = spec.params();
            this.rows = params.getFirst().shape()[0];
            this.cols = params.getFirst().shape()[1];
            int k = params.size();
            this.chunk = (k + world - 1) / world;
            this.first = Math.min(k, rank * chunk);
            this.muon = new Muon(Math.min(k, first + chunk) - first, rows, cols);
            Parameter p0 = params.getFirst();
            this.device = p0.device() == Device.CUDA ? new DeviceMuon(Backend.of(p0.tensor()), k, rows, cols) : null;
            this.stack = world == 1 ? null : comm.sharedFloats(Math.multiplyExact(chunk * world, rows * cols));
            this.ownGrads = world == 1 ? null : new float[chunk * rows * cols];
            this.momentum = spec.momentum();
            this.weightDecay = spec.weightDecay();
        }

        String key() {
            return "muon." + rows + "x" + cols;
        }
    }

    private final List<GroupState> groups = new ArrayList<>();
    private final List<Parameter> params = new ArrayList<>();
    /** Device parameters and the host mirrors the optimizer updates in their place (empty for a CPU model). */
    private final List<Staged> staged = new ArrayList<>();

    /** A device parameter and its host mirror (value and gradient in heap arrays). */
    private record Staged(Parameter device, Parameter host) {}
    /** Null on a single rank (no communication). */
    private final Collective comm;
    private final int rank, world;

    /**
     * For a data-parallel job whose gradients arrive already averaged ({@code OverlappedGradReduce}): every rank runs
     * the whole optimizer as a world of one (on a GPU: in place on the device), so the state is the same on every
     * rank; rank 0 writes it ({@code optim_<step>_rank0}) and every rank reads that file to resume.
     */
    public static MuonAdamW replicated(List<ParamGroup> groups, int jobRank) {
        MuonAdamW o = new MuonAdamW(groups, null);
        o.replicaRank = jobRank;
        return o;
    }

    /** This process's rank in a job running {@link #replicated} optimizers, else -1. */
    private int replicaRank = -1;

    /** Single-process optimizer over the model's groups ({@code GPT.paramGroups(...)}). */
    public MuonAdamW(List<ParamGroup> groups) {
        this(groups, null);
    }

    /**
     * Data-parallel optimizer: gradients are averaged over the collective's ranks inside {@link #step()} and each
     * rank keeps the state of its shard. A null collective or a world of one is the single-process optimizer.
     */
    public MuonAdamW(List<ParamGroup> groups, Collective collective) {
        groups = stageOnHost(groups, collective == null || collective.worldSize() == 1);
        this.comm = collective == null || collective.worldSize() == 1 ? null : collective;
        this.rank = comm == null ? 0 : comm.rank();
        this.world = comm == null ? 1 : comm.worldSize();
        Map<Parameter, String> seen = new IdentityHashMap<>();
        for (ParamGroup g : groups) {
            if (g.params().isEmpty()) throw new IllegalArgumentException("optimizer group " + g.name() + " has no parameters");
            for (Parameter p : g.params()) {
                String prev = seen.put(p, g.name());
                if (prev != null) throw new IllegalArgumentException("parameter " + p.name() + " is in groups " + prev + " and " + g.name());
                if (p.device() == Device.CPU) {
                    p.tensor().floats(); // fp32 master weights: fails with the tensor's dtype otherwise
                    p.grad().floats();
                } else if (p.tensor().dtype() != DType.F32 || p.grad().dtype() != DType.F32) {
                    throw new IllegalArgumentException("parameter " + p.name() + " is " + p.tensor().dtype() + " with a "
                            + p.grad().dtype() + " gradient: the optimizer keeps fp32 master weights");
                }
                params.add(p);
            }
            switch (g.kind()) {
                case ADAMW -> {
                    AdamWState st = new AdamWState(g);
                    for (Parameter p : g.params()) st.slots.add(adamwSlot(g, p));
                    this.groups.add(st);
                }
                case MUON -> {
                    int[] shape = g.params().getFirst().shape();
                    for (Parameter p : g.params()) {
                        if (p.shape().length != 2 || !Arrays.equals(p.shape(), shape)) {
                            throw new IllegalArgumentException("Muon group " + g.name() + ": parameter " + p.name() + " has shape "
                                    + Arrays.toString(p.shape()) + ", expected 2-D " + Arrays.toString(shape) + " like "
                                    + g.params().getFirst().name());
                        }
                    }
                    for (GroupState other : this.groups) {
                        if (other instanceof MuonState m && m.rows == shape[0] && m.cols == shape[1]) {
                            throw new IllegalArgumentException("Muon groups " + m.spec.name() + " and " + g.name()
                                    + " have the same shape " + Arrays.toString(shape) + " (one group per shape)");
                        }
                    }
                    this.groups.add(new MuonState(g, rank, world, comm));
                }
            }
        }
    }

    /**
     * The groups with every device parameter replaced by a host mirror (recorded in {@link #staged}); groups of CPU
     * parameters unchanged. Every parameter must be on one device.
     */
    private List<ParamGroup> stageOnHost(List<ParamGroup> groups, boolean singleRank) {
        Device device = null;
        String first = null;
        for (ParamGroup g : groups) {
            for (Parameter p : g.params()) {
                if (device == null) {
                    device = p.device();
                    first = p.name();
                } else if (p.device() != device) {
                    throw new IllegalArgumentException("optimizer: parameter " + p.name() + " is in " + p.device() + " memory but "
                            + first + " is in " + device + " memory; move the whole model to one device");
                }
            }
        }
        if (device == null || device == Device.CPU) return groups;
        List<ParamGroup> out = new ArrayList<>();
        for (ParamGroup g : groups) {
            if (singleRank && device == Device.CUDA) { // updated on the GPU (AdamW kernel, DeviceMuon)
                out.add(g);
                continue;
            }
            List<Parameter> mirrors = new ArrayList<>();
            for (Parameter p : g.params()) {
                Parameter h = new Parameter(p.name(), Tensor.zeros(p.shape()));
                staged.add(new Staged(p, h));
                mirrors.add(h);
            }
            out.add(new ParamGroup(g.name(), g.kind(), List.copyOf(mirrors), g.lr(), g.beta1(), g.beta2(), g.eps(), g.weightDecay(),
                    g.momentum(), g.nsSteps()));
        }
        return out;
    }

    private AdamWSlot adamwSlot(ParamGroup g, Parameter p) {
        int n = p.numel();
        if (p.device() == Device.CUDA) { // one rank, updated whole on the GPU (several ranks stage it on the host)
            AdamWSlot s = new AdamWSlot(p, true, 0, n);
            s.devAvg = Backend.of(p.tensor()).zeros(n);
            s.devAvgSq = Backend.of(p.tensor()).zeros(n);
            return s;
        }
        if (world == 1 || n < SMALL_PARAM) return new AdamWSlot(p, true, 0, n);
        int rows = p.shape()[0];
        if (rows % world != 0) {
            throw new IllegalArgumentException("AdamW group " + g.name() + ": parameter " + p.name() + " " + Arrays.toString(p.shape())
                    + " has " + rows + " rows, not divisible by the world size " + world + " (needed to shard it by rows)");
        }
        return new AdamWSlot(p, false, Collective.shardStart(n, rank, world), Collective.shardStart(n, rank + 1, world));
    }

    // ------------------------------------------------------------------ step

    /** One optimizer step over every group, from the parameters' accumulated gradients. */
    public void step() {
        for (Staged s : staged) { // values and gradients down (the values may have been loaded since the last step)
            s.host.tensor().copyFrom(s.device.tensor());
            s.host.grad().copyFrom(s.device.grad());
        }
        stepHost();
        for (Staged s : staged) s.device.tensor().copyFrom(s.host.tensor()); // updated values up
    }

    private void stepHost() {
        // Phase 1: start every group's gradient reduction, in group order (nothing to do on one rank).
        if (comm != null) {
            for (GroupState g : groups) {
                switch (g) {
                    case AdamWState a -> reduceAdamW(a);
                    case MuonState m -> reduceMuon(m);
                }
            }
        }
        // Phase 2: per group, wait for its reduction, update the owned slice, start gathering it.
        for (GroupState g : groups) {
            switch (g) {
                case AdamWState a -> updateAdamW(a);
                case MuonState m -> updateMuon(m);
            }
        }
        // Phase 3: wait for the gathers; Muon stacks back into the parameters.
        if (comm != null) {
            for (GroupState g : groups) {
                switch (g) {
                    case AdamWState a -> {
                        for (AdamWSlot s : a.slots) awaitPending(s);
                    }
                    case MuonState m -> unstackMuon(m);
                }
            }
        }
    }

    private void reduceAdamW(AdamWState a) {
        for (AdamWSlot s : a.slots) {
            float[] g = s.param.grad().floats();
            int off = s.param.grad().offset(), n = s.param.numel();
            s.pending = s.replicated ? comm.allReduceAsync(g, off, n, ReduceOp.AVG) : comm.reduceScatterAsync(g, off, n, ReduceOp.AVG);
        }
    }

    private void reduceMuon(MuonState m) {
        int mn = m.rows * m.cols;
        for (int j = 0; j < m.params.size(); j++) {
            var grad = m.params.get(j).grad();
            m.stack.copyFrom(grad.floats(), grad.offset(), j * mn, mn);
        }
        m.stack.fill(m.params.size() * mn, m.stack.length(), 0f);
        m.pending = comm.reduceScatterAsync(m.stack, 0, m.stack.length(), ReduceOp.AVG);
    }

    private static void awaitPending(AdamWSlot s) {
        if (s.pending != null) {
            s.pending.await();
            s.pending = null;
        }
    }

    private void updateAdamW(AdamWState g) {
        for (AdamWSlot s : g.slots) {
            awaitPending(s);
            s.step++;
            AdamW.Scalars sc = AdamW.Scalars.of(g.lr, g.spec.beta1(), g.spec.beta2(), g.spec.eps(), g.spec.weightDecay(), s.step);
            var p = s.param.tensor();
            var grad = s.param.grad();
            if (s.devAvg != null) {
                Backend.of(p).adamw(p.reshape(-1), grad.reshape(-1), s.devAvg, s.devAvgSq, sc.decay(), sc.w1(), sc.w2(),
                        sc.bias2(), sc.eps(), sc.stepSize());
                continue;
            }
            AdamW.update(p.floats(), p.offset() + s.begin, grad.floats(), grad.offset() + s.begin, s.expAvg, s.expAvgSq, 0,
                    s.end - s.begin, sc);
            if (comm != null && !s.replicated) s.pending = comm.allGatherAsync(p.floats(), p.offset(), s.param.numel());
        }
    }

    private void updateMuon(MuonState g) {
        if (g.device != null) {
            Tensor[] p = new Tensor[g.params.size()], gr = new Tensor[p.length];
            for (int j = 0; j < p.length; j++) {
                p[j] = g.params.get(j).tensor();
                gr[j] = g.params.get(j).grad();
            }
            g.device.step(p, gr, Muon.effectiveLr(g.lr, g.rows, g.cols), g.momentum, g.spec.beta2(), g.weightDecay, g.spec.nsSteps());
            return;
        }
        int n = g.muon.count, mn = g.rows * g.cols;
        float[][] p = new float[n][], gr = new float[n][];
        int[] pOff = new int[n], gOff = new int[n];
        if (comm != null) {
            g.pending.await();
            g.pending = null;
            g.stack.copyTo(rank * g.chunk * mn, g.ownGrads, 0, n * mn);
        }
        for (int j = 0; j < n; j++) {
            Parameter q = g.params.get(g.first + j);
            p[j] = q.tensor().floats();
            pOff[j] = q.tensor().offset();
            if (comm == null) {
                gr[j] = q.grad().floats();
                gOff[j] = q.grad().offset();
            } else { // this rank's reduced chunk of the stack
                gr[j] = g.ownGrads;
                gOff[j] = j * mn;
            }
        }
        g.muon.step(p, pOff, gr, gOff, Muon.effectiveLr(g.lr, g.rows, g.cols), g.momentum, g.spec.beta2(), g.weightDecay,
                g.spec.nsSteps());
        if (comm != null) {
            int base = rank * g.chunk * mn;
            for (int j = 0; j < n; j++) g.stack.copyFrom(p[j], pOff[j], base + j * mn, mn);
            g.stack.fill(base + n * mn, base + g.chunk * mn, 0f);
            g.pending = comm.allGatherAsync(g.stack, 0, g.stack.length());
        }
    }

    private static void unstackMuon(MuonState g) {
        g.pending.await();
        g.pending = null;
        int mn = g.rows * g.cols;
        for (int j = 0; j < g.params.size(); j++) {
            var t = g.params.get(j).tensor();
            g.stack.copyTo(j * mn, t.floats(), t.offset(), mn);
        }
    }

    /** Sets every gradient to zero. */
    public void zeroGrad() {
        for (Parameter p : params) p.zeroGrad();
        for (Staged s : staged) s.device.zeroGrad();
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

    /**
     * Runs the GPU's polar express in fp32 even under bf16 matmuls (where it otherwise takes bf16 operands, as
     * nanochat's): a run's update then sums the same way whatever the number of ranks (base-train's --muon-precision).
     */
    public void setPolarExpressFp32(boolean fp32) {
        for (GroupState g : groups) if (g instanceof MuonState m && m.device != null) m.device.fp32Gemms = fp32;
    }

    public int groupCount() {
        return groups.size();
    }

    public ParamGroup group(int group) {
        return groups.get(group).spec;
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

    public int rank() {
        return rank;
    }

    public int worldSize() {
        return world;
    }

    // ------------------------------------------------------------------ state

    /** {@code optim_<step>_rank<r>.safetensors} in a checkpoint directory (nanochat's per-rank optimizer file). */
    public static Path stateFile(Path dir, long step, int rank) {
        return dir.resolve(String.format("optim_%06d_rank%d.safetensors", step, rank));
    }

    /** Writes {@link #state()} atomically to {@code stateFile(dir, step, rank())}. */
    public Path save(Path dir, long step) throws IOException {
        Path file = stateFile(dir, step, rank);
        if (replicaRank > 0) return file; // a replica of rank 0's state: rank 0 writes it
        State st = state();
        List<Safetensors.Entry> entries = new ArrayList<>();
        st.tensors().forEach((name, t) -> entries.add(new Safetensors.Entry(name, t.shape(), Safetensors.DType.F32, t.data())));
        Safetensors.write(file, entries, st.metadata());
        return file;
    }

    /** Reads {@code stateFile(dir, step, rank())} and {@link #loadState restores} it. */
    public void load(Path dir, long step) throws IOException {
        Path file = stateFile(dir, step, rank);
        Safetensors.Contents c = Safetensors.read(file);
        Map<String, StateTensor> t = new LinkedHashMap<>();
        c.tensors().forEach((name, e) -> {
            if (e.dtype() != Safetensors.DType.F32) {
                throw new IllegalArgumentException(file + ": optimizer tensor " + name + " is " + e.dtype() + ", expected F32");
            }
            t.put(name, new StateTensor(e.shape(), e.values()));
        });
        try {
            loadState(new State(t, c.metadata()));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(file + ": " + e.getMessage(), e);
        }
    }

    /**
     * This rank's state. Tensors: {@code adamw.<param>.exp_avg}, {@code adamw.<param>.exp_avg_sq} (the owned rows),
     * {@code muon.<rows>x<cols>.momentum_buffer} (owned, rows, cols) and {@code .second_momentum_buffer}
     * (owned, rows, 1) or (owned, 1, cols). Metadata: format, rank, world size, AdamW step counts, and per group its
     * name, kind, parameters, lr, initial lr (and Muon momentum and weight decay). The arrays are copies.
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
            md.put(pre + "name", g.spec.name());
            md.put(pre + "kind", g.spec.kind().name());
            md.put(pre + "params", String.join(",", g.spec.params().stream().map(Parameter::name).toList()));
            md.put(pre + "lr", Double.toString(g.lr));
            md.put(pre + "initial_lr", Double.toString(g.initialLr));
            switch (g) {
                case AdamWState a -> {
                    for (AdamWSlot s : a.slots) {
                        String k = "adamw." + s.param.name();
                        int[] shape = sliceShape(s);
                        if (s.devAvg != null) { // the device moments come down for the file
                            System.arraycopy(s.devAvg.toFloatArray(), 0, s.expAvg, 0, s.expAvg.length);
                            System.arraycopy(s.devAvgSq.toFloatArray(), 0, s.expAvgSq, 0, s.expAvgSq.length);
                        }
                        t.put(k + ".exp_avg", new StateTensor(shape, s.expAvg.clone()));
                        t.put(k + ".exp_avg_sq", new StateTensor(shape, s.expAvgSq.clone()));
                        md.put(k + ".step", Long.toString(s.step));
                    }
                }
                case MuonState m -> {
                    md.put(pre + "momentum", Double.toString(m.momentum));
                    md.put(pre + "weight_decay", Double.toString(m.weightDecay));
                    int n = m.muon.count;
                    if (m.device != null) { // the device state comes down for the file
                        System.arraycopy(m.device.momentum.toFloatArray(), 0, m.muon.momentum, 0, m.muon.momentum.length);
                        System.arraycopy(m.device.second.toFloatArray(), 0, m.muon.second, 0, m.muon.second.length);
                    }
                    t.put(m.key() + ".momentum_buffer", new StateTensor(new int[] {n, m.rows, m.cols}, m.muon.momentum.clone()));
                    int[] sShape = m.muon.perRow ? new int[] {n, m.rows, 1} : new int[] {n, 1, m.cols};
                    t.put(m.key() + ".second_momentum_buffer", new StateTensor(sShape, m.muon.second.clone()));
                }
            }
        }
        return new State(t, md);
    }

    private static int[] sliceShape(AdamWSlot s) {
        int[] shape = s.param.shape();
        if (s.replicated || shape.length == 0) return shape;
        shape[0] = (int) ((long) shape[0] * (s.end - s.begin) / s.param.numel());
        return shape;
    }

    /**
     * Restores a state written by {@link #state()} of an optimizer over the same groups, parameters and world size
     * and the same rank. Any difference (missing or extra tensor, wrong shape, other groups, other world size or
     * rank, unparsable metadata) is an error naming it, and then nothing has been changed.
     */
    public void loadState(State state) {
        Map<String, String> md = state.metadata();
        State mine = state();
        for (String key : List.of("format", "world_size", "rank", "groups")) {
            if (!mine.metadata().get(key).equals(md.get(key))) {
                throw new IllegalArgumentException("optimizer state: " + key + " is " + md.get(key) + ", expected "
                        + mine.metadata().get(key) + (key.equals("world_size") ? " (resuming needs the same world size)" : ""));
            }
        }
        for (int gi = 0; gi < groups.size(); gi++) {
            for (String f : List.of("name", "kind", "params")) {
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
        // parse every number before changing anything
        Map<String, Double> num = new LinkedHashMap<>();
        for (String key : mine.metadata().keySet()) {
            if (key.endsWith(".lr") || key.endsWith(".momentum") || key.endsWith(".weight_decay") || key.endsWith(".step")) {
                num.put(key, parseNumber(md, key));
            }
        }
        for (int gi = 0; gi < groups.size(); gi++) {
            GroupState g = groups.get(gi);
            String pre = "group." + gi + ".";
            g.lr = num.get(pre + "lr");
            switch (g) {
                case AdamWState a -> {
                    for (AdamWSlot s : a.slots) {
                        String k = "adamw." + s.param.name();
                        copy(state, k + ".exp_avg", s.expAvg);
                        copy(state, k + ".exp_avg_sq", s.expAvgSq);
                        if (s.devAvg != null) { // and go up to the device
                            s.devAvg.copyFrom(Tensor.of(s.expAvg));
                            s.devAvgSq.copyFrom(Tensor.of(s.expAvgSq));
                        }
                        s.step = num.get(k + ".step").longValue();
                    }
                }
                case MuonState m -> {
                    m.momentum = num.get(pre + "momentum");
                    m.weightDecay = num.get(pre + "weight_decay");
                    copy(state, m.key() + ".momentum_buffer", m.muon.momentum);
                    copy(state, m.key() + ".second_momentum_buffer", m.muon.second);
                    if (m.device != null) { // and goes up to the device
                        m.device.momentum.copyFrom(Tensor.of(m.muon.momentum, m.device.momentum.shape()));
                        m.device.second.copyFrom(Tensor.of(m.muon.second, m.device.second.shape()));
                    }
                }
            }
        }
    }

    private static void copy(State state, String name, float[] into) {
        System.arraycopy(state.tensors().get(name).data(), 0, into, 0, into.length);
    }

    private static double parseNumber(Map<String, String> md, String key) {
        String v = md.get(key);
        if (v == null) throw new IllegalArgumentException("optimizer state: missing metadata " + key);
        try {
            double d = Double.parseDouble(v);
            if (key.endsWith(".step") && (d < 0 || d != Math.rint(d))) throw new NumberFormatException("not a step count");
            return d;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("optimizer state: metadata " + key + " = '" + v + "' is not a valid number", e);
        }
    }
}
