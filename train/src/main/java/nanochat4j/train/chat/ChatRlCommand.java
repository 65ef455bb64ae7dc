package nanochat4j.train.chat;

import java.util.concurrent.Callable;
import nanochat4j.model.BaseDir;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;

/** {@code nanochat4j chat-rl}: nanochat's {@code scripts/chat_rl.py}. */
@Command(name = "chat-rl", mixinStandardHelpOptions = true,
        description = "Reinforcement learning of the SFT model on GSM8K (nanochat's chat_rl: sampled completions, reward = correct answer, "
                + "advantage = reward − group mean, token-level policy gradient, no KL).")
public final class ChatRlCommand implements Callable<Integer> {
    @Mixin
    ChatRlOptions options;

    @Override
    public Integer call() throws Exception {
        ChatRl.run(options, BaseDir.get(), System.out);
        return 0;
    }
}
