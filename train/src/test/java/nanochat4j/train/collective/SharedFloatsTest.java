package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The files behind a shared buffer: layout, one rank's view of another's, and the errors that name what is wrong. */
class SharedFloatsTest {
    @TempDir
    Path dir;

    @Test
    void twoMappingsOfTheFilesSeeEachOthersWritesAndTheHelpersCopyRanges() throws Exception {
        Path f0 = dir.resolve("r0.f32"), f1 = dir.resolve("r1.f32");
        MemorySegment own0 = SharedFloats.create(f0, 10), own1 = SharedFloats.create(f1, 10);
        assertEquals(SharedFloats.CONTROL_BYTES + 40, Files.size(f0), "control area, then the data, written out");
        SharedFloats rank0 = SharedFloats.of(new MemorySegment[] {own0, SharedFloats.map(f1, 10)}, 0, 10);
        SharedFloats rank1 = SharedFloats.of(new MemorySegment[] {SharedFloats.map(f0, 10), own1}, 1, 10);
        rank0.copyFrom(new float[] {1, 2, 3, 4}, 1, 5, 3); // this[5, 8) = 2, 3, 4
        float[] seen = new float[10];
        MemorySegment.copy(rank1.data[0], java.lang.foreign.ValueLayout.JAVA_FLOAT, 0, seen, 0, 10); // rank 1 reads rank 0
        assertArrayEquals(new float[] {0, 0, 0, 0, 0, 2, 3, 4, 0, 0}, seen);
        rank0.fill(6, 10, 0f);
        float[] back = new float[3];
        rank0.copyTo(4, back, 0, 3);
        assertArrayEquals(new float[] {0, 2, 0}, back);
        assertThrows(IndexOutOfBoundsException.class, () -> rank0.copyFrom(new float[4], 0, 8, 4));
    }

    @Test
    void aPeerFileOfAnotherSizeIsRefusedNamingBothSizes() {
        Path f = dir.resolve("r1.f32");
        SharedFloats.create(f, 10);
        CollectiveException e = assertThrows(CollectiveException.class, () -> SharedFloats.map(f, 11));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("different sizes"), e.getMessage());
    }

    @Test
    void aFileThatCannotBeCreatedSaysWhereAndWhatToDo() {
        Path f = dir.resolve("missing-dir").resolve("r0.f32");
        UncheckedIOException e = assertThrows(UncheckedIOException.class, () -> SharedFloats.create(f, 10));
        assertTrue(e.getMessage().contains(f.toString()) && e.getMessage().contains("NANOCHAT4J_SHM_DIR"), e.getMessage());
    }
}
