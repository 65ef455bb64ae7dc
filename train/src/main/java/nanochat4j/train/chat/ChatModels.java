package nanochat4j.train.chat;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import nanochat4j.model.checkpoint.ModelSource;

/** Loading a model by source while refusing a checkpoint of the wrong kind (an SFT run's folder read as a base model…). */
public final class ChatModels {
    private ChatModels() {}

    /** The {@code source} entry our chat stages write into their meta files; base checkpoints have none. */
    static String expectedSource(ModelSource src) {
        return switch (src) {
            case BASE -> null;
            case SFT -> ChatSft.SOURCE;
            case RL -> "chat_rl";
        };
    }

    public static ModelSource.Loaded load(ModelSource src, Path base, String tag, Long step) throws IOException {
        ModelSource.Loaded m = src.load(base, tag, step, base.resolve("tokenizer"));
        Object kind = m.meta().extra().get("source");
        String want = expectedSource(src);
        boolean wrong = want == null ? kind != null : (kind != null && !want.equals(kind)) || (src == ModelSource.SFT && kind == null);
        if (wrong) {
            throw new IOException(m.dir() + " step " + m.step() + " is " + (kind == null ? "a base checkpoint" : "a " + kind + " checkpoint")
                    + ", not a " + src.name().toLowerCase(Locale.ROOT) + " one");
        }
        return m;
    }
}
