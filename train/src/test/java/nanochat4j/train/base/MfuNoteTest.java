package nanochat4j.train.base;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The note base-train prints when a step's MFU says the CPU peak it divides by read low. */
class MfuNoteTest {
    @Test
    void mfuAbove100SaysWhichPeakReadLow() {
        String note = BaseTrainRun.mfuAbove100(83.7e9);
        assertTrue(note.contains("MFU above 100%") && note.contains("83.7 GFLOP/s") && note.contains("busy"), note);
    }
}
