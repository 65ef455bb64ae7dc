package nanochat4j.train.collective;

/**
 * The ring algorithms, as what one rank sends to its successor and receives from its predecessor, step by step.
 * A buffer of {@code len} elements is cut into N segments, segment i = [i·len/N, (i+1)·len/N) (they differ by at most
 * one element; empty ones are allowed); rank r owns segment r. With rank r sending to r+1 (mod N):
 * <ul>
 * <li>reduce-scatter, steps s = 0..N−2: send segment r−s−1, receive segment r−s−2 and reduce it into the buffer; at
 *     the last step the received segment is r, now reduced over all ranks (AVG divides here, once).
 *     Segment g is therefore summed in the order x[g+1] + x[g+2] + … + x[g] — the same on every rank.</li>
 * <li>all-gather, steps t = 0..N−2: send segment r−t (own segment first), receive segment r−t−1 and copy it.</li>
 * <li>all-reduce = reduce-scatter then all-gather: each rank sends 2·(N−1)/N of the buffer (bandwidth-optimal), and
 *     every rank ends with the same bits.</li>
 * </ul>
 * Send step k (k ≥ 1) forwards what receive step {@code sendDep[k]} brought in (the same segment), so it may go out
 * chunk by chunk as soon as that prefix has arrived: sending chunk k+1 overlaps reducing chunk k on the next rank.
 */
record Schedule(int[] sendOff, int[] sendLen, int[] sendDep, int[] recvOff, int[] recvLen, int[] recvAction) {

    int sends() {
        return sendOff.length;
    }

    int receives() {
        return recvOff.length;
    }

    /** First element of segment i of a buffer of len elements over n ranks. */
    static int segmentStart(int len, int i, int n) {
        return (int) ((long) i * len / n);
    }

    static Schedule allReduce(int off, int len, int r, int n, ReduceOp op) {
        Schedule rs = reduceScatter(off, len, r, n, op);
        Schedule ag = allGather(off, len, r, n);
        int m = n - 1;
        int[] sendOff = concat(rs.sendOff, ag.sendOff), sendLen = concat(rs.sendLen, ag.sendLen);
        int[] sendDep = new int[2 * m];
        for (int k = 0; k < 2 * m; k++) sendDep[k] = k - 1; // all-gather step 0 forwards the last reduce-scatter step
        return new Schedule(sendOff, sendLen, sendDep, concat(rs.recvOff, ag.recvOff), concat(rs.recvLen, ag.recvLen),
                concat(rs.recvAction, ag.recvAction));
    }

    static Schedule reduceScatter(int off, int len, int r, int n, ReduceOp op) {
        int m = n - 1;
        int[] sendOff = new int[m], sendLen = new int[m], sendDep = new int[m];
        int[] recvOff = new int[m], recvLen = new int[m], recvAction = new int[m];
        int partial = op == ReduceOp.MAX ? Payload.MAX : Payload.SUM;
        for (int s = 0; s < m; s++) {
            int gs = Math.floorMod(r - s - 1, n), gr = Math.floorMod(r - s - 2, n);
            sendOff[s] = off + segmentStart(len, gs, n);
            sendLen[s] = segmentStart(len, gs + 1, n) - segmentStart(len, gs, n);
            sendDep[s] = s - 1;
            recvOff[s] = off + segmentStart(len, gr, n);
            recvLen[s] = segmentStart(len, gr + 1, n) - segmentStart(len, gr, n);
            recvAction[s] = s < m - 1 || op != ReduceOp.AVG ? partial : Payload.SUM_DIVIDE;
        }
        return new Schedule(sendOff, sendLen, sendDep, recvOff, recvLen, recvAction);
    }

    static Schedule allGather(int off, int len, int r, int n) {
        int m = n - 1;
        int[] sendOff = new int[m], sendLen = new int[m], sendDep = new int[m];
        int[] recvOff = new int[m], recvLen = new int[m], recvAction = new int[m];
        for (int t = 0; t < m; t++) {
            int gs = Math.floorMod(r - t, n), gr = Math.floorMod(r - t - 1, n);
            sendOff[t] = off + segmentStart(len, gs, n);
            sendLen[t] = segmentStart(len, gs + 1, n) - segmentStart(len, gs, n);
            sendDep[t] = t - 1;
            recvOff[t] = off + segmentStart(len, gr, n);
            recvLen[t] = segmentStart(len, gr + 1, n) - segmentStart(len, gr, n);
            recvAction[t] = Payload.COPY;
        }
        return new Schedule(sendOff, sendLen, sendDep, recvOff, recvLen, recvAction);
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = new int[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
