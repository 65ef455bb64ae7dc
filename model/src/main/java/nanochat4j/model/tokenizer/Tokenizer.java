package nanochat4j.model.tokenizer;

import java.io.IOException;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import nanochat4j.tensor.cpu.Parallel;

/**
 * nanochat's tokenizer: byte-level BPE over regex-split chunks, tiktoken encoding semantics, nine special tokens.
 * <ul>
 *   <li>Token id = rank: ids 0..{@link #mergeableCount()}-1 are byte strings (for a trained vocabulary 0–255 are
 *       the raw bytes and 256+k is merge k), then the specials in {@link #SPECIAL_TOKENS} order; BOS is the first.</li>
 *   <li>Encoding a chunk: if its whole byte string is a token, that id; else start from single bytes and merge the
 *       adjacent pair whose concatenation has the lowest rank, leftmost on ties (tiktoken's byte_pair_merge).
 *       Frequent chunks are cached per thread. Special-token text in ordinary input is ordinary text.</li>
 *   <li>Lone surrogates in input strings are encoded as U+FFFD; decoding replaces invalid UTF-8 like Python
 *       ({@link Utf8}); specials decode to their names.</li>
 *   <li>Files: {@link #save}/{@link #load} in our versioned format ({@link TokenizerFiles}); the tiktoken rank
 *       format via {@link TiktokenFormat}.</li>
 * </ul>
 */
public final class Tokenizer {

    /** nanochat's special tokens, in id order after the mergeable tokens. */
    public static final List<String> SPECIAL_TOKENS = List.of(
            "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>");

