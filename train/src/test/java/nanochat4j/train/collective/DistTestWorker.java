package nanochat4j.train.collective;

/**
 * Main class of the worker JVMs the multi-process tests start (with the test classpath). Modes:
 * {@code check} runs {@link CollectiveChecks#runAll}; {@code loop} all-reduces forever (to be killed);
 * {@code echo} prints lines on stdout and stderr; {@code die} makes rank 1 exit with code 7 while the others wait.
 */
public final class DistTestWorker {
    private DistTestWorker() {}

    public static void main(String[] args) throws Exception {
        int rank = Integer.parseInt(System.getenv().getOrDefault("RANK", "0"));
        switch (args[0]) {
            case "check" -> {
                try (Collective c = Collective.fromEnvironment("test-config")) {
                    int ops = CollectiveChecks.runAll(c);
                    System.out.println("rank " + rank + " ok after " + ops + " collectives");
                } catch (Throwable t) {
                    System.out.println("rank " + rank + " FAILED: " + t);
                    System.exit(1);
                }
            }
            case "loop" -> {
                try (Collective c = Collective.fromEnvironment("test-config")) {
                    float[] a = new float[1 << 20];
                    for (long i = 0; ; i++) {
                        c.allReduce(a, 0, a.length, ReduceOp.AVG);
                        if (i == 3) System.out.println("rank " + rank + " looping");
                    }
                } catch (CollectiveException e) {
                    System.out.println("rank " + rank + " stopped: " + e.getMessage());
                    System.exit(3);
                }
            }
            case "echo" -> {
                System.out.println("hello from " + rank);
                System.out.println("world size " + System.getenv("WORLD_SIZE") + " local rank " + System.getenv("LOCAL_RANK"));
                System.err.println("stderr of " + rank);
                try (Collective c = Collective.fromEnvironment("echo")) {
                    c.barrier();
                }
            }
            case "die" -> {
                if (rank == 1) {
                    Thread.sleep(300);
                    System.out.println("rank 1 exits with 7");
                    System.exit(7);
                }
                System.out.println("rank " + rank + " waits");
                Thread.sleep(120_000);
            }
            default -> throw new IllegalArgumentException(args[0]);
        }
    }
}
