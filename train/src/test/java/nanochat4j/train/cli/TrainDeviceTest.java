package nanochat4j.train.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import nanochat4j.tensor.Device;
import nanochat4j.train.base.BaseTrainOptions;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Mixin;

/** The training commands' --device, under nanochat's name too: its command lines paste as they are. */
class TrainDeviceTest {
    static final class Holder {
        @Mixin
        TrainDevice device = new TrainDevice();
    }

    @Test
    void deviceTypeIsNanochatsNameForDevice() {
        Holder h = new Holder();
        new CommandLine(h).parseArgs("--device-type=cuda");
        assertEquals(Device.CUDA, h.device.kind());
        h = new Holder();
        new CommandLine(h).parseArgs();
        assertEquals(Device.CPU, h.device.kind());

        BaseTrainOptions o = new BaseTrainOptions();
        new CommandLine(o).parseArgs("--device-type", "cuda");
        assertEquals("cuda", o.device);
    }

    @Test
    void aDeviceWeDoNotHaveIsNamed() {
        Holder h = new Holder();
        new CommandLine(h).parseArgs("--device-type=mps");
        var e = assertThrows(IllegalArgumentException.class, h.device::kind);
        assertTrue(e.getMessage().contains("--device mps: expected cpu or cuda"), e.getMessage());
    }
}
