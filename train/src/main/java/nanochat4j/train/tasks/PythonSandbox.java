package nanochat4j.train.tasks;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs untrusted model-written Python (HumanEval) as nanochat's execution.py does, in a separate {@code python3}
 * process, with more fences than nanochat has, since model code may do anything:
 * <ul>
 *   <li>a fresh temporary working directory (deleted afterwards), an empty environment ({@code PATH=/usr/bin:/bin},
 *       {@code HOME} = the sandbox), stdin from /dev/null, {@code python3 -I -B} (no user site, no env vars, no .pyc);</li>
 *   <li>a guard prelude before the code: rlimits on address space and data (memory), CPU seconds, file size, open
 *       files, processes and core dumps; nanochat's nulled builtins and os/shutil/subprocess functions; and an audit
 *       hook (which Python code cannot remove) that refuses process creation (fork, exec, spawn, system, Popen),
 *       signals, sockets, ctypes and changing the limits, and any file write, delete, rename or mkdir outside the
 *       sandbox directory;</li>
 *   <li>the process leads its own process group, and the whole group is killed when the run ends or the wall-clock
 *       timeout passes, so nothing it started outlives it; stdout/stderr go to files capped by the file-size limit
 *       and are read back truncated.</li>
 * </ul>
 * This is defence in depth for a benchmark, not a security boundary against a determined attacker.
 */
public final class PythonSandbox {
    /** Limits of one run. */
    public record Limits(double timeoutSeconds, long maxMemoryBytes, int maxOutputBytes) {
        public static final Limits DEFAULT = new Limits(5.0, 256L << 20, 64 << 10);
    }

    /** What a run did: exit 0 is success; {@code error} is the last stderr line (or why it was stopped). */
    public record Result(boolean success, String stdout, String stderr, String error, boolean timedOut, boolean memoryExceeded) {}

    private final String python;
    private final Limits limits;

    private PythonSandbox(String python, Limits limits) {
        this.python = python;
        this.limits = limits;
    }

    /** The sandbox with the interpreter {@code python3} (or {@code $NANOCHAT4J_PYTHON}) resolves to, or null when none runs. */
    public static PythonSandbox find(Limits limits) {
        return find(System.getenv().getOrDefault("NANOCHAT4J_PYTHON", "python3"), limits);
    }

    /** The sandbox for interpreter {@code exe} (a name on the PATH or a path), or null when it does not run Python 3.8+. */
    public static PythonSandbox find(String exe, Limits limits) {
        try {
            // Ask the interpreter for its real path: a launcher shim (pyenv) needs an environment the sandbox will not give.
            Process p = new ProcessBuilder(exe, "-c", "import sys; assert sys.version_info >= (3, 8); print(sys.executable)")
                    .redirectErrorStream(true).redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            if (!p.waitFor(30, TimeUnit.SECONDS) || p.exitValue() != 0 || out.isEmpty()) return null;
            return new PythonSandbox(out.lines().reduce((a, b) -> b).orElseThrow(), limits);
        } catch (IOException e) {
            return null;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        }
    }

    /** Why {@link #find} found nothing, for the "skipped" line. */
    public static String missingReason() {
        return "no Python 3.8+ interpreter: " + System.getenv().getOrDefault("NANOCHAT4J_PYTHON", "python3")
                + " is not on the PATH (set NANOCHAT4J_PYTHON to one)";
    }

    public String python() {
        return python;
    }

    public Result run(String program) {
        Path dir = null;
        try {
            dir = Files.createTempDirectory("nanochat4j-sandbox-");
            Path guard = dir.resolve("guard.py"), code = dir.resolve("program.py");
            Files.writeString(guard, GUARD, StandardCharsets.UTF_8);
            Files.writeString(code, program, StandardCharsets.UTF_8);
            Path out = dir.resolve("stdout.txt"), err = dir.resolve("stderr.txt");
            ProcessBuilder pb = new ProcessBuilder(python, "-I", "-B", guard.toString(), code.toString(), dir.toRealPath().toString(),
                    Long.toString(limits.maxMemoryBytes()), Long.toString((long) Math.ceil(limits.timeoutSeconds()) + 1),
                    Integer.toString(limits.maxOutputBytes()))
                    .directory(dir.toFile())
                    .redirectInput(ProcessBuilder.Redirect.from(new File("/dev/null")))
                    .redirectOutput(out.toFile()).redirectError(err.toFile());
            Map<String, String> env = pb.environment();
            env.clear();
            env.put("PATH", "/usr/bin:/bin");
            env.put("HOME", dir.toString());
            env.put("TMPDIR", dir.toString());
            env.put("OMP_NUM_THREADS", "1");
            Process p = pb.start();
            boolean finished;
            try {
                finished = p.waitFor((long) (limits.timeoutSeconds() * 1000), TimeUnit.MILLISECONDS);
            } finally {
                killGroup(p);
            }
            String stdout = read(out), stderr = read(err);
            if (!finished) return new Result(false, stdout, stderr, "Execution timed out (process killed)", true, false);
            boolean ok = p.exitValue() == 0;
            String error = ok ? null : stderr.isBlank() ? "Execution failed (exit " + p.exitValue() + ")" : lastLine(stderr);
            return new Result(ok, stdout, stderr, error, false, stderr.contains("MemoryError"));
        } catch (IOException e) {
            return new Result(false, "", "", "sandbox failure: " + e.getMessage(), false, false);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return new Result(false, "", "", "interrupted", false, false);
        } finally {
            if (dir != null) deleteTree(dir);
        }
    }

