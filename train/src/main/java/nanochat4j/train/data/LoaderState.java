package nanochat4j.train.data;

import com.fasterxml.jackson.annotation.JsonProperty;
import java.util.Arrays;

/**
 * Where a {@link DataLoader} stands, saved in checkpoints so a resumed run sees exactly the batches an
 * uninterrupted one would have seen. nanochat keeps only (pq_idx, rg_idx, epoch) and skips ahead a stride on
 * resume (approximate); here the state is exact: the stream position of the next tokenized batch of 128
 * documents (file, row group, first document in it, epoch) plus the identity of every document still waiting in
 * the packing buffer, as (file, row group, document) triples. On resume those documents are read again and
 * re-tokenized (tokenization is deterministic), so the buffer is rebuilt in the same order.
 *
 * @param epoch      pass over the files, from 1 (nanochat's convention)
 * @param fileIndex  index of the file in the split's file list (nanochat: pq_idx)
 * @param rowGroup   row group in that file (nanochat: rg_idx); ≡ rank mod world
 * @param docOffset  first document of the next tokenizer batch within that row group
 * @param rank       the rank this state belongs to
 * @param world      number of ranks the data was sharded over
 * @param buffer     buffered documents, flattened triples [file, rowGroup, doc, file, rowGroup, doc, …], in order
 */
public record LoaderState(
        @JsonProperty("epoch") int epoch,
        @JsonProperty("pq_idx") int fileIndex,
        @JsonProperty("rg_idx") int rowGroup,
        @JsonProperty("doc_offset") int docOffset,
        @JsonProperty("rank") int rank,
        @JsonProperty("world") int world,
        @JsonProperty("buffer") int[] buffer) {

    public LoaderState {
        if (epoch < 1 || fileIndex < 0 || rowGroup < 0 || docOffset < 0 || world < 1 || rank < 0 || rank >= world
                || buffer == null || buffer.length % 3 != 0) {
            throw new IllegalArgumentException("invalid loader state: epoch " + epoch + ", file " + fileIndex + ", row group "
                    + rowGroup + ", doc " + docOffset + ", rank " + rank + " of " + world
                    + ", buffer " + (buffer == null ? "null" : buffer.length + " ints"));
        }
    }

    /** The state of a fresh loader: epoch 1, first file, this rank's first row group, empty buffer. */
    public static LoaderState start(int rank, int world) {
        return new LoaderState(1, 0, rank, 0, rank, world, new int[0]);
    }

    /** Number of documents in the packing buffer. */
    public int bufferedDocs() {
        return buffer.length / 3;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof LoaderState s && epoch == s.epoch && fileIndex == s.fileIndex && rowGroup == s.rowGroup
                && docOffset == s.docOffset && rank == s.rank && world == s.world && Arrays.equals(buffer, s.buffer);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(new int[] {epoch, fileIndex, rowGroup, docOffset, rank, world, Arrays.hashCode(buffer)});
    }

    @Override
    public String toString() {
        return "LoaderState[epoch=" + epoch + ", pq_idx=" + fileIndex + ", rg_idx=" + rowGroup + ", doc_offset=" + docOffset
                + ", rank=" + rank + "/" + world + ", buffered=" + bufferedDocs() + "]";
    }
}
