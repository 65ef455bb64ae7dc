package nanochat4j.tensor.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** nanochat's peak tables, looked up by the names the driver reports. */
class GpuPeaksTest {
    @Test
    void theMoreSpecificRowWins() {
        assertEquals(989e12, GpuPeaks.flops("NVIDIA H200"));
        assertEquals(4.8e12, GpuPeaks.bandwidth("NVIDIA H200"));
        assertEquals(836e12, GpuPeaks.flops("NVIDIA H200 NVL"));
        assertEquals(989e12, GpuPeaks.flops("NVIDIA H100 80GB HBM3"));
        assertEquals(3.35e12, GpuPeaks.bandwidth("NVIDIA H100 80GB HBM3"));
        assertEquals(756e12, GpuPeaks.flops("NVIDIA H100 PCIe"));
        assertEquals(2.0e12, GpuPeaks.bandwidth("NVIDIA H100 PCIe"));
        assertEquals(3.9e12, GpuPeaks.bandwidth("NVIDIA H100 NVL"));
        assertEquals(312e12, GpuPeaks.flops("NVIDIA A100-SXM4-80GB"));
        assertEquals(121e12, GpuPeaks.flops("NVIDIA L4"));
        assertEquals(362e12, GpuPeaks.flops("NVIDIA L40S"));
        assertEquals(165.2e12, GpuPeaks.flops("NVIDIA GeForce RTX 4090"));
    }

    @Test
    void anUnknownGpuHasNoPeakRatherThanAGuess() {
        assertTrue(Double.isNaN(GpuPeaks.flops("NVIDIA GeForce GTX 1080")));
        assertTrue(Double.isNaN(GpuPeaks.bandwidth("Tesla V100-SXM2-16GB")));
    }
}
