package nanochat4j.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * This process's minor page faults so far (Linux: field 10 of /proc/self/stat), or -1 where there is no such file.
 * A kernel timed while the heap is still growing pays for first touches of fresh memory on top of its own work
 * (on a virtual machine each fresh page can cost several microseconds), which a long training run does not:
 * its heap settles within the first steps. {@code bench kernels} warms each op up until its runs stop faulting.
 */
final class PageFaults {
    private PageFaults() {}

    private static final Path STAT = Path.of("/proc/self/stat");

    static long minor() {
        try {
            String s = Files.readString(STAT);
            // "pid (comm) state ppid ...": comm may hold spaces, so count fields after its closing parenthesis
            String[] f = s.substring(s.lastIndexOf(')') + 2).trim().split(" ");
            return Long.parseLong(f[7]);                          // minflt is field 10; f[0] is field 3 (state)
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }
}
