package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The FMA peak base-train's MFU and bench kernels divide by. */
class FmaPeakTest {
    @Test
    void peakIsPositiveAndBelowAnyCpu() {
        // Long enough runs that C2 has compiled the loop by the best one, as base-train's 2,000,000 are: with 20,000 the
        // three runs could all end before the compile queue (busy with the suite's other tests) got to it, and the
        // loop's vectors, still objects, read 0.09 GFLOP/s (a failure in one full tensor run at 128 bits).
        double gflops = FmaPeak.measure(3, 1_000_000);
        // any CPU that runs the suite does well over 0.1 GFLOP/s of fp32 FMAs (a broken count reads 0 or NaN), and no
        // CPU a test runs on reaches 100 TFLOP/s (a count off by the lane width or the thread count would)
        assertTrue(Double.isFinite(gflops) && gflops > 0.1 && gflops < 100_000, "peak " + gflops + " GFLOP/s");
    }
}
