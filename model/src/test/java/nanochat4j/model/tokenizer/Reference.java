package nanochat4j.model.tokenizer;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;

/** Slow, obviously-correct reference implementations (full recount per merge; tiktoken's merge loop on lists). */
final class Reference {
    private Reference() {}

    static List<String> split(String s) {
        List<String> out = new ArrayList<>();
        Matcher m = Pretokenizer.compile(Pretokenizer.NANOCHAT_PATTERN).matcher(s);
        while (m.find()) out.add(m.group());
        return out;
    }

    /** rustbpe by definition: recount all pairs each step, take the max count, ties to the smallest pair. */
    static List<int[]> train(List<String> docs, int numMerges) {
        Map<String, Long> chunkCounts = new TreeMap<>();
        for (String d : docs) for (String c : split(Utf8.replaceLoneSurrogates(d))) chunkCounts.merge(c, 1L, Long::sum);
        List<List<Integer>> words = new ArrayList<>();
        List<Long> counts = new ArrayList<>();
        for (var e : chunkCounts.entrySet()) {
            List<Integer> ids = new ArrayList<>();
            for (byte b : e.getKey().getBytes(StandardCharsets.UTF_8)) ids.add(b & 0xFF);
            words.add(ids);
            counts.add(e.getValue());
        }
        List<int[]> merges = new ArrayList<>();
        for (int k = 0; k < numMerges; k++) {
            Map<Long, Long> pairs = new HashMap<>();
            for (int w = 0; w < words.size(); w++) {
                List<Integer> ids = words.get(w);
                for (int i = 0; i + 1 < ids.size(); i++) pairs.merge(((long) ids.get(i) << 32) | ids.get(i + 1), counts.get(w), Long::sum);
            }
            long bestKey = -1, best = 0;
            for (var e : pairs.entrySet()) {
                if (e.getValue() > best || (e.getValue() == best && e.getKey() < bestKey)) {
                    best = e.getValue();
                    bestKey = e.getKey();
                }
            }
            if (best == 0) break;
            int a = (int) (bestKey >>> 32), b = (int) bestKey, id = 256 + k;
            merges.add(new int[] {a, b});
            for (List<Integer> ids : words) {
                List<Integer> out = new ArrayList<>();
                for (int i = 0; i < ids.size(); ) {
                    if (i + 1 < ids.size() && ids.get(i) == a && ids.get(i + 1) == b) {
                        out.add(id);
                        i += 2;
                    } else {
                        out.add(ids.get(i++));
                    }
                }
                ids.clear();
                ids.addAll(out);
            }
        }
        return merges;
    }

    /** tiktoken's encode_ordinary: split, then byte_pair_merge per chunk on a list of part starts. */
    static List<Integer> encode(Tokenizer tok, String text) {
        Map<String, Integer> ranks = new HashMap<>();
        for (int id = 0; id < tok.mergeableCount(); id++) ranks.put(new String(tok.tokenBytes(id), StandardCharsets.ISO_8859_1), id);
        List<Integer> out = new ArrayList<>();
        for (String chunk : split(Utf8.replaceLoneSurrogates(text))) {
            String piece = new String(chunk.getBytes(StandardCharsets.UTF_8), StandardCharsets.ISO_8859_1);
            Integer whole = ranks.get(piece);
            if (whole != null) {
                out.add(whole);
                continue;
            }
            List<Integer> starts = new ArrayList<>();
            for (int i = 0; i <= piece.length(); i++) starts.add(i);
            while (true) {
                int best = Integer.MAX_VALUE, at = -1;
                for (int i = 0; i + 2 < starts.size(); i++) {
                    Integer r = ranks.get(piece.substring(starts.get(i), starts.get(i + 2)));
                    if (r != null && r < best) {
                        best = r;
                        at = i;
                    }
                }
                if (at < 0) break;
                starts.remove(at + 1);
            }
            for (int i = 0; i + 1 < starts.size(); i++) out.add(ranks.get(piece.substring(starts.get(i), starts.get(i + 1))));
        }
        return out;
    }
}
