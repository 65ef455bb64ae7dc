package nanochat4j.train.data;

import io.airlift.compress.v3.MalformedInputException;
import io.airlift.compress.v3.snappy.SnappyJavaDecompressor;
import io.airlift.compress.v3.zstd.ZstdJavaDecompressor;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.apache.parquet.bytes.BytesInput;
import org.apache.parquet.column.ColumnDescriptor;
import org.apache.parquet.column.Encoding;
import org.apache.parquet.column.impl.ColumnReaderImpl;
import org.apache.parquet.column.page.DataPage;
import org.apache.parquet.column.page.DataPageV1;
import org.apache.parquet.column.page.DataPageV2;
import org.apache.parquet.column.page.DictionaryPage;
import org.apache.parquet.column.page.PageReader;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.CompressionCodec;
import org.apache.parquet.format.FieldRepetitionType;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.PageHeader;
import org.apache.parquet.format.SchemaElement;
import org.apache.parquet.format.Type;
import org.apache.parquet.format.Util;
import org.apache.parquet.io.api.PrimitiveConverter;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Types;

/**
 * The {@code text} column of a parquet file, one row group at a time, without Hadoop.
 *
 * <p>Apache parquet's own pieces do the format work: {@code parquet-format-structures} parses the Thrift footer
 * and page headers, {@code parquet-column}'s {@link ColumnReaderImpl} decodes the pages (PLAIN, dictionary,
 * RLE/bit-packed levels, data pages v1 and v2). This class only finds the column chunk, reads its bytes with one
 * positional read and decompresses pages with pure-Java codecs (airlift: ZSTD — nanochat's shards — and SNAPPY,
 * plus GZIP from the JDK). Null values are skipped. Any malformed byte becomes an {@link IOException} naming the
 * file and the row group.
 */
public final class ParquetFile implements DataFile {
    private static final byte[] MAGIC = "PAR1".getBytes(StandardCharsets.US_ASCII);
    private static final String COLUMN = "text";

    private final Path path;
    private final FileMetaData meta;
    private final int columnIndex; // index of the text leaf among the leaves = its chunk index in a row group
    private final ColumnDescriptor column;

    private ParquetFile(Path path, FileMetaData meta, int columnIndex, ColumnDescriptor column) {
        this.path = path;
        this.meta = meta;
        this.columnIndex = columnIndex;
        this.column = column;
    }

