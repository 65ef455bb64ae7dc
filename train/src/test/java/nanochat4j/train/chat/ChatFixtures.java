package nanochat4j.train.chat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import nanochat4j.model.checkpoint.Checkpoint;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.gpt.GPT;
import nanochat4j.model.gpt.GPTConfig;
import nanochat4j.model.tokenizer.Tokenizer;
import nanochat4j.train.tasks.ConversationFile;
import nanochat4j.train.tasks.JsonLines;

/** A base dir with a small tokenizer and a depth-2 base checkpoint, for the chat stages' tests. */
final class ChatFixtures {
    private ChatFixtures() {}

    /** A BPE trained on the alpaca answers (vocab 512, byte fallback for the rest), saved to {@code base/tokenizer}. */
    static Tokenizer tokenizer(Path base, Path data) throws IOException {
        ConversationFile alpaca = new ConversationFile(data.resolve("sft/alpaca_5000/alpaca_5000.json"), JsonLines.OnBadLine.STOP, new ArrayList<>());
        List<String> docs = new ArrayList<>();
        for (int i = 0; i < 400; i++) docs.add(alpaca.get(i).conversation().messages().get(1).text());
        Tokenizer tok = Tokenizer.train(docs, 512);
        tok.save(base.resolve("tokenizer"));
        return tok;
    }

    /** A random-init depth-2 model saved as base_checkpoints/d2 step 0, with the base run's batch in its meta. */
    static GPT baseModel(Path base, Tokenizer tok, int seq, int batch, long total) throws IOException {
        GPTConfig cfg = GPTConfig.fromDepth(2, 32, 32, seq, "L", tok.vocabSize());
        GPT model = GPT.create(cfg, 7);
        Path dir = base.resolve("base_checkpoints/d2");
        Files.createDirectories(dir);
        Checkpoint.save(dir, model, new Checkpoint.Meta(cfg, 0, "test", Map.of(), Map.of("max_seq_len", seq, "device_batch_size", batch,
                "total_batch_size", total, "user_config", Map.of("embedding_lr", 0.3, "unembedding_lr", 0.004, "matrix_lr", 0.02))),
                Safetensors.DType.F32);
        return model;
    }
}
