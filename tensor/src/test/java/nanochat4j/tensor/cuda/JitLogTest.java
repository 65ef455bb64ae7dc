package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import org.junit.jupiter.api.Test;

/** Reading ptxas's report (nvcc's --resource-usage, or the driver JIT's verbose info log) for what costs speed. */
class JitLogTest {
    /** Lines as ptxas 13.0 prints them (the serialization notes from a kernel built to trigger them). */
    private static final String REPORT = """
            ptxas info    : 0 bytes gmem
            ptxas info    : Compiling entry function 'attn_wg_bwd_dkv' for 'sm_90a'
            ptxas info    : Function properties for attn_wg_bwd_dkv
                0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
            ptxas info    : Used 251 registers, used 1 barriers, 380 bytes cmem[0]
            ptxas info    : Compiling entry function 'attn_wg_fwd' for 'sm_90a'
            ptxas info    : Function properties for attn_wg_fwd
                24 bytes stack frame, 24 bytes spill stores, 24 bytes spill loads
            ptxas info    : (C7517) warpgroup.wait is injected in around line 82 by compiler to allow use of registers defined by GMMA in function 'bad'
            ptxas info    : (C7511) Potential Performance Loss: wgmma.mma_async instructions are serialized due to insufficient register resources for the wgmma pipeline in the function 'bad'
            """;

    @Test
    void spillsAndSerializedWgmmaPipelinesAreWarnedAboutAndNothingElse() {
        List<String> w = JitLog.warnings(REPORT);
        assertEquals(3, w.size(), w.toString());
        assertTrue(w.get(0).startsWith("kernel attn_wg_fwd spills registers: 24 bytes stack frame, 24 bytes spill stores"), w.get(0));
        assertTrue(w.get(1).contains("warpgroup.wait is injected"), w.get(1));
        assertTrue(w.get(2).contains("(C7511) Potential Performance Loss"), w.get(2));
        assertEquals(2, JitLog.kernels(REPORT));
        assertEquals(List.of(), JitLog.warnings(REPORT.lines().limit(5).reduce("", (a, b) -> a + b + "\n")), "a clean kernel");
        assertEquals(List.of(), JitLog.warnings(""), "a load that compiled nothing (a cubin, the driver's cache)");
    }

    @Test
    void aFailedLoadQuotesTheJitsErrorLog() {
        String said = CudaContext.jitError(new Driver.Loaded(218, null, "", "ptxas application ptx input, line 12; error   : Unknown symbol 'x'\nptxas fatal   : Ptx assembly aborted due to errors\n"));
        assertTrue(said.startsWith("; the JIT said: ptxas application ptx input, line 12") && said.contains(" | ptxas fatal"), said);
        assertEquals("", CudaContext.jitError(new Driver.Loaded(218, null, "", "  \n")));
    }
}
