package nanochat4j.model.interop;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class PickleReaderTest {

    /**
     * The classic pickle exploit: {@code posix.system("touch <marker>")} via GLOBAL + REDUCE. Python's
     * {@code pickle.loads} of these bytes runs the command; ours must refuse at the GLOBAL, name the function, and
     * leave no marker behind.
     */
    static byte[] commandPickle(String module, String function, String command, boolean stackGlobal) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.write(0x80);
        b.write(stackGlobal ? 4 : 2);
        if (stackGlobal) {
            shortUnicode(b, module);
            shortUnicode(b, function);
            b.write(0x93); // STACK_GLOBAL
        } else {
            b.writeBytes(("c" + module + "\n" + function + "\n").getBytes(StandardCharsets.US_ASCII));
        }
        byte[] cmd = command.getBytes(StandardCharsets.UTF_8);
        b.write('X');
        for (int s = 0; s < 32; s += 8) b.write(cmd.length >>> s);
        b.writeBytes(cmd);
        b.write(0x85); // TUPLE1
        b.write('R');  // REDUCE
        b.write('.');
        return b.toByteArray();
    }

    private static void shortUnicode(ByteArrayOutputStream b, String s) {
        byte[] u = s.getBytes(StandardCharsets.UTF_8);
        b.write(0x8c);
        b.write(u.length);
        b.writeBytes(u);
    }

    @Test
    void refusesACommandRunningPickleNamingTheFunctionAndRunsNothing(@TempDir Path tmp) {
        Path marker = tmp.resolve("pwned");
        for (String[] f : new String[][] {{"posix", "system"}, {"os", "system"}, {"builtins", "eval"}, {"subprocess", "check_output"}}) {
            for (boolean stackGlobal : new boolean[] {false, true}) {
                byte[] evil = commandPickle(f[0], f[1], "touch " + marker, stackGlobal);
                IOException e = assertThrows(IOException.class, () -> new PickleReader("evil.pkl", null, null).read(evil));
                assertTrue(e.getMessage().contains("evil.pkl") && e.getMessage().contains("refused to load " + f[0] + "." + f[1]), e.getMessage());
                assertTrue(e.getMessage().contains("nothing from this file was run"), e.getMessage());
            }
        }
        assertFalse(Files.exists(marker), "the command must not have run");
    }

    @Test
    void refusesTheExploitInsideATorchZipAndATokenizerPickle(@TempDir Path tmp) throws IOException {
        Path marker = tmp.resolve("pwned");
        byte[] evil = commandPickle("posix", "system", "touch " + marker, false);
        Path pt = tmp.resolve("model_000001.pt");
        try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(pt))) {
            z.putNextEntry(new ZipEntry("model_000001/data.pkl"));
            z.write(evil);
            z.closeEntry();
        }
        IOException e = assertThrows(IOException.class, () -> TorchZip.open(pt));
        assertTrue(e.getMessage().contains(pt.toString()) && e.getMessage().contains("refused to load posix.system"), e.getMessage());

        Path tokDir = Files.createDirectories(tmp.resolve("tokenizer"));
        Files.write(tokDir.resolve("tokenizer.pkl"), evil);
        e = assertThrows(IOException.class, () -> NanochatTokenizer.read(tokDir));
        assertTrue(e.getMessage().contains("tokenizer.pkl") && e.getMessage().contains("refused to load posix.system"), e.getMessage());
        assertFalse(Files.exists(marker));
    }

    @Test
    void allowedNamesAreNeverCalledOutsideTheirRole() {
        // torch.FloatStorage is allowed as a storage type, but calling it is not something torch.save writes
        byte[] p = PickleWriter.write(new Py.Reduce(new Py.Global("torch", "FloatStorage"), Py.Tuple.of(3L)));
        IOException e = assertThrows(IOException.class, () -> new PickleReader("x.pkl", null, null).read(p));
        assertTrue(e.getMessage().contains("torch.FloatStorage may not be called"), e.getMessage());
    }

    @Test
    void writerAndReaderAgreeOnEveryValueKind() throws IOException {
        Map<Object, Object> d = new LinkedHashMap<>();
        d.put("s", "héllo ✓");
        d.put("ints", List.of(0L, 255L, 256L, 65535L, 65536L, -1L, (long) Integer.MIN_VALUE, 1L << 40, -(1L << 40), Long.MAX_VALUE));
        d.put(new Py.Bytes(new byte[] {0, (byte) 0xFF}), 2.5);
        d.put("t", Py.Tuple.of(true, false, null, Py.Tuple.of(), Py.Tuple.of(1L, 2L, 3L, 4L)));
        List<Object> big = new ArrayList<>();
        for (long i = 0; i < 2500; i++) big.add(i); // more than one APPENDS batch
        d.put("big", big);
        d.put("long bytes", new Py.Bytes(new byte[300]));
        Object back = new PickleReader("rt.pkl", null, null).read(PickleWriter.write(d));
        assertEquals(d.toString(), back.toString());
        assertEquals(d, back);
    }

    @Test
    void truncatedAndGarbageInputFailWithTheOffset() {
        byte[] ok = PickleWriter.write(Map.of("a", "some text here"));
        byte[] cut = java.util.Arrays.copyOf(ok, ok.length - 6);
        IOException e = assertThrows(IOException.class, () -> new PickleReader("cut.pkl", null, null).read(cut));
        assertTrue(e.getMessage().startsWith("cut.pkl: pickle byte ") && e.getMessage().contains("truncated"), e.getMessage());
        byte[] lying = {(byte) 0x80, 2, 'X', (byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 0x7F, 'a'};
        e = assertThrows(IOException.class, () -> new PickleReader("lie.pkl", null, null).read(lying));
        assertTrue(e.getMessage().contains("truncated"), e.getMessage());
        e = assertThrows(IOException.class, () -> new PickleReader("text.pkl", null, null).read("hello".getBytes(StandardCharsets.US_ASCII)));
        assertTrue(e.getMessage().startsWith("text.pkl: pickle byte 0: "), e.getMessage()); // 'h' is BINGET of a key never stored
    }

    @Test
    void aListThatContainsItselfGivesABoundedMessage() {
        // _rebuild_tensor_v2(l) where l = []; l.append(l): EMPTY_LIST DUP APPEND TUPLE1 REDUCE
        byte[] p = {(byte) 0x80, 2, 'c', 't', 'o', 'r', 'c', 'h', '.', '_', 'u', 't', 'i', 'l', 's', '\n', '_', 'r', 'e', 'b', 'u', 'i', 'l', 'd',
                '_', 't', 'e', 'n', 's', 'o', 'r', '_', 'v', '2', '\n', ']', '2', 'a', (byte) 0x85, 'R', '.'};
        IOException e = assertThrows(IOException.class, () -> new PickleReader("loop.pkl", (g, a) -> {
            throw new IOException("malformed " + g + " arguments " + Py.brief(a));
        }, null).read(p));
        assertTrue(e.getMessage().startsWith("loop.pkl: pickle byte ") && e.getMessage().contains("arguments ([[[…]]])"), e.getMessage());
    }

    @Test
    void readsProtocolTwoBytesSpelledWithCodecsEncode() throws IOException {
        // pickle.dumps(b'\x00\xff', protocol=2) == b'\x80\x02c_codecs\nencode\nq\x00X\x03\x00\x00\x00\x00\xc3\xbfq\x01X\x06\x00\x00\x00latin1q\x02\x86q\x03Rq\x04.'
        byte[] p = {(byte) 0x80, 2, 'c', '_', 'c', 'o', 'd', 'e', 'c', 's', '\n', 'e', 'n', 'c', 'o', 'd', 'e', '\n', 'q', 0,
                'X', 3, 0, 0, 0, 0, (byte) 0xc3, (byte) 0xbf, 'q', 1, 'X', 6, 0, 0, 0, 'l', 'a', 't', 'i', 'n', '1', 'q', 2,
                (byte) 0x86, 'q', 3, 'R', 'q', 4, '.'};
        Object o = new PickleReader("p2.pkl", null, null).read(p);
        assertArrayEquals(new byte[] {0, (byte) 0xFF}, ((Py.Bytes) o).value());
    }

}