    /** Reads and checks the footer: magic bytes at both ends, footer length, a {@code text} byte-array column. */
    public static ParquetFile open(Path path) throws IOException {
        FileMetaData meta;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 12) throw new IOException("not a parquet file (" + size + " bytes, too short): " + path);
            ByteBuffer tail = readFully(ch, size - 8, 8, path);
            ByteBuffer head = readFully(ch, 0, 4, path);
            if (!hasMagic(head, 0) || !hasMagic(tail, 4)) {
                throw new IOException("not a parquet file (no PAR1 magic at " + (hasMagic(head, 0) ? "end, truncated?" : "start")
                        + "): " + path);
            }
            long footerLen = tail.order(ByteOrder.LITTLE_ENDIAN).getInt(0) & 0xffffffffL;
            if (footerLen > size - 12) {
                throw new IOException("corrupt parquet file: footer length " + footerLen + " exceeds file size " + size + ": " + path);
            }
            ByteBuffer footer = readFully(ch, size - 8 - footerLen, (int) footerLen, path);
            try {
                meta = Util.readFileMetaData(new ByteArrayInputStream(footer.array()));
            } catch (IOException | RuntimeException e) {
                throw new IOException("corrupt parquet footer in " + path + ": " + e.getMessage(), e);
            }
        } catch (NoSuchFileException e) {
            throw new IOException("parquet file not found: " + path, e);
        }
        if (meta.schema == null || meta.schema.isEmpty()) throw new IOException("parquet file has no schema: " + path);
        if (meta.encryption_algorithm != null) throw new IOException("encrypted parquet files are not supported: " + path);
        // Walk the schema tree: the leaves, in order, are the column chunks of every row group.
        List<String> leaves = new ArrayList<>();
        int[] next = {1};
        SchemaElement text = null;
        int textIndex = -1;
        SchemaElement root = meta.schema.get(0);
        for (int c = 0; c < root.num_children; c++) {
            int leafStart = leaves.size();
            SchemaElement top = collectLeaves(meta.schema, next, "", leaves, path);
            if (top.name.equals(COLUMN) && top.num_children == 0) {
                text = top;
                textIndex = leafStart;
            }
        }
        if (text == null) {
            throw new IOException("parquet file has no top-level column \"" + COLUMN + "\" (columns: " + leaves + "): " + path);
        }
        if (text.type != Type.BYTE_ARRAY) {
            throw new IOException("parquet column \"" + COLUMN + "\" is " + text.type + ", want a string (BYTE_ARRAY): " + path);
        }
        if (text.repetition_type == FieldRepetitionType.REPEATED) {
            throw new IOException("parquet column \"" + COLUMN + "\" is repeated, want one string per row: " + path);
        }
        boolean optional = text.repetition_type == FieldRepetitionType.OPTIONAL;
        PrimitiveType type = optional
                ? Types.optional(PrimitiveTypeName.BINARY).named(COLUMN)
                : Types.required(PrimitiveTypeName.BINARY).named(COLUMN);
        ColumnDescriptor column = new ColumnDescriptor(new String[] {COLUMN}, type, 0, optional ? 1 : 0);
        return new ParquetFile(path, meta, textIndex, column);
    }

    private static SchemaElement collectLeaves(List<SchemaElement> schema, int[] next, String prefix, List<String> leaves, Path path)
            throws IOException {
        if (next[0] >= schema.size()) throw new IOException("corrupt parquet schema (children past the end): " + path);
        SchemaElement e = schema.get(next[0]++);
        String name = prefix.isEmpty() ? e.name : prefix + "." + e.name;
        if (e.num_children == 0) leaves.add(name);
        for (int c = 0; c < e.num_children; c++) collectLeaves(schema, next, name, leaves, path);
        return e;
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public int rowGroupCount() {
        return meta.row_groups == null ? 0 : meta.row_groups.size();
    }

    /** Total rows in the file, from the footer. */
    public long rowCount() {
        return meta.num_rows;
    }

    /** Rows in one row group, from the footer. */
    public long rowGroupRows(int index) {
        return meta.row_groups.get(index).num_rows;
    }

    @Override
    public List<String> rowGroup(int index) throws IOException {
        if (index < 0 || index >= rowGroupCount()) {
            throw new IndexOutOfBoundsException("row group " + index + " of " + rowGroupCount() + " in " + path);
        }
        ColumnMetaData md = meta.row_groups.get(index).columns.get(columnIndex).meta_data;
        String where = path + ", row group " + index;
        if (md == null) throw new IOException("parquet column chunk without metadata: " + where);
        long start = md.data_page_offset;
        if (md.isSetDictionary_page_offset() && md.dictionary_page_offset > 0 && md.dictionary_page_offset < start) {
            start = md.dictionary_page_offset;
        }
        byte[] chunk;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            if (start < 4 || md.total_compressed_size < 0 || start + md.total_compressed_size > ch.size() - 8) {
                throw new IOException("corrupt parquet file: column chunk [" + start + ", +" + md.total_compressed_size
                        + ") outside the file (" + ch.size() + " bytes): " + where);
            }
            chunk = readFully(ch, start, Math.toIntExact(md.total_compressed_size), path).array();
        }
        try {
            return decodeChunk(chunk, md);
        } catch (IOException | RuntimeException e) {
            throw new IOException("corrupt parquet data in " + where + ": " + e, e);
        }
    }

    private List<String> decodeChunk(byte[] chunk, ColumnMetaData md) throws IOException {
        ChunkPages pages = new ChunkPages(chunk, md.codec, md.num_values);
        ColumnReaderImpl reader = new ColumnReaderImpl(column, pages, new PrimitiveConverter() {}, null);
        long n = reader.getTotalValueCount();
        int maxDef = column.getMaxDefinitionLevel();
        List<String> docs = new ArrayList<>((int) Math.min(n, 1 << 16));
        for (long i = 0; i < n; i++) {
            if (reader.getCurrentDefinitionLevel() == maxDef) docs.add(reader.getBinary().toStringUsingUTF8());
            reader.consume();
        }
        return docs;
    }

    /** The pages of one column chunk, decompressed on demand, in the form parquet-column's reader consumes. */
    private static final class ChunkPages implements PageReader {
        private final ByteArrayInputStream in;
        private final CompressionCodec codec;
        private final long totalValues;
        private DictionaryPage dictionary;
        private PageHeader pending; // first data page header, read while looking for a dictionary page

        ChunkPages(byte[] chunk, CompressionCodec codec, long totalValues) throws IOException {
            this.in = new ByteArrayInputStream(chunk);
            this.codec = codec;
            this.totalValues = totalValues;
            PageHeader h = Util.readPageHeader(in);
            if (h.isSetDictionary_page_header()) {
                byte[] data = decompress(readBytes(h.compressed_page_size), h.uncompressed_page_size);
                dictionary = new DictionaryPage(BytesInput.from(data), h.dictionary_page_header.num_values,
                        Encoding.valueOf(h.dictionary_page_header.encoding.name()));
            } else {
                pending = h;
            }
        }

        @Override
        public DictionaryPage readDictionaryPage() {
            return dictionary;
        }

        @Override
        public long getTotalValueCount() {
            return totalValues;
        }

        @Override
        public DataPage readPage() {
            try {
                while (true) {
                    PageHeader h = pending != null ? pending : (in.available() > 0 ? Util.readPageHeader(in) : null);
                    pending = null;
                    if (h == null) return null;
                    if (h.isSetData_page_header()) {
                        var dh = h.data_page_header;
                        byte[] data = decompress(readBytes(h.compressed_page_size), h.uncompressed_page_size);
                        return new DataPageV1(BytesInput.from(data), dh.num_values, h.uncompressed_page_size, null,
                                Encoding.valueOf(dh.repetition_level_encoding.name()),
                                Encoding.valueOf(dh.definition_level_encoding.name()), Encoding.valueOf(dh.encoding.name()));
                    }
                    if (h.isSetData_page_header_v2()) {
                        var dh = h.data_page_header_v2;
                        byte[] rep = readBytes(dh.repetition_levels_byte_length);
                        byte[] def = readBytes(dh.definition_levels_byte_length);
                        int dataLen = h.compressed_page_size - rep.length - def.length;
                        int rawLen = h.uncompressed_page_size - rep.length - def.length;
                        byte[] data = readBytes(dataLen);
                        boolean compressed = !dh.isSetIs_compressed() || dh.is_compressed;
                        if (compressed) data = decompress(data, rawLen);
                        return DataPageV2.uncompressed(dh.num_rows, dh.num_nulls, dh.num_values, BytesInput.from(rep),
                                BytesInput.from(def), Encoding.valueOf(dh.encoding.name()), BytesInput.from(data), null);
                    }
                    readBytes(h.compressed_page_size); // index or unknown page: skip
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }

        private byte[] readBytes(int n) throws IOException {
            if (n < 0 || n > in.available()) {
                throw new IOException("page of " + n + " bytes runs past the column chunk (" + in.available() + " left)");
            }
            return in.readNBytes(n);
        }

        private byte[] decompress(byte[] src, int rawLen) throws IOException {
            if (rawLen < 0) throw new IOException("negative uncompressed page size " + rawLen);
            byte[] out;
            int n;
            try {
                switch (codec) {
                    case UNCOMPRESSED -> {
                        return src;
                    }
                    case SNAPPY -> {
                        out = new byte[rawLen];
                        n = new SnappyJavaDecompressor().decompress(src, 0, src.length, out, 0, rawLen);
                    }
                    case ZSTD -> {
                        out = new byte[rawLen];
                        n = new ZstdJavaDecompressor().decompress(src, 0, src.length, out, 0, rawLen);
                    }
                    case GZIP -> {
                        try (InputStream gz = new GZIPInputStream(new ByteArrayInputStream(src))) {
                            out = gz.readAllBytes();
                            n = out.length;
                        }
                    }
                    default -> throw new IOException("compression codec " + codec + " is not supported (want ZSTD, SNAPPY, GZIP or none)");
                }
            } catch (MalformedInputException e) {
                throw new IOException(codec + " page does not decompress: " + e.getMessage(), e);
            }
            if (n != rawLen) throw new IOException(codec + " page decompressed to " + n + " bytes, header says " + rawLen);
            return out;
        }
    }

    private static boolean hasMagic(ByteBuffer b, int at) {
        for (int i = 0; i < 4; i++) if (b.get(at + i) != MAGIC[i]) return false;
        return true;
    }

    private static ByteBuffer readFully(FileChannel ch, long pos, int len, Path path) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(len);
        while (b.hasRemaining()) {
            int r = ch.read(b, pos + b.position());
            if (r < 0) throw new IOException("truncated parquet file: wanted " + len + " bytes at offset " + pos + ": " + path);
        }
        return b.flip();
    }
}
