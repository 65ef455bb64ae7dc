package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import nanochat4j.tensor.Backend;
import org.junit.jupiter.api.Test;

/** --profile-step's table: the step's busy time against its wall time, the longest kernels by name, the rest summed. */
class StepProfileTest {
    @Test
    void theLongestKernelsAreListedAndTheRestSummedOnOneLine() {
        List<Backend.KernelTime> t = new ArrayList<>();
        t.add(new Backend.KernelTime("cublasGemmEx(768x65536x768)", 36, 40.0));
        t.add(new Backend.KernelTime("attn_wgmma_bwd_dkv", 12, 20.0));
        for (int i = 0; i < StepProfile.TOP; i++) t.add(new Backend.KernelTime("k" + i, 2, 1.0)); // 2 beyond the top
        String s = StepProfile.table(30, t, 100.0);
        String[] lines = s.split("\n");
        assertEquals("Device time of step 30 by kernel (CUDA events around each of its 96 launches): 84.0 ms busy in a step of 100.0 ms (84%)", lines[0]);
        assertEquals("         ms  share  calls  kernel", lines[1]);
        assertEquals("     40.000  47.6%     36  cublasGemmEx(768x65536x768)", lines[2]);
        assertEquals("     20.000  23.8%     12  attn_wgmma_bwd_dkv", lines[3]);
        assertEquals(2 + StepProfile.TOP + 1, lines.length, s);
        assertEquals("      2.000   2.4%      4  (2 more kernels)", lines[lines.length - 1]);
        assertTrue(StepProfile.table(1, List.of(), 5.0).startsWith("Device time of step 1 by kernel (CUDA events around each of its 0 launches): 0.0 ms busy"));
    }
}
