package nanochat4j.model.interop;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * Writes the Python values of {@link Py} as a pickle that Python's {@code pickle.load} (and so {@code torch.load})
 * reads: protocol 2 (what {@code torch.save} writes; {@code torch.load} warns about others) or 3 (bytes need it), no memo (nothing is shared), dict and list items in batches of 1000 like
 * CPython. Only {@link Py.Reduce}, {@link Py.NewObj} and {@link Py.PersistentId} name callables, and only the ones
 * the caller puts there.
 */
public final class PickleWriter {
    private static final int BATCH = 1000;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final int protocol;

    private PickleWriter(int protocol) {
        this.protocol = protocol;
    }

    /** The pickle of {@code value}, protocol 3. */
    public static byte[] write(Object value) {
        return write(value, 3);
    }

    /** The pickle of {@code value} in protocol 2 or 3 (bytes need 3). */
    public static byte[] write(Object value, int protocol) {
        if (protocol != 2 && protocol != 3) throw new IllegalArgumentException("pickle protocol " + protocol + ": only 2 and 3 are written");
        PickleWriter w = new PickleWriter(protocol);
        w.out.write(0x80);
        w.out.write(protocol);
        w.value(value);
        w.out.write('.');
        return w.out.toByteArray();
    }

    private void value(Object v) {
        switch (v) {
            case null -> out.write('N');
            case Boolean bool -> out.write(bool ? 0x88 : 0x89);
            case Integer i -> integer(i);
            case Long l -> integer(l);
            case Double d -> {
                out.write('G');
                long bits = Double.doubleToRawLongBits(d);
                for (int s = 56; s >= 0; s -= 8) out.write((int) (bits >>> s));
            }
            case String s -> {
                byte[] u = s.getBytes(StandardCharsets.UTF_8);
                out.write('X');
                int32(u.length);
                out.writeBytes(u);
            }
            case Py.Bytes by -> {
                if (protocol < 3) throw new IllegalArgumentException("bytes need pickle protocol 3");
                byte[] u = by.value();
                if (u.length < 256) {
                    out.write('C');
                    out.write(u.length);
                } else {
                    out.write('B');
                    int32(u.length);
                }
                out.writeBytes(u);
            }
            case Py.Tuple t -> tuple(t.items());
            case Py.Global g -> global(g);
            case Py.Reduce r -> {
                global(r.callable());
                tuple(r.args().items());
                out.write('R');
            }
            case Py.NewObj n -> {
                global(n.type());
                out.write(')');
                out.write(0x81);
                value(n.state());
                out.write('b');
            }
            case Py.PersistentId p -> {
                tuple(p.pid().items());
                out.write('Q');
            }
            case Map<?, ?> m -> {
                out.write('}');
                int n = 0;
                for (Map.Entry<?, ?> e : m.entrySet()) {
                    if (n % BATCH == 0) {
                        if (n > 0) out.write('u');
                        out.write('(');
                    }
                    value(e.getKey());
                    value(e.getValue());
                    n++;
                }
                if (n > 0) out.write('u');
            }
            case List<?> l -> {
                out.write(']');
                for (int i = 0; i < l.size(); i++) {
                    if (i % BATCH == 0) {
                        if (i > 0) out.write('e');
                        out.write('(');
                    }
                    value(l.get(i));
                }
                if (!l.isEmpty()) out.write('e');
            }
            default -> throw new IllegalArgumentException("cannot pickle a " + v.getClass().getName());
        }
    }

    private void tuple(List<Object> items) {
        switch (items.size()) {
            case 0 -> out.write(')');
            case 1, 2, 3 -> {
                for (Object o : items) value(o);
                out.write(0x84 + items.size()); // TUPLE1..TUPLE3
            }
            default -> {
                out.write('(');
                for (Object o : items) value(o);
                out.write('t');
            }
        }
    }

    private void global(Py.Global g) {
        out.write('c');
        out.writeBytes((g.module() + "\n" + g.name() + "\n").getBytes(StandardCharsets.UTF_8));
    }

    private void integer(long v) {
        if (v >= 0 && v < 256) {
            out.write('K');
            out.write((int) v);
        } else if (v >= 0 && v < 65536) {
            out.write('M');
            out.write((int) v);
            out.write((int) (v >>> 8));
        } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            out.write('J');
            int32((int) v);
        } else {
            out.write(0x8a); // LONG1, 8 bytes two's complement little-endian
            out.write(8);
            for (int s = 0; s < 64; s += 8) out.write((int) (v >>> s));
        }
    }

    private void int32(int v) {
        for (int s = 0; s < 32; s += 8) out.write(v >>> s);
    }
}
