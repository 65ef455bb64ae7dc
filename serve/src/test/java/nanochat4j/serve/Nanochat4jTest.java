package nanochat4j.serve;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

class Nanochat4jTest {

    private static String run(String... args) {
        CommandLine cl = Nanochat4j.commandLine();
        StringWriter out = new StringWriter();
        cl.setOut(new PrintWriter(out));
        int code = cl.execute(args);
        assertEquals(0, code, "exit code of nanochat4j " + String.join(" ", args));
        return out.toString();
    }

    @Test
    void helpListsEverySubcommandWithADescription() {
        String help = run("--help");
        assertTrue(help.contains("Usage: nanochat4j"), help);
        CommandLine cl = Nanochat4j.commandLine();
        for (var e : cl.getSubcommands().entrySet()) {
            assertTrue(help.contains(e.getKey()), "help mentions " + e.getKey());
            String[] desc = e.getValue().getCommandSpec().usageMessage().description();
            assertTrue(desc.length > 0 && !desc[0].isBlank(), "sub-command " + e.getKey() + " has a one-line description");
        }
    }

    /** picocli formats option descriptions with String.format: a stray '%' makes --help print a warning and the raw text. */
    @Test
    void everyCommandsHelpRendersWithoutAPicocliWarning() {
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        java.io.PrintStream old = System.err;
        System.setErr(new java.io.PrintStream(err, true, java.nio.charset.StandardCharsets.UTF_8));
        int rendered = 0;
        try {
            java.util.ArrayDeque<CommandLine> todo = new java.util.ArrayDeque<>(java.util.List.of(Nanochat4j.commandLine()));
            while (!todo.isEmpty()) {
                CommandLine c = todo.pop();
                todo.addAll(c.getSubcommands().values());
                c.getUsageMessage(CommandLine.Help.Ansi.OFF);
                rendered++;
            }
        } finally {
            System.setErr(old);
        }
        String warnings = err.toString(java.nio.charset.StandardCharsets.UTF_8);
        assertTrue(!warnings.contains("picocli WARN"), warnings);
        assertTrue(rendered > 15, "commands rendered: " + rendered);
    }

    /** No usable GPU and a GPU out of memory are a user's to act on: one line and exit 1; another CUDA error is a bug. */
    @Test
    void cudaFailuresAUserCanActOnAreOneLine() {
        CommandLine cl = Nanochat4j.commandLine();
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        assertEquals(1, Nanochat4j.reportFailure(new nanochat4j.tensor.cuda.CudaUnavailableException("CUDA: libcuda.so.1 not found"), cl, null));
        assertEquals(1, Nanochat4j.reportFailure(new nanochat4j.tensor.cuda.CudaOutOfMemoryException(1L << 30, 1L << 20, 80L << 30), cl, null));
        String lines = err.toString();
        assertEquals(2, lines.strip().lines().count(), lines);
        assertTrue(lines.contains("nanochat4j: CUDA: libcuda.so.1 not found") && lines.contains("CUDA out of memory: asked for 1.00 GiB"), lines);
        StringWriter bug = new StringWriter();
        cl.setErr(new PrintWriter(bug, true));
        assertEquals(2, Nanochat4j.reportFailure(new nanochat4j.tensor.cuda.CudaException("cuLaunchKernel(attn_fwd): CUDA_ERROR_ILLEGAL_ADDRESS", 700), cl, null));
        assertTrue(bug.toString().contains("\tat "), "a stack trace: " + bug);
    }

    @Test
    void versionNamesTheProjectAndTheJavaRuntime() {
        String v = run("--version");
        assertTrue(v.startsWith("nanochat4j "), v);
        assertTrue(v.contains("Java " + Runtime.version().feature()), v);
    }
}
