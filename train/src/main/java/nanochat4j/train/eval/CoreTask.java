package nanochat4j.train.eval;

import java.nio.file.Path;

/**
 * One CORE task as the bundle's {@code core.yaml} lists it, joined with its random baseline from
 * {@code eval_meta_data.csv}.
 *
 * @param file           the task's JSONL file ({@code eval_data/<dataset_uri>})
 * @param randomBaseline accuracy of random guessing in percent (e.g. 25 for four choices)
 */
public record CoreTask(String label, Path file, int numFewshot, Type type, String continuationDelimiter,
                       double randomBaseline) {

    /** The three ICL task types of the DCLM/CORE suite. */
    public enum Type {
        MULTIPLE_CHOICE("multiple_choice"),
        SCHEMA("schema"),
        LANGUAGE_MODELING("language_modeling");

        final String yamlName;

        Type(String yamlName) {
            this.yamlName = yamlName;
        }

        static Type parse(String name, String where) {
            for (Type t : values()) if (t.yamlName.equals(name)) return t;
            throw new IllegalArgumentException(where + ": unknown icl_task_type '" + name
                    + "' (known: multiple_choice, schema, language_modeling)");
        }
    }

    /** Centered accuracy: 0 at the random baseline, 1 at perfect. */
    public double centered(double accuracy) {
        double rb = randomBaseline / 100.0;
        return (accuracy - rb) / (1.0 - rb);
    }
}
