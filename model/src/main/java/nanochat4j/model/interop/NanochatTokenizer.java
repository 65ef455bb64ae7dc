package nanochat4j.model.interop;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.model.tokenizer.TokenizerFiles;

/**
 * nanochat's tokenizer files, in {@code <base>/tokenizer/}:
 * <ul>
 *   <li>{@code tokenizer.pkl} — {@code pickle.dump} of a {@code tiktoken.core.Encoding}, whose state is
 *       {@code {name, pat_str, mergeable_ranks: {bytes: rank}, special_tokens: {str: id}}}. Read with the restricted
 *       {@link PickleReader}: ranks must be exactly 0..n−1 and the specials nanochat's nine at ids n..n+8 (in its
 *       order), else the file is refused naming what differs;</li>
 *   <li>{@code token_bytes.pt} — {@code torch.save} of an int32 tensor: UTF-8 bytes per token, 0 for specials. On
 *       read it must agree with the vocabulary (it is derived from it).</li>
 * </ul>
 */
public final class NanochatTokenizer {
    private NanochatTokenizer() {}

    public static final String PICKLE = "tokenizer.pkl";
    public static final String TOKEN_BYTES = "token_bytes.pt";
    private static final Py.Global ENCODING = new Py.Global("tiktoken.core", "Encoding");

    /** True when {@code dir} holds a nanochat tokenizer. */
    public static boolean exists(Path dir) {
        return Files.isRegularFile(dir.resolve(PICKLE));
    }

    /** Reads {@code dir/tokenizer.pkl} (and checks {@code dir/token_bytes.pt} against it when present). */
    public static Tokenizer read(Path dir) throws IOException {
        Path file = dir.resolve(PICKLE);
        if (!Files.isRegularFile(file)) throw new IOException(file + ": no nanochat tokenizer here (tokenizer.pkl not found)");
        Object o = new PickleReader(file.toString(), null, null).read(Files.readAllBytes(file));
        if (!(o instanceof Py.Instance inst) || !inst.type().equals(ENCODING)) {
            throw new IOException(file + ": holds a " + (o == null ? "None" : o instanceof Py.Instance i ? i.type() : o.getClass().getSimpleName())
                    + ", not a tiktoken.core.Encoding");
        }
        if (inst.state() instanceof String registered) {
            throw new IOException(file + ": refers to tiktoken's registered encoding '" + registered + "' instead of holding its ranks; "
                    + "only self-contained encodings (as nanochat's tok_train writes) can be imported");
        }
        if (!(inst.state() instanceof Map<?, ?> state)) throw new IOException(file + ": the Encoding has no state dict");
        if (!(state.get("pat_str") instanceof String pattern)) throw new IOException(file + ": the Encoding has no pat_str");
        if (!(state.get("mergeable_ranks") instanceof Map<?, ?> ranks)) throw new IOException(file + ": the Encoding has no mergeable_ranks");
        Object sp = state.get("special_tokens");
        Map<?, ?> specials = sp == null ? Map.of() : sp instanceof Map<?, ?> m ? m : null;
        if (specials == null) throw new IOException(file + ": special_tokens is not a dict");
        for (Object k : state.keySet()) {
            if (!List.of("name", "pat_str", "mergeable_ranks", "special_tokens", "explicit_n_vocab").contains(k)) {
                throw new IOException(file + ": the Encoding has an unknown field " + Py.brief(k));
            }
        }
        byte[][] tokens = new byte[ranks.size()][];
        for (Map.Entry<?, ?> e : ranks.entrySet()) {
            if (!(e.getKey() instanceof Py.Bytes b) || !(e.getValue() instanceof Long r)) {
                throw new IOException(file + ": mergeable_ranks entry " + Py.brief(e.getKey()) + " → " + Py.brief(e.getValue()) + " is not bytes → int");
            }
            if (r < 0 || r >= tokens.length) throw new IOException(file + ": rank " + r + " of " + b + " is outside 0.." + (tokens.length - 1));
            if (tokens[(int) (long) r] != null) throw new IOException(file + ": rank " + r + " appears twice");
            tokens[(int) (long) r] = b.value();
        }
        int n = tokens.length;
        List<String> want = Tokenizer.SPECIAL_TOKENS;
        if (specials.size() != want.size()) {
            throw new IOException(file + ": has " + specials.size() + " special tokens " + Py.brief(new java.util.ArrayList<>(specials.keySet())) + "; nanochat4j knows nanochat's " + want.size() + " " + want);
        }
        for (int i = 0; i < want.size(); i++) {
            Object id = specials.get(want.get(i));
            if (!(id instanceof Long l) || l != n + i) {
                throw new IOException(file + ": special token " + want.get(i) + " has id " + Py.brief(id) + ", nanochat's layout puts it at " + (n + i));
            }
        }
        Tokenizer tok;
        try {
            tok = new Tokenizer(tokens, pattern);
        } catch (IllegalArgumentException e) {
            throw new IOException(file + ": " + e.getMessage(), e);
        }
        Path tb = dir.resolve(TOKEN_BYTES);
        if (Files.isRegularFile(tb)) {
            int[] lengths;
            try (TorchZip z = TorchZip.open(tb)) {
                if (!(z.root() instanceof TorchZip.TensorRef t)) throw new IOException(tb + ": does not hold a tensor");
                lengths = z.ints(t);
            }
            int[] ours = tok.tokenByteLengths();
            if (lengths.length != ours.length) {
                throw new IOException(tb + ": has " + lengths.length + " entries but " + file + " defines " + ours.length + " tokens");
            }
            for (int i = 0; i < ours.length; i++) {
                if (lengths[i] != ours[i]) throw new IOException(tb + ": token " + i + " has " + lengths[i] + " bytes here but " + ours[i] + " in " + file);
            }
        }
        return tok;
    }

    /** Writes {@code tokenizer.pkl} and {@code token_bytes.pt} into {@code dir} as nanochat's {@code RustBPETokenizer.save} and tok_train do. */
    public static void write(Tokenizer tok, Path dir) throws IOException {
        Map<Object, Object> ranks = new LinkedHashMap<>();
        for (int id = 0; id < tok.mergeableCount(); id++) ranks.put(new Py.Bytes(tok.tokenBytes(id)), (long) id);
        Map<Object, Object> specials = new LinkedHashMap<>();
        List<String> names = tok.specialTokens();
        for (int i = 0; i < names.size(); i++) specials.put(names.get(i), (long) (tok.mergeableCount() + i));
        Map<Object, Object> state = new LinkedHashMap<>();
        state.put("name", "rustbpe");
        state.put("pat_str", tok.pattern());
        state.put("mergeable_ranks", ranks);
        state.put("special_tokens", specials);
        Files.createDirectories(dir);
        TokenizerFiles.writeAtomically(dir.resolve(PICKLE), PickleWriter.write(new Py.NewObj(ENCODING, state)));
        int[] lengths = tok.tokenByteLengths();
        TorchZip.writeTensor(dir.resolve(TOKEN_BYTES), TorchZip.OutTensor.ofInts(lengths, lengths.length));
    }
}
