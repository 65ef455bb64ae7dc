package nanochat4j.model.engine;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;

/** Expected strings are CPython 3.11's str(eval(expr)). */
class CalculatorTest {

    @ParameterizedTest(name = "{0} = {1}")
    @CsvSource(delimiter = '|', value = {
        "12/60|0.2", "0.2*50|10.0", "7//2|3", "-7//2|-4", "7.5//2|3.0", "-7.5//2|-4.0", "1/3|0.3333333333333333",
        "2/3*3|2.0", "10/4|2.5", "123456789012345678*1.0|1.2345678901234568e+17", "0.1+0.2|0.30000000000000004",
        "1/100000.0|1e-05", "100000.0*100000000000.0|1e+16", "3.0|3.0", "-0.0|-0.0", "5//0.3|16.0", "(1+2)*3|9",
        "-(-3)|3", "+-3|-3", "2*-3|-6", "1.|1.0", ".5|0.5", "00|0", "7.0/2|3.5", "99999999999999999999/3|3.333333333333333e+19",
        "0.0001|0.0001", "1/10000.0|0.0001", "1/100000|1e-05", "1,000*3|3000", "2/3|0.6666666666666666",
        "123456789*987654321|121932631112635269", " ( 4 + 5 ) // 2 |4"
    })
    void arithmeticPrintsLikePython(String expr, String expected) {
        Calculator.Result r = Calculator.evaluate(expr);
        assertTrue(r.ok(), r.text());
        assertEquals(expected, r.text());
    }

    @ParameterizedTest
    @CsvSource(delimiter = '|', value = {
        "'strawberry'.count('r')|3", "'aaaa'.count('aa')|2", "\"hello world\".count(\"o\")|2", "'abc'.count('')|4",
        "('banana'.count('an'))|2"
    })
    void countFormCountsNonOverlappingSubstrings(String expr, String expected) {
        Calculator.Result r = Calculator.evaluate(expr);
        assertTrue(r.ok(), r.text());
        assertEquals(expected, r.text());
    }

    @ParameterizedTest
    @ValueSource(strings = {"9**9**9", "2**10", "1/0", "1//0", "1.0/0", "1 2", "01", "(1+2", "1+", "", "abc",
            "__import__('os').system('ls')", "open('x').read()", "'a'.count('a') + 1", "exec('1')", "1.2.3",
            "getattr('a','count')('a')", "'a'.upper()", "x=1", "1e5"})
    void anythingElseIsAnErrorStringNotAnException(String expr) {
        Calculator.Result r = Calculator.evaluate(expr);
        assertFalse(r.ok(), expr + " -> " + r.text());
        assertTrue(r.text().startsWith("Error: "), r.text());
    }

    @Test
    void hugeAndDeeplyNestedInputsFailFast() {
        assertTimeoutPreemptively(Duration.ofSeconds(2), () -> {
            assertFalse(Calculator.evaluate("(".repeat(300) + "1" + ")".repeat(300)).ok());
            assertFalse(Calculator.evaluate("-".repeat(500) + "1").ok());
            assertFalse(Calculator.evaluate("9".repeat(2000)).ok());
            // the largest accepted products stay small: at most as many digits as the input has
            String big = String.join("*", java.util.Collections.nCopies(90, "9999999999"));
            Calculator.Result r = Calculator.evaluate(big);
            assertTrue(r.ok());
            assertEquals(900, r.text().length());
        });
    }
}
