package nanochat4j.serve.interop;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;
import nanochat4j.model.BaseDir;
import nanochat4j.model.checkpoint.ModelSource;
import nanochat4j.model.checkpoint.Safetensors;
import nanochat4j.model.interop.NanochatExport;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

/** {@code nanochat4j export --format nanochat|safetensors-hf DIR}: write one of our checkpoints for Python tools. */
@Command(name = "export", mixinStandardHelpOptions = true,
        description = {"Export a checkpoint and its tokenizer: --format nanochat writes a nanochat base dir (model_<step>.pt, "
                + "meta_<step>.json, tokenizer.pkl, token_bytes.pt) that nanochat's own code loads; --format safetensors-hf writes "
                + "model.safetensors + config.json + tokenizer.tiktoken."})
public final class ExportCommand implements Callable<Integer> {

    /** The two output layouts. */
    enum Format {
        NANOCHAT, SAFETENSORS_HF;

        @Override
        public String toString() { return name().toLowerCase(Locale.ROOT).replace('_', '-'); }
    }

    @Parameters(index = "0", paramLabel = "DIR", description = "Where to write (created if missing).")
    Path out;

    @Option(names = "--format", required = true, converter = FormatConverter.class, description = "nanochat or safetensors-hf.")
    Format format;

    @Option(names = {"-i", "--source"}, defaultValue = "base", description = "Checkpoint source: base, sft or rl (default: ${DEFAULT-VALUE}).")
    String source;

    @Option(names = {"-g", "--model-tag"}, description = "Model tag (default: the largest d<N>).")
    String tag;

    @Option(names = {"-s", "--step"}, description = "Checkpoint step (default: the latest).")
    Long step;

    @Option(names = "--dtype", description = "fp32 or bf16 (default: as stored).")
    String dtype;

    @Option(names = "--base-dir", description = "Our base dir (default: $NANOCHAT_BASE_DIR or ~/.cache/nanochat4j).")
    Path baseDir;

    static final class FormatConverter implements picocli.CommandLine.ITypeConverter<Format> {
        @Override
        public Format convert(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "nanochat" -> Format.NANOCHAT;
                case "safetensors-hf", "hf" -> Format.SAFETENSORS_HF;
                default -> throw new IllegalArgumentException("unknown --format '" + s + "' (use nanochat or safetensors-hf)");
            };
        }
    }

    @Override
    public Integer call() throws IOException {
        Path base = baseDir != null ? baseDir : BaseDir.get();
        Safetensors.DType dt = dtype == null ? null : switch (dtype.toLowerCase(Locale.ROOT)) {
            case "fp32", "f32", "float32" -> Safetensors.DType.F32;
            case "bf16", "bfloat16" -> Safetensors.DType.BF16;
            default -> throw new IllegalArgumentException("unknown --dtype '" + dtype + "' (use fp32 or bf16)");
        };
        NanochatExport.Options o = new NanochatExport.Options(ModelSource.parse(source), tag, step, dt);
        Path written = format == Format.NANOCHAT ? NanochatExport.toNanochat(base, o, out) : NanochatExport.toHuggingFace(base, o, out);
        System.out.println("wrote " + written + (format == Format.NANOCHAT ? " (and tokenizer/ beside; point NANOCHAT_BASE_DIR at " + out + ")" : " + config.json + tokenizer.tiktoken"));
        return 0;
    }
}
