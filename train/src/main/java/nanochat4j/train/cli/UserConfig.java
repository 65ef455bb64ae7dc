package nanochat4j.train.cli;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Model.OptionSpec;

/**
 * A run's flags as nanochat's meta files keep them ({@code user_config}: its argparse namespace), read from picocli's
 * own model of the parsed options object, mixins included: every option by its long name without the leading dashes
 * and with '_' for '-', in declaration order, paths as strings. A new flag is recorded without a list to keep.
 */
public final class UserConfig {
    private UserConfig() {}

    /** The flags of {@code options} (an object picocli has populated), but those whose long name is in {@code leftOut}. */
    public static Map<String, Object> of(Object options, Set<String> leftOut) {
        Map<String, Object> m = new LinkedHashMap<>();
        for (OptionSpec opt : CommandSpec.forAnnotatedObject(options).options()) {
            String name = opt.longestName();
            if (leftOut.contains(name)) continue;
            Object value = opt.getValue();
            m.put(name.replaceFirst("^--", "").replace('-', '_'), value instanceof Path p ? p.toString() : value);
        }
        return m;
    }
}
