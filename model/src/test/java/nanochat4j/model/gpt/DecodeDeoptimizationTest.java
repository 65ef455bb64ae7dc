package nanochat4j.model.gpt;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import jdk.jfr.consumer.RecordedEvent;
import jdk.jfr.consumer.RecordedMethod;
import jdk.jfr.consumer.RecordingStream;
import nanochat4j.tensor.Tensor;
import nanochat4j.tensor.cpu.ChildJvm;
import org.junit.jupiter.api.Test;

/**
 * A batch-1 decode that follows a prompt's prefill runs compiled code, not a deoptimization per kernel call.
 * <p>
 * Once C2 has seen many recompilations of the code it inlines (the Vector API's internals collect them from every
 * kernel), it compiles a branch that its profile never saw taken as a trap that falls back to the interpreter on
 * every call and never recompiles. A kernel with a branch on how it is called ("one input row or two") that the
 * prefill compiled first then ran interpreted for the whole decode: 10–15 tok/s instead of ~360 in one JVM in four
 * (docs/BENCHMARKS.md). The child JVM here runs with the launcher's JIT flags and a recompilation cutoff of 20
 * (default 400), which makes C2 choose such traps from the start, so a kernel that branches on its calling mode
 * fails this test every time rather than in an unlucky JVM; JFR counts the deoptimizations of the timed decode.
 */
class DecodeDeoptimizationTest {
    static final GPTConfig CFG = new GPTConfig(256, 4096, 2, 4, 2, 128, "SL");
    static final int PROMPT = 16, STEPS = 60;

    /** One prompt's prefill, then STEPS single-token steps, through a fresh KV cache. */
    static void prefillAndDecode(GPT m, long seed) {
        KVCache cache = new KVCache(m, 1, PROMPT + STEPS + 1);
        Tensor prompt = GPTTest.ids(seed, 1, PROMPT, CFG.vocabSize());
        m.forwardCached(prompt, cache);
        for (int i = 0; i < STEPS; i++) m.forwardCached(GPTTest.ids(seed + i + 1, 1, 1, CFG.vocabSize()), cache);
    }

    /** Child JVM entry: warms up, then prints the deoptimizations of one more prefill + decode, by site. */
    public static void main(String[] args) throws Exception {
        GPT m = TestModels.perturbed(CFG, 5);
        for (int i = 0; i < 30; i++) prefillAndDecode(m, i);   // C2 compiles the prefill and decode paths
        AtomicLong count = new AtomicLong();
        Map<String, AtomicLong> sites = new ConcurrentHashMap<>();
        try (RecordingStream rs = new RecordingStream()) {
            rs.enable("jdk.Deoptimization");
            rs.onEvent("jdk.Deoptimization", e -> {
                count.incrementAndGet();
                sites.computeIfAbsent(site(e), k -> new AtomicLong()).incrementAndGet();
            });
            rs.startAsync();
            for (int i = 0; i < 3; i++) prefillAndDecode(m, 100 + i);
            rs.stop();   // delivers every event recorded so far
        }
        String worst = sites.entrySet().stream().sorted((a, b) -> Long.compare(b.getValue().get(), a.getValue().get()))
                .limit(3).map(e -> e.getValue() + " at " + e.getKey()).reduce((a, b) -> a + "; " + b).orElse("none");
        System.out.println("DEOPTS " + count.get() + " " + worst);
    }

    private static String site(RecordedEvent e) {
        String method = e.getValue("method") instanceof RecordedMethod rm ? rm.getType().getName() + "." + rm.getName() : "?";
        return method + " line " + e.getValue("lineNumber") + " (" + e.getValue("reason") + ", action " + e.getValue("action") + ")";
    }

    @Test
    void decodeAfterPrefillRunsCompiledCodeEvenWhenC2GivesUpRecompiling() throws Exception {
        String out = child("-XX:PerMethodRecompilationCutoff=20");
        String line = out.lines().filter(l -> l.startsWith("DEOPTS ")).findFirst()
                .orElseThrow(() -> new AssertionError("child JVM printed no count:\n" + out));
        long n = Long.parseLong(line.split(" ")[1]);
        // Compiled code deoptimizes a handful of times at most; a trap taken on every kernel call gives tens of
        // thousands here (3 × 76 steps, each hundreds of GEMV calls).
        assertTrue(n < 1000, "the decode deoptimized " + n + " times, most at: " + line.substring(line.indexOf(' ', 7) + 1));
    }

    private static String child(String jitFlag) throws Exception {
        // -XX:-TieredCompilation as the launcher runs it
        return ChildJvm.run(DecodeDeoptimizationTest.class, 300, List.of("-XX:-TieredCompilation", jitFlag), GPT.class);
    }
}
