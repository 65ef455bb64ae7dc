package nanochat4j.model.interop;

import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * The Python values a pickle of nanochat's files holds, as Java sees them. str → {@link String}, int → {@link Long},
 * float → {@link Double}, bool → {@link Boolean}, None → null, list → {@link java.util.ArrayList}, dict →
 * {@link java.util.LinkedHashMap} (insertion order kept, as in Python); the records below cover the rest.
 */
public final class Py {
    private Py() {}

    /**
     * A short rendering of a value for an error message: nesting cut at depth 3 and length at 160 characters, so a
     * hostile file (a list that contains itself, a million-item dict) cannot blow up the message.
     */
    public static String brief(Object o) {
        StringBuilder sb = new StringBuilder();
        brief(o, sb, 0);
        return sb.length() > 160 ? sb.substring(0, 160) + "…" : sb.toString();
    }

    private static void brief(Object o, StringBuilder sb, int depth) {
        if (sb.length() > 160) return;
        if (depth > 3) {
            sb.append("…");
            return;
        }
        switch (o) {
            case Tuple t -> seq(t.items(), sb, depth, "(", ")");
            case java.util.List<?> l -> seq(l, sb, depth, "[", "]");
            case java.util.Map<?, ?> m -> {
                sb.append('{');
                int n = 0;
                for (java.util.Map.Entry<?, ?> e : m.entrySet()) {
                    if (n++ > 0) sb.append(", ");
                    if (sb.length() > 160) break;
                    brief(e.getKey(), sb, depth + 1);
                    sb.append(": ");
                    brief(e.getValue(), sb, depth + 1);
                }
                sb.append('}');
            }
            case String str -> sb.append('\'').append(str.length() > 60 ? str.substring(0, 60) + "…" : str).append('\'');
            case null -> sb.append("None");
            default -> sb.append(o);
        }
    }

    private static void seq(java.util.List<?> items, StringBuilder sb, int depth, String open, String close) {
        sb.append(open);
        for (int i = 0; i < items.size() && sb.length() <= 160; i++) {
            if (i > 0) sb.append(", ");
            brief(items.get(i), sb, depth + 1);
        }
        sb.append(close);
    }

    /** A tuple (immutable, so a record over an unmodifiable list). */
    public record Tuple(List<Object> items) {
        public Tuple {
            items = java.util.Collections.unmodifiableList(new java.util.ArrayList<>(items));
        }

        public static Tuple of(Object... items) {
            return new Tuple(Arrays.asList(items));
        }

        public Object get(int i) { return items.get(i); }

        public int size() { return items.size(); }
    }

    /** bytes, with value equality so it can be a dict key (tiktoken's mergeable ranks). */
    public record Bytes(byte[] value) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Bytes b && Arrays.equals(value, b.value);
        }

        @Override
        public int hashCode() { return Arrays.hashCode(value); }

        @Override
        public String toString() { return "b'" + HexFormat.of().formatHex(value) + "'"; }
    }

    /** A class or function named by module and name (GLOBAL / STACK_GLOBAL); only allow-listed ones are ever built. */
    public record Global(String module, String name) {
        @Override
        public String toString() { return module + "." + name; }
    }

    /** An instance made by NEWOBJ of an allowed class, with the state BUILD gave it (tiktoken's Encoding). */
    public static final class Instance {
        private final Global type;
        private Object state;

        Instance(Global type) { this.type = type; }

        public Global type() { return type; }

        public Object state() { return state; }

        void state(Object s) { state = s; }
    }

    /** What the writer emits as {@code callable(*args)} (REDUCE); the reader never calls anything. */
    public record Reduce(Global callable, Tuple args) {}

    /** What the writer emits as a persistent id (BINPERSID): torch's reference to a storage record. */
    public record PersistentId(Tuple pid) {}

    /** What the writer emits as {@code cls.__new__(cls)} followed by BUILD with {@code state}. */
    public record NewObj(Global type, Object state) {}
}
