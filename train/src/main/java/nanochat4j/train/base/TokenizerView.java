package nanochat4j.train.base;

import java.util.function.Function;

/**
 * What pretraining needs from a tokenizer: ids of a document (no BOS), text of ids, the BOS id, the vocabulary
 * size, and each token's UTF-8 byte length (0 for special tokens) for bits per byte. {@code encode} is called
 * from the loader's threads at once and must be thread-safe.
 */
public record TokenizerView(Function<String, int[]> encode, Function<int[], String> decode, int bos, int vocabSize,
                            int[] tokenBytes, String name) {
    public TokenizerView {
        if (tokenBytes.length != vocabSize) {
            throw new IllegalArgumentException("token-bytes table has " + tokenBytes.length + " entries for a vocabulary of " + vocabSize);
        }
        if (bos < 0 || bos >= vocabSize) throw new IllegalArgumentException("BOS id " + bos + " outside the vocabulary of " + vocabSize);
    }
}
