package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The FMA peak base-train's MFU and bench kernels divide by. */
class FmaPeakTest {
    @Test
    void peakIsPositiveAndBelowAnyCpu() {
        double gflops = FmaPeak.measure(3, 20_000);
        // any CPU that runs the suite does well over 0.1 GFLOP/s of fp32 FMAs (a broken count reads 0 or NaN), and no
        // CPU a test runs on reaches 100 TFLOP/s (a count off by the lane width or the thread count would)
        assertTrue(Double.isFinite(gflops) && gflops > 0.1 && gflops < 100_000, "peak " + gflops + " GFLOP/s");
    }
}
