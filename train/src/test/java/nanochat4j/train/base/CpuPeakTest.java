package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The CPU peak MFU divides by, and the note base-train prints when a step's MFU says that peak read low. */
class CpuPeakTest {
    @Test
    void peakIsTheBestWindowAndPositive() {
        double p = CpuPeak.measure(50);
        // any CPU that runs the suite does well over 0.1 GFLOP/s of fp32 FMAs; a broken count would read 0 or NaN
        assertTrue(Double.isFinite(p) && p > 1e8, "peak " + p);
    }

    @Test
    void mfuAbove100SaysWhichPeakReadLow() {
        String note = BaseTrainRun.mfuAbove100(83.7e9);
        assertTrue(note.contains("MFU above 100%") && note.contains("83.7 GFLOP/s") && note.contains("busy"), note);
    }
}
