package nanochat4j.model.interop;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A restricted reader of Python pickles (protocols 2–5, the opcodes {@code torch.save} and {@code pickle.dump} emit
 * for nanochat's files). It never executes anything a file names:
 * <ul>
 *   <li>every class or function a file names (GLOBAL, STACK_GLOBAL, INST) is checked against {@link #ALLOWED} the
 *       moment it is read; anything else — {@code os.system}, {@code builtins.eval}, … — stops the read with an
 *       error naming it, before any later opcode could use it;</li>
 *   <li>even an allowed name is never looked up or called: REDUCE hands it, with its arguments, to the caller's
 *       {@link Calls} (which builds plain Java data, e.g. a tensor descriptor), NEWOBJ makes an inert
 *       {@link Py.Instance} and BUILD only records its state;</li>
 *   <li>lengths are checked against the bytes left before anything is allocated, so a truncated or lying file fails
 *       with the offset, never with an out-of-memory error.</li>
 * </ul>
 */
public final class PickleReader {

    /**
     * Everything nanochat's files name: the state dict's {@code OrderedDict}, torch's tensor rebuild functions and
     * typed storages ({@code torch.save}), tiktoken's {@code Encoding} ({@code tokenizer.pkl}) and {@code _codecs.encode}
     * (how protocol 2 spells bytes).
     */
    public static final Set<Py.Global> ALLOWED = Set.of(
            new Py.Global("collections", "OrderedDict"),
            new Py.Global("torch._utils", "_rebuild_tensor_v2"),
            new Py.Global("torch._utils", "_rebuild_parameter"),
            new Py.Global("torch", "FloatStorage"),
            new Py.Global("torch", "BFloat16Storage"),
            new Py.Global("torch", "HalfStorage"),
            new Py.Global("torch", "DoubleStorage"),
            new Py.Global("torch", "IntStorage"),
            new Py.Global("torch", "LongStorage"),
            new Py.Global("tiktoken.core", "Encoding"),
            new Py.Global("_codecs", "encode"));

    /** Builds the value of {@code callable(*args)} for an allowed callable, as plain data; never runs file content. */
    @FunctionalInterface
    public interface Calls {
        Object call(Py.Global callable, Py.Tuple args) throws IOException;
    }

    /** Resolves a persistent id (torch: a storage record in the zip); null means the file may not use them. */
    @FunctionalInterface
    public interface Persistent {
        Object load(Object pid) throws IOException;
    }

    private final String source;
    private final Calls calls;
    private final Persistent persistent;
    private byte[] b;
    private int pos;
    private final List<Object> stack = new ArrayList<>();
    private final List<Integer> marks = new ArrayList<>();
    private final Map<Long, Object> memo = new HashMap<>();

    /** {@code source} names the file in every error message. */
    public PickleReader(String source, Calls calls, Persistent persistent) {
        this.source = source;
        this.calls = calls;
        this.persistent = persistent;
    }

    /** The object the pickle in {@code data} describes. */
    public Object read(byte[] data) throws IOException {
        return read(data, 0);
    }

    /** The object of the pickle starting at {@code from}; {@link #end()} is then the offset just past its STOP. */
    public Object read(byte[] data, int from) throws IOException {
        b = data;
        pos = from;
        stack.clear();
        marks.clear();
        memo.clear();
        while (true) {
            if (pos >= b.length) throw error(pos, "pickle ends without a STOP opcode (truncated file)");
            int at = pos;
            int op = b[pos++] & 0xFF;
            if (op == 0x2e) { // STOP
                if (stack.size() != 1 || !marks.isEmpty()) throw error(at, "STOP with " + stack.size() + " values on the stack");
                return stack.getFirst();
            }
            if (!control(at, op) && !value(at, op) && !container(at, op) && !object(at, op)) {
                throw error(at, "opcode 0x" + Integer.toHexString(op) + " is not one nanochat's files use (or this is not a pickle)");
            }
        }
    }

    /** Framing, the stack and the memo; false when {@code op} is not one of them. */
    private boolean control(int at, int op) throws IOException {
        switch (op) {
            case 0x80 -> { // PROTO
                int proto = u8();
                if (proto > 5) throw error(at, "pickle protocol " + proto + " is newer than 5");
            }
            case 0x95 -> le(8); // FRAME: a length hint only
            case 0x28 -> marks.add(stack.size()); // MARK
            case 0x30 -> pop(at); // POP
            case 0x31 -> popMark(at); // POP_MARK
            case 0x32 -> push(peek(at)); // DUP
            case 0x71 -> memo.put((long) u8(), peek(at)); // BINPUT
            case 0x72 -> memo.put(le(4).getInt() & 0xFFFFFFFFL, peek(at)); // LONG_BINPUT
            case 0x94 -> memo.put((long) memo.size(), peek(at)); // MEMOIZE
            case 0x68 -> push(memoGet(at, u8())); // BINGET
            case 0x6a -> push(memoGet(at, le(4).getInt() & 0xFFFFFFFFL)); // LONG_BINGET
            default -> {
                return false;
            }
        }
        return true;
    }

    /** Pushes a scalar, string or bytes; false when {@code op} is not one of them. */
    private boolean value(int at, int op) throws IOException {
        switch (op) {
            case 0x4e -> push(null); // NONE
            case 0x88 -> push(Boolean.TRUE);
            case 0x89 -> push(Boolean.FALSE);
            case 0x4a -> push((long) le(4).getInt()); // BININT
            case 0x4b -> push((long) u8()); // BININT1
            case 0x4d -> push((long) (le(2).getShort() & 0xFFFF)); // BININT2
            case 0x8a -> push(longN(at, u8())); // LONG1
            case 0x8b -> push(longN(at, le(4).getInt())); // LONG4
            case 0x47 -> { // BINFLOAT: big-endian double
                need(8);
                push(ByteBuffer.wrap(b, pos, 8).order(ByteOrder.BIG_ENDIAN).getDouble());
                pos += 8;
            }
            case 0x58 -> push(utf8(at, le(4).getInt() & 0xFFFFFFFFL)); // BINUNICODE
            case 0x8c -> push(utf8(at, u8())); // SHORT_BINUNICODE
            case 0x8d -> push(utf8(at, le(8).getLong())); // BINUNICODE8
            case 0x42 -> push(new Py.Bytes(bytes(at, le(4).getInt() & 0xFFFFFFFFL))); // BINBYTES
            case 0x43 -> push(new Py.Bytes(bytes(at, u8()))); // SHORT_BINBYTES
            case 0x8e -> push(new Py.Bytes(bytes(at, le(8).getLong()))); // BINBYTES8
            case 0x55 -> push(new String(bytes(at, u8()), StandardCharsets.ISO_8859_1)); // SHORT_BINSTRING
            case 0x54 -> push(new String(bytes(at, le(4).getInt() & 0xFFFFFFFFL), StandardCharsets.ISO_8859_1)); // BINSTRING
            default -> {
                return false;
            }
        }
        return true;
    }

    /** Builds a tuple, list or dict; false when {@code op} is not one of them. */
    private boolean container(int at, int op) throws IOException {
        switch (op) {
            case 0x29 -> push(new Py.Tuple(List.of())); // EMPTY_TUPLE
            case 0x85 -> push(Py.Tuple.of(pop(at))); // TUPLE1
            case 0x86 -> { // TUPLE2
                Object y = pop(at), x = pop(at);
                push(Py.Tuple.of(x, y));
            }
            case 0x87 -> { // TUPLE3
                Object z = pop(at), y = pop(at), x = pop(at);
                push(Py.Tuple.of(x, y, z));
            }
            case 0x74 -> push(new Py.Tuple(popMark(at))); // TUPLE
            case 0x5d -> push(new ArrayList<>()); // EMPTY_LIST
            case 0x6c -> push(new ArrayList<>(popMark(at))); // LIST
            case 0x61 -> { // APPEND
                Object v = pop(at);
                list(at, peek(at)).add(v);
            }
            case 0x65 -> { // APPENDS
                List<Object> items = popMark(at);
                list(at, peek(at)).addAll(items);
            }
            case 0x7d -> push(new LinkedHashMap<>()); // EMPTY_DICT
            case 0x64 -> { // DICT
                List<Object> items = popMark(at);
                Map<Object, Object> d = new LinkedHashMap<>();
                putPairs(at, d, items);
                push(d);
            }
            case 0x73 -> { // SETITEM
                Object v = pop(at), k = pop(at);
                dict(at, peek(at)).put(key(at, k), v);
            }
            case 0x75 -> { // SETITEMS
                List<Object> items = popMark(at);
                putPairs(at, dict(at, peek(at)), items);
            }
            default -> {
                return false;
            }
        }
        return true;
    }

    /** Names, calls and builds an object (allow-listed globals only), or loads a persistent id; false otherwise. */
    private boolean object(int at, int op) throws IOException {
        switch (op) {
            case 0x63 -> push(allow(at, line(at), line(at))); // GLOBAL
            case 0x93 -> { // STACK_GLOBAL
                Object name = pop(at), module = pop(at);
                if (!(module instanceof String m) || !(name instanceof String n)) throw error(at, "STACK_GLOBAL needs two strings");
                push(allow(at, m, n));
            }
            case 0x69 -> { // INST: a class named inline, called with the marked items
                Py.Global g = allow(at, line(at), line(at));
                throw error(at, "INST of " + g + " is not used by nanochat's files");
            }
            case 0x52 -> { // REDUCE
                Object args = pop(at), callable = pop(at);
                if (!(callable instanceof Py.Global g)) throw error(at, "REDUCE of a " + typeName(callable) + ", not a named callable");
                if (!(args instanceof Py.Tuple t)) throw error(at, "REDUCE of " + g + " with a " + typeName(args) + " instead of an argument tuple");
                push(call(at, g, t));
            }
            case 0x81 -> { // NEWOBJ: cls.__new__(cls, *args) — an inert instance
                Object args = pop(at), cls = pop(at);
                if (!(cls instanceof Py.Global g)) throw error(at, "NEWOBJ of a " + typeName(cls));
                if (!(args instanceof Py.Tuple t) || t.size() != 0) throw error(at, "NEWOBJ of " + g + " with arguments is not used by nanochat's files");
                if (!g.equals(new Py.Global("tiktoken.core", "Encoding"))) throw error(at, "NEWOBJ of " + g + " is not used by nanochat's files");
                push(new Py.Instance(g));
            }
            case 0x62 -> { // BUILD: obj.__setstate__(state) — only recorded
                Object state = pop(at), obj = peek(at);
                if (obj instanceof Py.Instance inst) inst.state(state);
                else if (!(obj instanceof Map<?, ?>)) throw error(at, "BUILD on a " + typeName(obj));
                // an OrderedDict's state is its attribute dict (torch's _metadata: module versions), not its items
            }
            case 0x51 -> { // BINPERSID
                Object pid = pop(at);
                if (persistent == null) throw error(at, "persistent id " + Py.brief(pid) + " in a file that may not reference storages");
                push(persistent.load(pid));
            }
            default -> {
                return false;
            }
        }
        return true;
    }

    /** Offset just past the STOP of the last pickle read. */
    public int end() {
        return pos;
    }

    private Py.Global allow(int at, String module, String name) throws IOException {
        Py.Global g = new Py.Global(module, name);
        if (!ALLOWED.contains(g)) {
            throw error(at, "refused to load " + g + ": only the classes nanochat's files use may appear (collections.OrderedDict, "
                    + "torch._utils._rebuild_tensor_v2, torch.*Storage, tiktoken.core.Encoding); nothing from this file was run");
        }
        return g;
    }

    private Object call(int at, Py.Global g, Py.Tuple args) throws IOException {
        if (g.module().equals("_codecs") && g.name().equals("encode")) {
            // protocol 2's spelling of bytes: _codecs.encode(str, 'latin1')
            if (args.size() != 2 || !(args.get(0) instanceof String s) || !"latin1".equals(args.get(1))) {
                throw error(at, "_codecs.encode is only accepted as (str, 'latin1'), got " + Py.brief(args));
            }
            return new Py.Bytes(s.getBytes(StandardCharsets.ISO_8859_1));
        }
        if (g.equals(new Py.Global("collections", "OrderedDict"))) {
            if (args.size() != 0) throw error(at, "collections.OrderedDict called with arguments");
            return new LinkedHashMap<>();
        }
        if (calls == null) throw error(at, g + " may not be called in this file");
        try {
            return calls.call(g, args);
        } catch (IOException | RuntimeException e) {
            throw new IOException(source + ": pickle byte " + at + ": " + e.getMessage(), e);
        }
    }

    private void putPairs(int at, Map<Object, Object> d, List<Object> items) throws IOException {
        if (items.size() % 2 != 0) throw error(at, "odd number of items for a dict");
        for (int i = 0; i < items.size(); i += 2) d.put(key(at, items.get(i)), items.get(i + 1));
    }

    private Object key(int at, Object k) throws IOException {
        if (k == null || k instanceof String || k instanceof Long || k instanceof Py.Bytes || k instanceof Py.Tuple || k instanceof Boolean) return k;
        throw error(at, "unhashable dict key of type " + typeName(k));
    }

    @SuppressWarnings("unchecked")
    private Map<Object, Object> dict(int at, Object o) throws IOException {
        if (o instanceof Map<?, ?> m) return (Map<Object, Object>) m;
        throw error(at, "SETITEM on a " + typeName(o) + ", not a dict");
    }

    @SuppressWarnings("unchecked")
    private List<Object> list(int at, Object o) throws IOException {
        if (o instanceof ArrayList<?> l) return (List<Object>) l;
        throw error(at, "APPEND on a " + typeName(o) + ", not a list");
    }

    private Object memoGet(int at, long k) throws IOException {
        if (!memo.containsKey(k)) throw error(at, "memo key " + k + " was never stored");
        return memo.get(k);
    }

    private void push(Object o) { stack.add(o); }

    private Object pop(int at) throws IOException {
        int floor = marks.isEmpty() ? 0 : marks.getLast();
        if (stack.size() <= floor) throw error(at, "stack underflow");
        return stack.removeLast();
    }

    private Object peek(int at) throws IOException {
        int floor = marks.isEmpty() ? 0 : marks.getLast();
        if (stack.size() <= floor) throw error(at, "stack underflow");
        return stack.getLast();
    }

    private List<Object> popMark(int at) throws IOException {
        if (marks.isEmpty()) throw error(at, "no MARK to pop to");
        int m = marks.removeLast();
        List<Object> sub = new ArrayList<>(stack.subList(m, stack.size()));
        stack.subList(m, stack.size()).clear();
        return sub;
    }

    private void need(long n) throws IOException {
        if (n < 0 || n > b.length - pos) throw error(pos, "needs " + n + " more bytes but only " + (b.length - pos) + " are left (truncated file)");
    }

    private int u8() throws IOException {
        need(1);
        return b[pos++] & 0xFF;
    }

    private ByteBuffer le(int n) throws IOException {
        need(n);
        ByteBuffer r = ByteBuffer.wrap(b, pos, n).order(ByteOrder.LITTLE_ENDIAN);
        pos += n;
        return r;
    }

    private byte[] bytes(int at, long n) throws IOException {
        need(n);
        byte[] r = java.util.Arrays.copyOfRange(b, pos, pos + (int) n);
        pos += (int) n;
        return r;
    }

    private String utf8(int at, long n) throws IOException {
        return new String(bytes(at, n), StandardCharsets.UTF_8);
    }

    private long longN(int at, int n) throws IOException {
        if (n < 0 || n > 8) throw error(at, "integer of " + n + " bytes is larger than nanochat's files use");
        need(n);
        long v = 0;
        for (int i = n - 1; i >= 0; i--) v = (v << 8) | (b[pos + i] & 0xFF);
        if (n > 0 && n < 8 && (b[pos + n - 1] & 0x80) != 0) v -= 1L << (8 * n); // two's complement sign
        pos += n;
        return v;
    }

    private String line(int at) throws IOException {
        int start = pos;
        while (pos < b.length && b[pos] != '\n') pos++;
        if (pos >= b.length) throw error(at, "unterminated name (truncated file)");
        return new String(b, start, pos++ - start, StandardCharsets.UTF_8);
    }

    private static String typeName(Object o) {
        return o == null ? "None" : o instanceof Py.Global g ? g.toString() : o.getClass().getSimpleName();
    }

    private IOException error(int at, String what) {
        return new IOException(source + ": pickle byte " + at + ": " + what);
    }
}
