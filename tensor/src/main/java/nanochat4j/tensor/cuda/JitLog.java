package nanochat4j.tensor.cuda;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What ptxas reports about a module that costs speed: register spills, and wgmma pipelines it had to serialize (a
 * register a wgmma writes touched before its wait). nvcc prints that report at build time, and KernelCompileTest fails
 * on it; but on a GPU machine the driver's JIT compiles NVRTC's PTX again with its own ptxas, which may decide
 * otherwise, so {@link CudaContext} asks the driver for the same report (its JIT info log) and warns.
 */
final class JitLog {
    private static final Pattern ENTRY = Pattern.compile("Function properties for (\\w+)");
    private static final Pattern SPILL = Pattern.compile("(\\d+) bytes spill stores");
    private static final Pattern SERIALIZED = Pattern.compile("Potential Performance Loss|warpgroup\\.\\w+ is injected");

    private JitLog() {}

    /** The report's lines that cost speed, a spill named with its kernel (ptxas names it a line above). */
    static List<String> warnings(String report) {
        List<String> out = new ArrayList<>();
        String kernel = "?";
        for (String line : report.split("\n")) {
            Matcher entry = ENTRY.matcher(line);
            if (entry.find()) kernel = entry.group(1);
            Matcher spill = SPILL.matcher(line);
            if (spill.find() && Integer.parseInt(spill.group(1)) > 0) {
                out.add("kernel " + kernel + " spills registers: " + line.trim());
            } else if (SERIALIZED.matcher(line).find()) {
                out.add(line.trim());
            }
        }
        return out;
    }

    /** How many kernels the report describes (ptxas's "Function properties for" lines). */
    static int kernels(String report) {
        int n = 0;
        for (Matcher m = ENTRY.matcher(report); m.find(); ) n++;
        return n;
    }
}
