package nanochat4j.train.data;

import io.airlift.compress.v3.Compressor;
import io.airlift.compress.v3.snappy.SnappyJavaCompressor;
import io.airlift.compress.v3.zstd.ZstdJavaCompressor;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.parquet.format.ColumnChunk;
import org.apache.parquet.format.ColumnMetaData;
import org.apache.parquet.format.CompressionCodec;
import org.apache.parquet.format.ConvertedType;
import org.apache.parquet.format.DataPageHeader;
import org.apache.parquet.format.Encoding;
import org.apache.parquet.format.FieldRepetitionType;
import org.apache.parquet.format.FileMetaData;
import org.apache.parquet.format.PageHeader;
import org.apache.parquet.format.PageType;
import org.apache.parquet.format.RowGroup;
import org.apache.parquet.format.SchemaElement;
import org.apache.parquet.format.Type;
import org.apache.parquet.format.Util;

/**
 * Writes documents as a parquet file laid out like nanochat's shards: one optional string column {@code text},
 * PLAIN encoding, no dictionary, a fixed number of rows per row group (nanochat: 1024), one v1 data page per
 * row group, ZSTD (or SNAPPY / none). Used to make test shards and to turn other text into shards. Thrift page
 * headers and footer come from {@code parquet-format-structures}; the file appears atomically (temp, fsync,
 * rename).
 */
public final class ParquetTextWriter {
    private ParquetTextWriter() {}

    public static void write(Path path, List<String> docs, int rowsPerGroup, CompressionCodec codec) throws IOException {
        if (rowsPerGroup <= 0) throw new IllegalArgumentException("rowsPerGroup must be positive: " + rowsPerGroup);
        Compressor compressor = switch (codec) {
            case ZSTD -> new ZstdJavaCompressor();
            case SNAPPY -> new SnappyJavaCompressor();
            case UNCOMPRESSED -> null;
            default -> throw new IllegalArgumentException("codec " + codec + " not supported for writing (ZSTD, SNAPPY, UNCOMPRESSED)");
        };
        ByteArrayOutputStream file = new ByteArrayOutputStream();
        file.writeBytes("PAR1".getBytes(StandardCharsets.US_ASCII));
        List<RowGroup> groups = new ArrayList<>();
        for (int from = 0; from < docs.size(); from += rowsPerGroup) {
            List<String> rows = docs.subList(from, Math.min(docs.size(), from + rowsPerGroup));
            byte[] raw = encodePage(rows);
            byte[] stored = raw;
            if (compressor != null) {
                byte[] out = new byte[compressor.maxCompressedLength(raw.length)];
                stored = Arrays.copyOf(out, compressor.compress(raw, 0, raw.length, out, 0, out.length));
            }
            PageHeader header = new PageHeader(PageType.DATA_PAGE, raw.length, stored.length);
            header.setData_page_header(new DataPageHeader(rows.size(), Encoding.PLAIN, Encoding.RLE, Encoding.RLE));
            long offset = file.size();
            Util.writePageHeader(header, file);
            int headerLen = (int) (file.size() - offset);
            file.writeBytes(stored);
            ColumnMetaData md = new ColumnMetaData(Type.BYTE_ARRAY, List.of(Encoding.PLAIN, Encoding.RLE), List.of("text"), codec,
                    rows.size(), headerLen + raw.length, headerLen + stored.length, offset);
            ColumnChunk chunk = new ColumnChunk(offset);
            chunk.setMeta_data(md);
            RowGroup group = new RowGroup(List.of(chunk), headerLen + raw.length, rows.size());
            group.setFile_offset(offset);
            group.setTotal_compressed_size(headerLen + stored.length);
            groups.add(group);
        }
        SchemaElement root = new SchemaElement("schema");
        root.setNum_children(1);
        SchemaElement text = new SchemaElement("text");
        text.setType(Type.BYTE_ARRAY);
        text.setRepetition_type(FieldRepetitionType.OPTIONAL);
        text.setConverted_type(ConvertedType.UTF8);
        FileMetaData meta = new FileMetaData(1, List.of(root, text), docs.size(), groups);
        meta.setCreated_by("nanochat4j");
        ByteArrayOutputStream footer = new ByteArrayOutputStream();
        Util.writeFileMetaData(meta, footer);
        file.writeBytes(footer.toByteArray());
        int n = footer.size();
        file.writeBytes(new byte[] {(byte) n, (byte) (n >>> 8), (byte) (n >>> 16), (byte) (n >>> 24)});
        file.writeBytes("PAR1".getBytes(StandardCharsets.US_ASCII));
        writeAtomically(path, file.toByteArray());
    }

    /** Definition levels (all 1: no nulls) as one RLE run with a 4-byte length prefix, then PLAIN byte arrays. */
    private static byte[] encodePage(List<String> rows) {
        ByteArrayOutputStream page = new ByteArrayOutputStream();
        ByteArrayOutputStream levels = new ByteArrayOutputStream();
        writeUleb(levels, (long) rows.size() << 1); // RLE run header: count << 1 | 0
        levels.write(1); // the repeated value, bit width 1 → one byte
        writeIntLe(page, levels.size());
        page.writeBytes(levels.toByteArray());
        for (String row : rows) {
            byte[] b = row.getBytes(StandardCharsets.UTF_8);
            writeIntLe(page, b.length);
            page.writeBytes(b);
        }
        return page.toByteArray();
    }

    private static void writeUleb(ByteArrayOutputStream out, long v) {
        while ((v & ~0x7FL) != 0) {
            out.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        out.write((int) v);
    }

    private static void writeIntLe(ByteArrayOutputStream out, int v) {
        out.write(v);
        out.write(v >>> 8);
        out.write(v >>> 16);
        out.write(v >>> 24);
    }

    static void writeAtomically(Path path, byte[] bytes) throws IOException {
        Path tmp = path.resolveSibling(path.getFileName() + ".tmp");
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING);
                OutputStream out = java.nio.channels.Channels.newOutputStream(ch)) {
            out.write(bytes);
            out.flush();
            ch.force(true);
        }
        Files.move(tmp, path, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
    }
}
