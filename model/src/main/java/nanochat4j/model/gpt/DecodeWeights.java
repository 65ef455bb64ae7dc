package nanochat4j.model.gpt;

import java.util.Locale;

/**
 * Which copy of the weight matrices the KV-cache decode step streams ({@link GPT#decodeWeights(DecodeWeights)}):
 * <ul>
 *   <li>{@code FP32}: the parameters themselves — exact parity with the full forward (nanochat on CPU computes in
 *       fp32);</li>
 *   <li>{@code BF16}: a copy rounded to bf16 (nearest even), half the bytes per token for a decode that is bound by
 *       reading them; activations, the KV cache and the accumulation stay fp32.</li>
 * </ul>
 * Named in lower case ({@code fp32}, {@code bf16}) as the CLI's {@code --weights} takes and the bench reports them.
 */
public enum DecodeWeights {
    FP32, BF16;

    @Override
    public String toString() {
        return name().toLowerCase(Locale.ROOT);
    }
}
