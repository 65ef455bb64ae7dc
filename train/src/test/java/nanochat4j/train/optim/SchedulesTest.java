package nanochat4j.train.optim;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** nanochat's LR / momentum / weight-decay schedules against hand-computed values. */
class SchedulesTest {
    private static final Schedules N1000 = Schedules.nanochat(1000, 0.28); // Wd = 650, warmdown starts after step 350
    private static final Schedules N2000 = Schedules.nanochat(2000, 0.28); // Wd = 1300, starts after 700

    @Test
    void warmdownLengthRoundsHalfToEvenLikePython() {
        assertEquals(650, N1000.warmdownIters());
        assertEquals(6, Schedules.nanochat(10, 0).warmdownIters());   // round(6.5) = 6
        assertEquals(20, Schedules.nanochat(30, 0).warmdownIters());  // round(19.5) = 20
    }

    @ParameterizedTest
    @CsvSource({
        "0, 0.025",                 // (0+1)/40
        "19, 0.5",                  // 20/40
        "39, 1.0",                  // end of warmup
        "40, 1.0",
        "350, 1.0",                 // it <= N - Wd
        "351, 0.9985384615384615",  // p = 649/650: 1 - 0.95/650
        "675, 0.525",               // p = 0.5: 0.5 + 0.5*0.05
        "999, 0.05146153846153846", // p = 1/650
        "1000, 0.05",               // p = 0: final_lr_frac
    })
    void lrMultiplierWarmsUpHoldsThenDecaysToFinalFraction(int it, double want) {
        assertEquals(want, N1000.lrMultiplier(it), 1e-15);
    }

    @Test
    void lrWarmupOverlappingTheWarmdownFollowsNanochatBranchOrder() {
        Schedules s = Schedules.nanochat(100, 0); // Wd = 65, N - Wd = 35 < warmup 40
        assertEquals(1.0 / 40, s.lrMultiplier(0), 1e-15);
        assertEquals(1.0, s.lrMultiplier(39), 1e-15);                       // still the warmup branch
        assertEquals(60.0 / 65 + (1 - 60.0 / 65) * 0.05, s.lrMultiplier(40), 1e-15); // already in warmdown
    }

    @ParameterizedTest
    @CsvSource({
        "0, 0.85",
        "200, 0.91",                // halfway up the 400-step ramp
        "399, 0.9697",              // 0.85/400 + 0.97*399/400
        "400, 0.9646153846153847",  // warmdown (started at 350): progress 50/650
        "1000, 0.90",
    })
    void muonMomentumRampsTo097ThenWarmsDownTo090(int it, double want) {
        assertEquals(want, N1000.muonMomentum(it), 1e-15);
    }

    @ParameterizedTest
    @CsvSource({
        "399, 0.9697",
        "400, 0.97",
        "700, 0.97",   // warmdown_start: progress 0
        "1350, 0.935", // progress 0.5
        "2000, 0.90",
    })
    void muonMomentumHoldsBetweenRampAndWarmdown(int it, double want) {
        assertEquals(want, N2000.muonMomentum(it), 1e-15);
    }

    @ParameterizedTest
    @CsvSource({
        "0, 0.28",
        "250, 0.2389949493661167", // 0.14 * (1 + cos(pi/4))
        "500, 0.14",
        "1000, 0.0",
    })
    void muonWeightDecayFollowsACosineToZero(int it, double want) {
        assertEquals(want, N1000.muonWeightDecay(it), 1e-15);
    }

    @Test
    void zeroWarmdownKeepsMomentumAt097AndLrAtOne() {
        Schedules s = new Schedules(500, 0, 0.0, 0.05, 0.1);
        assertEquals(1.0, s.lrMultiplier(0));
        assertEquals(1.0, s.lrMultiplier(500));
        assertEquals(0.97, s.muonMomentum(500));
    }

    @Test
    void stepsOutsideTheHorizonAndBadArgumentsAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> N1000.lrMultiplier(1001));
        assertThrows(IllegalArgumentException.class, () -> N1000.muonMomentum(-1));
        assertThrows(IllegalArgumentException.class, () -> Schedules.nanochat(0, 0.2));
        assertThrows(IllegalArgumentException.class, () -> new Schedules(10, 0, 1.5, 0.05, 0.1));
    }
}