    /** Byte-level tokens per merge-free piece of text cached per thread before the cache is cleared. */
    private static final int CACHE_ENTRIES = 1 << 18;
    /** Scratch buffers up to this many elements are kept per thread; larger ones are dropped after use. */
    private static final int KEEP_BUFFER = 1 << 20;
    private static final VarHandle LONG_LE = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);

    private final String pattern;
    private final Pretokenizer pretokenizer;
    private final int mergeable;
    private final int vocabSize;
    private final byte[] arena;   // bytes of every id, specials as their names
    private final int[] offsets;  // id -> start in arena; offsets[vocabSize] = end
    private final int[] lengths;  // id -> byte length (specials: of the name)
    private final long[] packed;  // id -> its bytes little-endian in a long, for tokens of up to 8 bytes
    private final int[] tokenByteLengths; // token_bytes: length of the raw bytes, 0 for specials
    private final BytesMap ranks;
    private final int maxTokenLength;
    private final boolean rawBytes; // ids 0..255 are the single bytes
    private final List<String> specials;
    private final Map<String, Integer> specialIds = new HashMap<>();
    private final int[][] merges; // (left, right) per merge for trained vocabularies, null if not derivable
    private final ThreadLocal<Encoder> encoders = ThreadLocal.withInitial(Encoder::new);

    /** A tokenizer over mergeable tokens {@code tokens[rank]}, with the nine specials appended. */
    public Tokenizer(byte[][] tokens, String pattern) {
        this(tokens, pattern, SPECIAL_TOKENS, null);
    }

    Tokenizer(byte[][] tokens, String pattern, List<String> specials, int[][] merges) {
        this.pattern = pattern;
        this.pretokenizer = new Pretokenizer(pattern);
        this.mergeable = tokens.length;
        this.specials = List.copyOf(specials);
        this.vocabSize = mergeable + specials.size();
        this.ranks = new BytesMap(mergeable);
        long total = 0;
        int maxLen = 0;
        for (byte[] t : tokens) {
            total += t.length;
            maxLen = Math.max(maxLen, t.length);
        }
        byte[][] specialBytes = new byte[specials.size()][];
        for (int i = 0; i < specialBytes.length; i++) {
            specialBytes[i] = specials.get(i).getBytes(StandardCharsets.UTF_8);
            total += specialBytes[i].length;
        }
        if (total > Integer.MAX_VALUE - 16) throw new IllegalArgumentException("vocabulary too large: " + total + " bytes");
        arena = new byte[(int) total];
        offsets = new int[vocabSize + 1];
        tokenByteLengths = new int[vocabSize];
        int o = 0;
        for (int id = 0; id < vocabSize; id++) {
            byte[] t = id < mergeable ? tokens[id] : specialBytes[id - mergeable];
            offsets[id] = o;
            System.arraycopy(t, 0, arena, o, t.length);
            o += t.length;
            if (id < mergeable) {
                if (t.length == 0) throw new IllegalArgumentException("token " + id + " is empty");
                if (ranks.get(arena, offsets[id], t.length) >= 0) {
                    throw new IllegalArgumentException("token " + id + " repeats the bytes of token " + ranks.get(arena, offsets[id], t.length));
                }
                ranks.put(arena, offsets[id], t.length, id);
                tokenByteLengths[id] = t.length;
            }
        }
        offsets[vocabSize] = o;
        lengths = new int[vocabSize];
        packed = new long[vocabSize];
        for (int id = 0; id < vocabSize; id++) {
            lengths[id] = offsets[id + 1] - offsets[id];
            for (int k = Math.min(8, lengths[id]) - 1; k >= 0; k--) packed[id] = (packed[id] << 8) | (arena[offsets[id] + k] & 0xFF);
        }
        maxTokenLength = maxLen;
        boolean raw = mergeable >= 256;
        for (int b = 0; raw && b < 256; b++) raw = tokens[b].length == 1 && (tokens[b][0] & 0xFF) == b;
        rawBytes = raw;
        for (int i = 0; i < this.specials.size(); i++) {
            if (specialIds.put(this.specials.get(i), mergeable + i) != null) {
                throw new IllegalArgumentException("special token " + this.specials.get(i) + " appears twice");
            }
        }
        this.merges = merges;
    }

    /** The tokenizer that merge list {@code merges} (pairs of ids; merge k makes id 256+k) defines over raw bytes. */
    public static Tokenizer fromMerges(int[][] merges, String pattern) {
        byte[][] tokens = new byte[256 + merges.length][];
        for (int b = 0; b < 256; b++) tokens[b] = new byte[] {(byte) b};
        for (int k = 0; k < merges.length; k++) {
            int a = merges[k][0], b = merges[k][1], id = 256 + k;
            if (a < 0 || a >= id || b < 0 || b >= id) {
                throw new IllegalArgumentException("merge " + k + " (" + a + ", " + b + ") refers to an id not yet defined (< " + id + ")");
            }
            byte[] t = Arrays.copyOf(tokens[a], tokens[a].length + tokens[b].length);
            System.arraycopy(tokens[b], 0, t, tokens[a].length, tokens[b].length);
            tokens[id] = t;
        }
        return new Tokenizer(tokens, pattern, SPECIAL_TOKENS, merges);
    }

    /** Trains on {@code docs} (all of them, all cores); see {@link BpeTrainer} for limits and progress. */
    public static Tokenizer train(Iterable<String> docs, int vocabSize) {
        return BpeTrainer.train(docs, vocabSize);
    }

    // ---- vocabulary ----------------------------------------------------------------------------------------

    public int vocabSize() {
        return vocabSize;
    }

    /** Number of byte-string tokens (the specials follow them). */
    public int mergeableCount() {
        return mergeable;
    }

    public String pattern() {
        return pattern;
    }

    public List<String> specialTokens() {
        return specials;
    }

    public int bosId() {
        return encodeSpecial("<|bos|>");
    }

    /** Id of a special token by name, e.g. {@code "<|assistant_end|>"}. */
    public int encodeSpecial(String name) {
        Integer id = specialIds.get(name);
        if (id == null) throw new IllegalArgumentException("unknown special token " + name + "; known: " + specials);
        return id;
    }

    /** The bytes of one token (a special's name for a special): nanochat's decode_single_token_bytes. */
    public byte[] tokenBytes(int id) {
        check(id);
        return Arrays.copyOfRange(arena, offsets[id], offsets[id + 1]);
    }

    /** token_bytes: number of raw bytes per id, 0 for specials (a fresh copy). */
    public int[] tokenByteLengths() {
        return tokenByteLengths.clone();
    }

    /** A token as text (Python replacement for partial UTF-8), a special as its name. */
    public String idToToken(int id) {
        return decode(new int[] {id});
    }

    /** Rank of bytes [off, off+len) of {@code b} as one token, or -1. */
    int tokenToIdBytes(byte[] b, int off, int len) {
        return ranks.get(b, off, len);
    }

    /** Merge pairs (left, right) in order, or null for an imported vocabulary that is not a merge list. */
    public int[][] merges() {
        return merges == null ? null : merges.clone();
    }

    /** True when ids 0..255 are the raw bytes (nanochat's id model). */
    public boolean rawByteIds() {
        return rawBytes;
    }

    private void check(int id) {
        if (id < 0 || id >= vocabSize) throw new IllegalArgumentException("token id " + id + " out of range [0, " + vocabSize + ")");
    }

    // ---- encode ------------------------------------------------------------------------------------------------

    /** Ids of ordinary text (special-token text is not special). */
    public int[] encode(String text) {
        return encode(text, -1, -1);
    }

    /** Ids of text with optional ids before/after (-1 = none), e.g. {@code encode(s, bosId(), -1)}. */
    public int[] encode(String text, int prepend, int append) {
        if (prepend >= 0) check(prepend);
        if (append >= 0) check(append);
        Encoder enc = encoders.get();
        IntList out = enc.out;
        out.clear();
        if (prepend >= 0) out.add(prepend);
        enc.encodeText(text, out);
        if (append >= 0) out.add(append);
        int[] ids = out.toArray();
        out.shrink(KEEP_BUFFER);
        return ids;
    }

    /** As nanochat: prepend/append given by special-token name (null = none). */
    public int[] encode(String text, String prepend, String append) {
        return encode(text, prepend == null ? -1 : encodeSpecial(prepend), append == null ? -1 : encodeSpecial(append));
    }

    /** Encodes many texts in parallel on the CPU pool; result i is {@code encode(texts.get(i))}. */
    public int[][] encodeBatch(List<String> texts) {
        return encodeBatch(texts, -1, -1);
    }

    public int[][] encodeBatch(List<String> texts, int prepend, int append) {
        int[][] out = new int[texts.size()][];
        Parallel.forRange(texts.size(), 1, (start, end) -> {
            for (int i = start; i < end; i++) out[i] = encode(texts.get(i), prepend, append);
        });
        return out;
    }

    /**
     * Ids of arbitrary bytes, so that {@code decodeBytes(encodeBytes(b))} is {@code b}: maximal valid UTF-8 runs
     * are encoded as text, every byte of an invalid sequence becomes its own byte token.
     */
    public int[] encodeBytes(byte[] bytes) {
        if (!rawBytes) throw new IllegalStateException("encodeBytes needs a vocabulary whose ids 0..255 are the raw bytes");
        Encoder enc = encoders.get();
        IntList out = new IntList();
        int i = 0, n = bytes.length;
        while (i < n) {
            int bad = Utf8.firstInvalid(bytes, i, n - i);
            int end = bad < 0 ? n : bad;
            if (end > i) enc.encodeText(new String(bytes, i, end - i, StandardCharsets.UTF_8), out);
            if (bad < 0) break;
            out.add(bytes[bad] & 0xFF);
            i = bad + 1;
        }
        return out.toArray();
    }

    // ---- decode ------------------------------------------------------------------------------------------------

    /** Concatenated bytes of ids [off, off+len) (specials as their names). */
    public byte[] decodeBytes(int[] ids, int off, int len) {
        int[] n = new int[1];
        byte[] out = concat(ids, off, len, n);
        return n[0] == out.length ? out : Arrays.copyOf(out, n[0]);
    }

    /** Token bytes of ids [off, off+len) into a fresh buffer (possibly longer); the length goes to length[0]. */
    private byte[] concat(int[] ids, int off, int len, int[] length) {
        byte[] out = new byte[Math.max(64, len * 6 + 8)];
        int o = 0;
        for (int i = off, end = off + len; i < end; i++) {
            int id = ids[i];
            if (id < 0 || id >= vocabSize) check(id);
            int l = lengths[id];
            if (o + Math.max(l, 8) > out.length) out = Arrays.copyOf(out, Math.max(out.length * 2, o + l + 8));
            if (l <= 8) {
                LONG_LE.set(out, o, packed[id]); // one 8-byte store; the bytes past l are overwritten next
            } else {
                System.arraycopy(arena, offsets[id], out, o, l);
            }
            o += l;
        }
        length[0] = o;
        return out;
    }

    public byte[] decodeBytes(int[] ids) {
        return decodeBytes(ids, 0, ids.length);
    }

    /** Text of ids, invalid UTF-8 replaced by U+FFFD as Python's {@code errors='replace'} does. */
    public String decode(int[] ids) {
        return decode(ids, 0, ids.length);
    }

    public String decode(int[] ids, int off, int len) {
        int[] n = new int[1];
        byte[] b = concat(ids, off, len, n);
        return Utf8.decode(b, 0, n[0]).text();
    }

    // ---- chat --------------------------------------------------------------------------------------------------

    /** nanochat's render_conversation with max_tokens 2048. */
    public ChatRenderer.Rendered renderConversation(Conversation conversation) {
        return ChatRenderer.render(this, conversation, ChatRenderer.DEFAULT_MAX_TOKENS);
    }

    public ChatRenderer.Rendered renderConversation(Conversation conversation, int maxTokens) {
        return ChatRenderer.render(this, conversation, maxTokens);
    }

    /** nanochat's render_for_completion: drop the last (assistant) message, render, append assistant_start. */
    public int[] renderForCompletion(Conversation conversation) {
        return ChatRenderer.renderForCompletion(this, conversation);
    }

    // ---- files -------------------------------------------------------------------------------------------------

    /** {@code $NANOCHAT_BASE_DIR/tokenizer} (default {@code ~/.cache/nanochat4j/tokenizer}). */
    public static Path defaultDir() {
        return nanochat4j.model.BaseDir.get().resolve("tokenizer");
    }

    /** Writes {@code tokenizer.bpe} and {@code token_bytes.bin} into {@code dir} (atomically, file by file). */
    public void save(Path dir) throws IOException {
        TokenizerFiles.save(this, dir);
    }

    /** Reads {@code dir/tokenizer.bpe}. */
    public static Tokenizer load(Path dir) throws IOException {
        return TokenizerFiles.load(dir);
    }

    // ---- the per-thread encoder ----------------------------------------------------------------------------

    /** Scratch space and the chunk cache of one thread. */
    private final class Encoder {
        final IntList out = new IntList();
        final ChunkTable cache = new ChunkTable();
        int[] cacheStart = new int[1024];
        int[] cacheLen = new int[1024];
        int[] cacheIds = new int[1 << 16];
        int cacheIdsUsed;
        char[] chars = new char[1024];
        byte[] bytes = new byte[256];
        int[] partStart = new int[256];
        int[] partRank = new int[256];

        void encodeText(String text, IntList out) {
            text = Utf8.replaceLoneSurrogates(text);
            int n = text.length();
            char[] s;
            if (n <= chars.length) {
                s = chars;
            } else if (n <= KEEP_BUFFER) {
                s = chars = new char[Math.max(n, Math.min(KEEP_BUFFER, chars.length * 2))];
            } else {
                s = new char[n]; // a huge text: don't keep its buffer alive in this thread
            }
            text.getChars(0, n, s, 0);
            if (pretokenizer.pattern().equals(Pretokenizer.NANOCHAT_PATTERN)) {
                for (int i = 0; i < n; ) {
                    int e = Pretokenizer.chunkEnd(s, i, n);
                    encodeChunk(s, i, e - i, out);
                    i = e;
                }
            } else {
                pretokenizer.split(s, n, (start, end) -> encodeChunk(s, start, end - start, out));
            }
        }

        private void encodeChunk(char[] s, int off, int len, IntList out) {
            if (len == 1 && rawBytes && s[off] < 0x80) {
                out.add(s[off]);
                return;
            }
            int h = ChunkTable.hash(s, off, len);
            int e = cache.find(h, s, off, len);
            if (e >= 0) {
                int n = cacheLen[e];
                if (n == 1) out.add(cacheIds[cacheStart[e]]);
                else out.addAll(cacheIds, cacheStart[e], n);
                return;
            }
            byte[] b = bytes.length >= 3 * len ? bytes : new byte[3 * len];
            if (b.length <= KEEP_BUFFER) bytes = b;
            int nb = Utf8.encode(s, off, len, b);
            int before = out.size();
            bytePairEncode(b, nb, out);
            int count = out.size() - before;
            if (len > 1024) return; // long chunks are rare and would bloat the cache
            if (cache.size() >= CACHE_ENTRIES || cache.arenaChars() > 16L * CACHE_ENTRIES) {
                cache.clear();
                cacheIdsUsed = 0;
            }
            e = cache.add(h, s, off, len);
            if (e == cacheStart.length) {
                cacheStart = Arrays.copyOf(cacheStart, e * 2);
                cacheLen = Arrays.copyOf(cacheLen, e * 2);
            }
            if (cacheIdsUsed + count > cacheIds.length) cacheIds = Arrays.copyOf(cacheIds, Math.max(cacheIds.length * 2, cacheIdsUsed + count));
            for (int k = 0; k < count; k++) cacheIds[cacheIdsUsed + k] = out.get(before + k);
            cacheStart[e] = cacheIdsUsed;
            cacheLen[e] = count;
            cacheIdsUsed += count;
        }

        private int rank(byte[] b, int off, int len) {
            if (len > maxTokenLength) return Integer.MAX_VALUE;
            int r = ranks.get(b, off, len);
            return r < 0 ? Integer.MAX_VALUE : r;
        }

        /** tiktoken's byte_pair_merge on b[0, n), appending ranks to out. */
        void bytePairEncode(byte[] b, int n, IntList out) {
            int whole = rank(b, 0, n);
            if (whole != Integer.MAX_VALUE) {
                out.add(whole);
                return;
            }
            if (n > 128) {
                LongPieceMerge.encode(b, n, this::rank, out, Tokenizer.this::byteRank);
                return;
            }
            if (partStart.length < n + 1) {
                partStart = new int[2 * (n + 1)];
                partRank = new int[2 * (n + 1)];
            } // n <= 128 here: these stay small
            int[] st = partStart, rk = partRank;
            int m = n + 1;
            for (int i = 0; i < n - 1; i++) {
                st[i] = i;
                rk[i] = rank(b, i, 2);
            }
            st[n - 1] = n - 1;
            rk[n - 1] = Integer.MAX_VALUE;
            st[n] = n;
            rk[n] = Integer.MAX_VALUE;
            while (true) {
                int min = Integer.MAX_VALUE, at = -1;
                for (int i = 0; i < m - 1; i++) {
                    if (rk[i] < min) {
                        min = rk[i];
                        at = i;
                    }
                }
                if (at < 0) break;
                if (at > 0) rk[at - 1] = at + 2 < m ? rank(b, st[at - 1], st[at + 2] - st[at - 1]) : Integer.MAX_VALUE;
                rk[at] = at + 3 < m ? rank(b, st[at], st[at + 3] - st[at]) : Integer.MAX_VALUE;
                System.arraycopy(st, at + 2, st, at + 1, m - at - 2);
                System.arraycopy(rk, at + 2, rk, at + 1, m - at - 2);
                m--;
            }
            for (int i = 0; i < m - 1; i++) out.add(byteRankChecked(b, st[i], st[i + 1] - st[i]));
        }

        private int byteRankChecked(byte[] b, int off, int len) {
            int r = ranks.get(b, off, len);
            if (r < 0) throw new IllegalStateException("byte " + (b[off] & 0xFF) + " has no token in this vocabulary");
            return r;
        }
    }

    int byteRank(byte[] b, int off, int len) {
        int r = ranks.get(b, off, len);
        if (r < 0) throw new IllegalStateException("byte sequence of length " + len + " has no token in this vocabulary");
        return r;
    }
}
