package nanochat4j.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The per-thread pool of recycled op outputs: what it hands out, what it takes back, and what it forgets. */
class RecyclerTest {

    /** Two empty scopes leave this thread's pool empty (each close forgets the previous scope's leftovers). */
    @BeforeEach
    void emptyPool() {
        for (int i = 0; i < 2; i++) Recycler.open().close();
        assertEquals(0, Recycler.pooledCount());
    }

    @Test
    void theTestSuitesRunPoisoned() {
        // the root pom sets it for every module, so an op that leaves part of an uninitialized output unwritten
        // produces NaN in its own tests
        assertTrue(Recycler.POISON, "surefire should run with -Dnanochat4j.recycler.poison=true");
        Tensor t = Tensor.uninitialized(3, 5);
        for (float v : t.floats()) assertTrue(Float.isNaN(v));
    }

    @Test
    void outsideAScopeEveryTakeIsNewAndGivingBackDoesNothing() {
        assertFalse(Recycler.isOpen());
        Tensor a = Tensor.uninitialized(64);
        assertFalse(Recycler.give(a));
        assertNotSame(a.floats(), Tensor.uninitialized(64).floats());
    }

    @Test
    void insideAScopeAnArrayGivenBackIsTheNextOfItsLength() {
        try (var s = Recycler.open()) {
            Tensor a = Tensor.uninitialized(4, 16);
            float[] storage = a.floats();
            assertTrue(Recycler.give(a));
            assertFalse(Recycler.give(a), "a tensor's storage goes back once");
            assertNotSame(storage, Tensor.uninitialized(65).floats(), "another length is a new array");
            Tensor b = Tensor.uninitialized(8, 8);
            assertSame(storage, b.floats(), "same length: the array given back");
            assertTrue(Float.isNaN(b.floats()[17]), "poisoned on the way out");
        }
    }

    @Test
    void viewsZerosAndWrappedArraysAreNeverGivenBack() {
        try (var s = Recycler.open()) {
            Tensor a = Tensor.uninitialized(4, 16);
            assertFalse(Recycler.give(a.reshape(16, 4)), "a view does not own its storage");
            assertFalse(Recycler.give(a.slice(1, 2)));
            assertFalse(Recycler.give(Tensor.zeros(64)));
            assertFalse(Recycler.give(Tensor.of(new float[64])));
            assertTrue(Recycler.give(a));
        }
    }

    @Test
    void closingAScopeForgetsWhatThePreviousOneGaveBackAndThisOneDidNotTake() {
        float[] old;
        try (var s = Recycler.open()) {
            Tensor t = Tensor.uninitialized(1000);
            old = t.floats();
            Recycler.give(t);
        }
        assertEquals(1, Recycler.pooledCount(), "kept for the next scope");
        try (var s = Recycler.open()) {
            Recycler.give(Tensor.uninitialized(2000));          // this scope's: kept
        }
        try (var s = Recycler.open()) {
            assertNotSame(old, Tensor.uninitialized(1000).floats(), "untaken for a whole scope: dropped");
        }
    }

    @Test
    void nestedScopesShareOnePool() {
        try (var outer = Recycler.open()) {
            Tensor t = Tensor.uninitialized(333);
            try (var inner = Recycler.open()) {
                Recycler.give(t);
            }
            assertTrue(Recycler.isOpen());
            assertSame(t.floats(), Recycler.take(333));
        }
    }

    @Test
    void anArrayGivenBackTwiceIsAnError() {
        try (var s = Recycler.open()) {
            float[] a = Recycler.take(77);
            Recycler.give(a);
            var e = assertThrows(IllegalStateException.class, () -> Recycler.give(a));
            assertTrue(e.getMessage().contains("77 floats was given back twice"), e.getMessage());
        }
    }

    @Test
    void aScopeClosesOnTheThreadThatOpenedIt() throws InterruptedException {
        var s = Recycler.open();
        try {
            var e = assertThrows(ExecutionException.class, () -> CompletableFuture.runAsync(s::close).get());
            assertTrue(e.getCause().getMessage().contains("another thread"), e.getCause().getMessage());
        } finally {
            s.close();
        }
        assertFalse(Recycler.isOpen());
    }
}
