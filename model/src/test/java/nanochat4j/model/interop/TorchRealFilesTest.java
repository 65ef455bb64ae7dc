package nanochat4j.model.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Files written by PyTorch itself (2.13, {@code src/test/resources/interop/make_torch_files.py}): the current zip layout
 * and the legacy pre-1.6 one, with fp32 / bf16 / fp16 / int64 tensors, a transpose and a slice sharing a storage
 * (strides, storage offset) and an {@code nn.Parameter}; every value must come back as torch printed it.
 */
class TorchRealFilesTest {

    @ParameterizedTest
    @ValueSource(strings = {"torch_views.pt", "torch_views_legacy.pt"})
    void readsEveryTensorAsTorchWroteIt(String name, @TempDir Path tmp) throws IOException {
        JsonNode exp = new ObjectMapper().readTree(resource("torch_views.json")).get("tensors");
        Path file = tmp.resolve(name);
        try (InputStream in = resource(name)) {
            Files.copy(in, file);
        }
        try (TorchZip z = TorchZip.open(file)) {
            Map<String, TorchZip.TensorRef> sd = z.stateDict();
            List<String> names = new ArrayList<>();
            exp.fieldNames().forEachRemaining(names::add);
            assertEquals(names, List.copyOf(sd.keySet()));
            for (String k : names) {
                JsonNode e = exp.get(k);
                TorchZip.TensorRef t = sd.get(k);
                int[] shape = new int[e.get("shape").size()];
                for (int i = 0; i < shape.length; i++) shape[i] = e.get("shape").get(i).asInt();
                assertArrayEquals(shape, t.shape(), k);
                JsonNode vals = e.get("values");
                if (t.dtype().isFloat()) {
                    float[] want = new float[vals.size()];
                    for (int i = 0; i < want.length; i++) want[i] = (float) vals.get(i).asDouble();
                    assertArrayEquals(want, z.floats(t), k + " (" + e.get("dtype").asText() + ")");
                } else {
                    int[] want = new int[vals.size()];
                    for (int i = 0; i < want.length; i++) want[i] = vals.get(i).asInt();
                    assertArrayEquals(want, z.ints(t), k);
                }
            }
            assertEquals(TorchZip.DType.BF16, sd.get("bf16").dtype());
            assertEquals(TorchZip.DType.F16, sd.get("fp16").dtype());
        }
    }

    private static InputStream resource(String name) {
        InputStream in = TorchRealFilesTest.class.getResourceAsStream("/interop/" + name);
        if (in == null) throw new IllegalStateException("test resource /interop/" + name + " is missing");
        return in;
    }
}
