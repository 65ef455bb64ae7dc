package nanochat4j.train.chat;

import java.util.concurrent.Callable;
import nanochat4j.model.BaseDir;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code nanochat4j chat-sft}: nanochat's {@code scripts/chat_sft.py}. */
@Command(name = "chat-sft", mixinStandardHelpOptions = true,
        description = "Supervised fine-tuning of a base model on conversations (nanochat's chat_sft: assistant-only loss, best-fit packing, ChatCORE).")
public final class ChatSftCommand implements Callable<Integer> {
    @Mixin
    ChatSftOptions options;

    @Override
    public Integer call() throws Exception {
        ChatSft.run(options, BaseDir.get(), System.out);
        return 0;
    }
}
