package nanochat4j.tensor.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.management.ManagementFactory;
import java.util.Arrays;
import javax.management.ObjectName;
import org.junit.jupiter.api.Test;

class JitInliningTest {

    /** A renamed kernel would silently drop out of the directive: every pattern must name existing methods. */
    @Test
    void everyPatternNamesAnExistingKernel() throws Exception {
        for (String pattern : java.util.stream.Stream.concat(JitInlining.METHODS.stream(), JitInlining.NOT_INLINED.stream()).toList()) {
            int dot = pattern.lastIndexOf('.');
            Class<?> owner = Class.forName(pattern.substring(0, dot).replace('/', '.'));
            String method = pattern.substring(dot + 1);
            long matches = Arrays.stream(owner.getDeclaredMethods()).map(m -> m.getName())
                    .filter(n -> method.startsWith("*") ? n.endsWith(method.substring(1)) : n.equals(method))
                    .count();
            assertTrue(matches > 0, pattern + " matches no method of " + owner.getName());
        }
    }

    /** Loading the kernels adds the directive to this JVM, and HotSpot lists each method as forced inline for C2. */
    @Test
    void loadingTheKernelsRegistersTheDirective() throws Exception {
        assertEquals(Vec.F.length(), Vec.LANES); // initialises Vec
        assertTrue(JitInlining.registered(), "the directive was not added (see stderr)");
        String printed = (String) ManagementFactory.getPlatformMBeanServer().invoke(
                new ObjectName("com.sun.management:type=DiagnosticCommand"), "compilerDirectivesPrint",
                new Object[] {new String[0]}, new String[] {String[].class.getName()});
        for (String m : JitInlining.METHODS) {
            String shown = "+" + m;
            assertTrue(printed.contains(shown), "HotSpot's directives do not force " + shown + ":\n" + printed);
        }
        for (String m : JitInlining.NOT_INLINED) {
            String shown = "-" + m;
            assertTrue(printed.contains(shown), "HotSpot's directives do not keep " + m + " out of line:\n" + printed);
        }
    }
}
