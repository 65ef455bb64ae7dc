package nanochat4j.serve.interop;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.interop.NanochatCheckpoint;
import nanochat4j.model.interop.NanochatTokenizer;
import nanochat4j.model.tokenizer.Pretokenizer;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.serve.Nanochat4j;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

class ImportExportCommandTest {

    record Result(int code, String err) {}

    static Result run(String... args) {
        CommandLine cl = Nanochat4j.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err));
        return new Result(cl.execute(args), err.toString());
    }

    static void nanochatDir(Path dir) throws IOException {
        Tokenizer tok = Tokenizer.fromMerges(new int[][] {{'t', 'h'}, {256, 'e'}}, Pretokenizer.NANOCHAT_PATTERN);
        GPTConfig c = new GPTConfig(32, tok.vocabSize(), 1, 2, 2, 32, "L");
        NanochatTokenizer.write(tok, dir.resolve("tokenizer"));
        NanochatCheckpoint.write(dir.resolve("chatsft_checkpoints/d1"), new Checkpoint.Meta(c, 3, null, null, null),
                GPT.create(c, 5).stateDict(), Safetensors.DType.F32);
    }

    @Test
    void importThenExportBothFormats(@TempDir Path tmp) throws IOException {
        nanochatDir(tmp.resolve("nano"));
        Path base = tmp.resolve("ours");
        assertEquals(0, run("import-nanochat", tmp.resolve("nano").toString(), "--into", "mine", "--base-dir", base.toString()).code());
        assertTrue(Files.isRegularFile(base.resolve("chatsft_checkpoints/mine/model_000003.safetensors")));
        assertTrue(Files.isRegularFile(base.resolve("tokenizer/tokenizer.bpe")));
        Result again = run("import-nanochat", tmp.resolve("nano").toString(), "--into", "mine", "--base-dir", base.toString());
        assertEquals(1, again.code());
        assertTrue(again.err().contains("already exists") && again.err().contains("--force"), again.err());

        assertEquals(0, run("export", "--format", "nanochat", "-i", "sft", tmp.resolve("out").toString(), "--base-dir", base.toString()).code());
        assertTrue(Files.isRegularFile(tmp.resolve("out/chatsft_checkpoints/mine/model_000003.pt")));
        assertTrue(Files.isRegularFile(tmp.resolve("out/tokenizer/tokenizer.pkl")));
        assertEquals(0, run("export", "--format", "safetensors-hf", "-i", "sft", "--dtype", "bf16", tmp.resolve("hf").toString(),
                "--base-dir", base.toString()).code());
        assertEquals(Safetensors.DType.BF16, Safetensors.read(tmp.resolve("hf/model.safetensors")).tensors().get("lm_head.weight").dtype());
        // straight from a nanochat base dir to the HF layout, no import step
        assertEquals(0, run("export", "--format", "safetensors-hf", "-i", "sft", tmp.resolve("hf2").toString(),
                "--base-dir", tmp.resolve("nano").toString()).code());
        assertEquals(Safetensors.read(tmp.resolve("hf2/model.safetensors")).tensors().get("lm_head.weight").values().length,
                Safetensors.read(tmp.resolve("hf/model.safetensors")).tensors().get("lm_head.weight").values().length);
        Result bad = run("export", "--format", "onnx", tmp.resolve("x").toString(), "--base-dir", base.toString());
        assertTrue(bad.code() != 0 && bad.err().contains("onnx"), bad.err());
    }

    @Test
    void aMaliciousTokenizerFailsWithOneLineNamingTheFile(@TempDir Path tmp) throws IOException {
        nanochatDir(tmp.resolve("nano"));
        Path marker = tmp.resolve("pwned");
        String cmd = "touch " + marker;
        byte[] c = cmd.getBytes();
        java.io.ByteArrayOutputStream b = new java.io.ByteArrayOutputStream();
        b.writeBytes(new byte[] {(byte) 0x80, 2});
        b.writeBytes("cposix\nsystem\n".getBytes());
        b.write('X');
        for (int s = 0; s < 32; s += 8) b.write(c.length >>> s);
        b.writeBytes(c);
        b.writeBytes(new byte[] {(byte) 0x85, 'R', '.'});
        Files.write(tmp.resolve("nano/tokenizer/tokenizer.pkl"), b.toByteArray());
        Result r = run("import-nanochat", tmp.resolve("nano").toString(), "--base-dir", tmp.resolve("ours").toString());
        assertEquals(1, r.code());
        assertTrue(r.err().startsWith("nanochat4j import-nanochat: ") && r.err().contains("tokenizer.pkl")
                && r.err().contains("refused to load posix.system"), r.err());
        assertTrue(!Files.exists(marker) && !Files.exists(tmp.resolve("ours")));
    }
}
