package nanochat4j.train.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import java.util.Map;
import nanochat4j.train.base.BaseTrainOptions;
import nanochat4j.train.chat.ChatRlOptions;
import nanochat4j.train.chat.ChatSftOptions;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** user_config, read from picocli's model of the options, keeps the keys checkpoints have always had (nanochat's names). */
class UserConfigTest {

    @Test
    void baseTrainKeepsItsMetaKeysAndValues() {
        Map<String, Object> m = CommandLine.populateCommand(new BaseTrainOptions(), "--depth=4", "--data=/tmp/text", "--resume-from-step=3",
                "--checkpoint-dir=/tmp/ckpt", "--bundle=/tmp/bundle").userConfig();
        assertEquals(List.of("depth", "aspect_ratio", "head_dim", "max_seq_len", "window_pattern", "num_iterations", "target_flops",
                "target_param_data_ratio", "device_batch_size", "total_batch_size", "embedding_lr", "unembedding_lr", "matrix_lr",
                "scalar_lr", "weight_decay", "warmup_steps", "warmdown_ratio", "final_lr_frac", "resume_from_step", "eval_every",
                "eval_tokens", "core_metric_every", "core_metric_max_per_task", "sample_every", "save_every", "model_tag", "data",
                "strip_gutenberg", "precision", "muon_precision", "bf16_activations", "overlap_reduce", "device_type"), List.copyOf(m.keySet()));
        assertEquals(4, m.get("depth"));
        assertEquals(0.008, m.get("unembedding_lr"));
        assertEquals(41943040L, m.get("eval_tokens"));
        assertEquals(3, m.get("resume_from_step"));
        assertEquals("d4", m.get("model_tag"), "the tag as resolved");
        assertEquals("/tmp/text", m.get("data"), "paths as strings");
        assertEquals(true, m.get("strip_gutenberg"));
        assertEquals(true, m.get("bf16_activations"));
        assertEquals("auto", m.get("muon_precision"));
        assertEquals("cpu", m.get("device_type"), "--device under nanochat's name");
    }

    @Test
    void chatSftAndChatRlKeepTheirMetaKeys() {
        Map<String, Object> sft = CommandLine.populateCommand(new ChatSftOptions(), "--model-tag=d2", "--task-data=/tmp/tasks").userConfig();
        assertEquals(List.of("model_tag", "model_step", "load_optimizer", "num_iterations", "max_seq_len", "device_batch_size",
                "total_batch_size", "embedding_lr", "unembedding_lr", "matrix_lr", "scalar_lr", "init_lr_frac", "warmup_ratio",
                "warmdown_ratio", "final_lr_frac", "eval_every", "eval_tokens", "chatcore_every", "chatcore_max_cat", "chatcore_max_sample",
                "mmlu_epochs", "gsm8k_epochs", "task_data", "conversations", "max_conversations", "extra_conversations", "extra_epochs",
                "save_every", "precision", "bf16_activations", "device_type"), List.copyOf(sft.keySet()));
        assertEquals("cpu", sft.get("device_type"), "--device under nanochat's name");
        assertEquals("d2", sft.get("model_tag"));
        assertNull(sft.get("model_step"));
        assertNull(sft.get("embedding_lr"), "inherited from the base run when not given");
        assertEquals("/tmp/tasks", sft.get("task_data"));

        Map<String, Object> rl = CommandLine.populateCommand(new ChatRlOptions(), "--num-steps=5").userConfig();
        assertEquals(List.of("model_tag", "model_step", "num_epochs", "device_batch_size", "examples_per_step", "num_samples",
                "max_new_tokens", "temperature", "top_k", "embedding_lr", "unembedding_lr", "matrix_lr", "weight_decay", "init_lr_frac",
                "eval_every", "eval_examples", "save_every", "num_steps", "seed", "task_data", "precision", "bf16_activations", "device_type"),
                List.copyOf(rl.keySet()));
        assertEquals("cpu", rl.get("device_type"), "--device under nanochat's name");
        assertEquals("bf16", rl.get("precision"));
        assertEquals(true, rl.get("bf16_activations"));
        assertEquals(5, rl.get("num_steps"));
        assertEquals(0.2, rl.get("embedding_lr"));
    }
}