    /** SIGKILL to the process group the guard made (its pid), then to any descendant still known, then the process. */
    private static void killGroup(Process p) throws InterruptedException {
        long pid = p.pid();
        try {
            Process k = new ProcessBuilder("/bin/kill", "-KILL", "--", "-" + pid).redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            k.waitFor(5, TimeUnit.SECONDS);
        } catch (IOException e) {
            // no kill(1): fall back to what the JVM can see
        }
        List<ProcessHandle> kids = p.descendants().toList();
        for (ProcessHandle h : kids) h.destroyForcibly();
        p.destroyForcibly();
        p.waitFor(5, TimeUnit.SECONDS);
    }

    private String read(Path f) throws IOException {
        if (!Files.exists(f)) return "";
        try (InputStream in = Files.newInputStream(f)) {
            byte[] b = in.readNBytes(limits.maxOutputBytes());
            String s = new String(b, StandardCharsets.UTF_8);
            return in.read() >= 0 ? s + "\n[output truncated]" : s;
        }
    }

    private static String lastLine(String s) {
        String[] lines = s.strip().split("\n");
        return lines[lines.length - 1];
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp dir that cannot be listed any more is left to the OS
        }
    }

    /** The guard prelude: argv = program, sandbox dir, memory bytes, CPU seconds, output bytes. */
    static final String GUARD = """
            import os, sys
            os.setpgrp()  # its own process group, so the parent can kill everything it may start
            import builtins, faulthandler, resource, shutil, subprocess
            program_path, sandbox, max_memory, cpu_seconds, max_output = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
            with open(program_path, encoding="utf-8") as f:
                source = f.read()
            def limit(which, value):
                try:
                    resource.setrlimit(which, (value, value))
                except (ValueError, OSError):
                    pass
            if sys.platform != "darwin":
                limit(resource.RLIMIT_AS, max_memory)
                limit(resource.RLIMIT_DATA, max_memory)
            limit(resource.RLIMIT_CPU, cpu_seconds)
            limit(resource.RLIMIT_FSIZE, max(max_output * 4, 1 << 20))
            limit(resource.RLIMIT_NOFILE, 64)
            limit(resource.RLIMIT_NPROC, 32)
            limit(resource.RLIMIT_CORE, 0)
            faulthandler.disable()
            sandbox = os.path.realpath(sandbox)
            cwd = os.getcwd()  # the sandbox; os.getcwd is nulled below and chdir is refused
            WRITE = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
            DENY = {"os.fork", "os.forkpty", "os.exec", "os.spawn", "os.posix_spawn", "os.system", "os.kill", "os.killpg",
                    "subprocess.Popen", "pty.spawn", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo",
                    "resource.setrlimit", "resource.prlimit", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "sys.setprofile",
                    "sys.settrace", "os.chdir", "os.setuid", "os.setgid", "os.chroot", "os.putenv", "os.unsetenv"}
            PATHS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.chmod", "os.chown",
                     "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}
            BLOCKED_MODULES = {"ctypes", "_ctypes", "_posixsubprocess", "multiprocessing", "ipdb", "joblib", "psutil", "tkinter"}
            def inside(path):
                if isinstance(path, int):
                    return True
                p = os.fsdecode(path)
                p = os.path.realpath(p if os.path.isabs(p) else os.path.join(cwd, p))
                return p == sandbox or p.startswith(sandbox + os.sep)
            def audit(event, args):
                if event in DENY:
                    raise PermissionError("sandbox: " + event + " is not allowed")
                if event == "open" and args[0] is not None and (args[2] or 0) & WRITE and not inside(args[0]):
                    raise PermissionError("sandbox: writing " + os.fsdecode(args[0]) + " outside the sandbox is not allowed")
                if event in PATHS:
                    for a in args[:2]:
                        if isinstance(a, (str, bytes, os.PathLike)) and not inside(a):
                            raise PermissionError("sandbox: " + event + " outside the sandbox is not allowed")
                if event == "import" and args[0].split(".")[0] in BLOCKED_MODULES:
                    raise ImportError("sandbox: module " + args[0] + " is not allowed")
            sys.addaudithook(audit)
            builtins.exit = None
            builtins.quit = None
            builtins.help = None
            for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty",
                         "killpg", "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown",
                         "chroot", "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
                if hasattr(os, name):
                    setattr(os, name, None)
            shutil.rmtree = None
            shutil.move = None
            shutil.chown = None
            subprocess.Popen = None
            for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
                sys.modules[name] = None
            del f, limit, program_path, max_memory, cpu_seconds, max_output
            exec(compile(source, "program.py", "exec"), {"__name__": "__main__"})
            """;
}
