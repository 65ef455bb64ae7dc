package nanochat4j.train.collective;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/** The ring schedules: bandwidth-optimal traffic and consistent pairing of what a rank sends with what the next receives. */
class ScheduleTest {

    @Test
    void allReduceSendsTwiceTheWorldFractionOfTheBufferPerRank() {
        for (int n = 2; n <= 8; n++) {
            for (int len : new int[] {0, 1, 7, 1000, 1 << 20, (1 << 20) + 5}) {
                for (int r = 0; r < n; r++) {
                    Schedule s = Schedule.allReduce(0, len, r, n, ReduceOp.SUM);
                    long sent = 0, received = 0;
                    for (int v : s.sendLen()) sent += v;
                    for (int v : s.recvLen()) received += v;
                    // 2(N−1)/N of the data, up to the one-element unevenness of each segment
                    double ideal = 2.0 * (n - 1) / n * len;
                    assertTrue(Math.abs(sent - ideal) <= 2 * (n - 1), "n=" + n + " len=" + len + " sent " + sent);
                    assertTrue(Math.abs(received - ideal) <= 2 * (n - 1), "n=" + n + " len=" + len + " received " + received);
                    assertEquals(2 * (n - 1), s.sends());
                }
            }
        }
    }

    @Test
    void whatEachRankSendsIsWhatTheNextRankExpectsStepByStep() {
        for (int n = 2; n <= 6; n++) {
            for (int len : new int[] {0, 3, 1001}) {
                for (int r = 0; r < n; r++) {
                    int next = (r + 1) % n;
                    for (Schedule[] pair : new Schedule[][] {
                            {Schedule.allReduce(5, len, r, n, ReduceOp.AVG), Schedule.allReduce(5, len, next, n, ReduceOp.AVG)},
                            {Schedule.reduceScatter(5, len, r, n, ReduceOp.MAX), Schedule.reduceScatter(5, len, next, n, ReduceOp.MAX)},
                            {Schedule.allGather(5, len, r, n), Schedule.allGather(5, len, next, n)}}) {
                        Schedule mine = pair[0], theirs = pair[1];
                        assertEquals(mine.sends(), theirs.receives());
                        for (int k = 0; k < mine.sends(); k++) {
                            assertEquals(mine.sendOff()[k], theirs.recvOff()[k]);
                            assertEquals(mine.sendLen()[k], theirs.recvLen()[k]);
                            int dep = mine.sendDep()[k];
                            if (dep >= 0) { // a forwarded step re-sends the very segment it received
                                assertEquals(mine.recvOff()[dep], mine.sendOff()[k]);
                                assertEquals(mine.recvLen()[dep], mine.sendLen()[k]);
                            }
                        }
                    }
                }
            }
        }
    }

    @Test
    void reduceScatterEndsWithTheRanksOwnShardReducedAndAveragedOnce() {
        int n = 4, len = 10;
        for (int r = 0; r < n; r++) {
            Schedule s = Schedule.reduceScatter(0, len, r, n, ReduceOp.AVG);
            int last = s.receives() - 1;
            assertEquals(Collective.shardStart(len, r, n), s.recvOff()[last]);
            assertEquals(Payload.SUM_DIVIDE, s.recvAction()[last]);
            for (int k = 0; k < last; k++) assertEquals(Payload.SUM, s.recvAction()[k]);
        }
    }
}
