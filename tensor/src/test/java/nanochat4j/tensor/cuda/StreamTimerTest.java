package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandles;
import java.util.Set;
import org.junit.jupiter.api.Test;

/**
 * After a kernel fault every later driver call fails too: timing a body that faulted must still report the fault,
 * with the failed event clean-ups attached, not the clean-up's error in its place. Stand-in driver: the calls named
 * return CUDA_ERROR_ILLEGAL_ADDRESS (700), every other returns success.
 */
class StreamTimerTest {
    private static Driver driverFailing(Set<String> failing) {
        FfiSignaturesTest.Recorder rest = new FfiSignaturesTest.Recorder();
        return new Driver((fd, names) -> failing.contains(names[0])
                ? MethodHandles.dropArguments(MethodHandles.constant(int.class, 700), 0, fd.toMethodType().parameterList())
                : rest.fn(fd, names), "stand-in");
    }

    @Test
    void aFaultInTheTimedWorkIsWhatTheCallerSees() {
        Driver drv = driverFailing(Set.of("cuEventDestroy_v2"));
        IllegalStateException fault = new IllegalStateException("kernel attention_fwd: CUDA_ERROR_ILLEGAL_ADDRESS");
        IllegalStateException seen = assertThrows(IllegalStateException.class, () -> {
            try (StreamTimer t = new StreamTimer(drv, MemorySegment.NULL)) {
                t.ms(() -> {
                    throw fault;
                });
            }
        });
        assertSame(fault, seen);
        assertEquals(1, seen.getSuppressed().length, "the failed clean-up rides along");
        Throwable cleanUp = seen.getSuppressed()[0];
        assertTrue(cleanUp.getMessage().contains("cuEventDestroy"), cleanUp.getMessage());
        assertEquals(1, cleanUp.getSuppressed().length, "the second event's destroy was tried too");
    }

    @Test
    void aFailedCleanUpAloneIsReportedAndBothEventsAreTried() {
        Driver drv = driverFailing(Set.of("cuEventDestroy_v2"));
        StreamTimer t = new StreamTimer(drv, MemorySegment.NULL);
        t.ms(() -> {});
        CudaException e = assertThrows(CudaException.class, t::close);
        assertEquals(1, e.getSuppressed().length, "the second event's destroy was tried too");
    }

    @Test
    void timingWorksOnAHealthyDriver() {
        try (StreamTimer t = new StreamTimer(driverFailing(Set.of()), MemorySegment.NULL)) {
            assertEquals(0f, t.ms(() -> {}));
        }
    }
}
