package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * Every float kernel uses the one species {@link Vec#F}. A second float species anywhere in the JVM (a 256-bit copy
 * in the AVX-512 GEMM's packing did it) pollutes the Vector API's shared type profiles, and kernels that C2 compiles
 * afterwards lose their intrinsics: attention ran 15–20× slower after the GEMMs in `bench kernels`
 * (docs/BENCHMARKS.md). Nothing times that here; this keeps the cause out of the sources of every module.
 */
class OneFloatSpeciesTest {
    /** A float species named or built anywhere but in Vec. */
    private static final Pattern OTHER_SPECIES = Pattern.compile(
            "FloatVector\\.SPECIES_|VectorSpecies\\.of\\(\\s*float\\.class|\\.withShape\\(");

    @Test
    void onlyVecChoosesAFloatSpecies() throws IOException {
        Path root = Path.of("").toAbsolutePath().getParent();
        List<String> offenders = new ArrayList<>();
        int files = 0;
        for (String module : List.of("tensor", "autograd", "model", "train", "serve", "bench")) {
            Path main = root.resolve(module).resolve("src/main/java");
            if (!Files.isDirectory(main)) continue;
            try (Stream<Path> all = Files.walk(main)) {
                for (Path p : all.filter(f -> f.toString().endsWith(".java")).toList()) {
                    files++;
                    if (p.endsWith(Path.of("nanochat4j/tensor/cpu/Vec.java"))) continue;
                    List<String> lines = Files.readAllLines(p);
                    for (int i = 0; i < lines.size(); i++) {
                        if (OTHER_SPECIES.matcher(lines.get(i)).find()) offenders.add(root.relativize(p) + ":" + (i + 1) + ": " + lines.get(i).strip());
                    }
                }
            }
        }
        assertTrue(files > 100, "found only " + files + " main sources under " + root + ": wrong working directory?");
        assertEquals(List.of(), offenders, "float species other than Vec.F (use Vec.F, or a mask, instead)");
    }

    @Test
    void thePatternCatchesWhatItIsFor() {
        assertTrue(OTHER_SPECIES.matcher("FloatVector.fromArray(FloatVector.SPECIES_256, a, 0)").find());
        assertTrue(OTHER_SPECIES.matcher("VectorSpecies.of(float.class, VectorShape.forBitSize(128))").find());
        assertTrue(!OTHER_SPECIES.matcher("FloatVector.fromArray(F, a, 0)").find());
    }
}
