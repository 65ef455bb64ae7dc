package nanochat4j.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * This process's minor page faults so far (Linux: field 10 of /proc/self/stat) and its resident memory, or -1 where
 * there is no such file.
 * A kernel timed while the heap is still growing pays for first touches of fresh memory on top of its own work
 * (on a virtual machine each fresh page can cost several microseconds), which a long training run does not:
 * its heap settles within the first steps. {@code bench kernels} warms each op up until its runs stop faulting.
 */
final class PageFaults {
    private PageFaults() {}

    private static final Path STAT = Path.of("/proc/self/stat"), STATM = Path.of("/proc/self/statm");

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

    /**
     * This process's resident memory in bytes (Linux: the second field of /proc/self/statm, in 4 KiB pages), or -1.
     * A fault count alone cannot tell 4 KiB of fresh memory from 2 MiB: with transparent huge pages (the launcher's
     * default where Linux offers them) one fault maps, and clears, a whole huge page, so a run that faults 255 times
     * may still have touched 510 MB of fresh heap. Growth of the resident set counts the bytes.
     */
    static long resident() {
        try {
            String[] f = Files.readString(STATM).trim().split(" ");
            return Long.parseLong(f[1]) * 4096;
        } catch (IOException | RuntimeException e) {
            return -1;
        }
    }

    /** The counters at one moment; what fresh memory the process has touched since (0 where /proc is absent). */
    record Mark(long faults, long resident) {
        static Mark now() {
            return new Mark(minor(), PageFaults.resident());
        }

        long faultsSince() {
            return faults < 0 ? 0 : minor() - faults;
        }

        long growthSince() {
            return resident < 0 ? 0 : PageFaults.resident() - resident;
        }
    }
}
