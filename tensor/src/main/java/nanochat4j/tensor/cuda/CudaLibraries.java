package nanochat4j.tensor.cuda;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Finds and opens the CUDA shared libraries (driver, NVRTC, cuBLAS) without JNI. Order, first hit wins:
 * <ol>
 *   <li>an explicit file: system property {@code nanochat4j.cuda.<key>} (key = driver, nvrtc, cublas);</li>
 *   <li>the dynamic loader's own search (LD_LIBRARY_PATH, the ldconfig cache) by soname;</li>
 *   <li>directories: property {@code nanochat4j.cuda.libdirs} (path-separated), {@code $CUDA_HOME}/lib64,
 *       {@code $CUDA_PATH}/lib64, /usr/local/cuda/lib64, /usr/local/nvidia/lib64, the distribution's lib dirs,
 *       {@code $CONDA_PREFIX}/lib (conda-forge's CUDA packages);</li>
 *   <li>NVIDIA's pip wheels: {@code nvidia/*}{@code /lib} under the site-packages of $VIRTUAL_ENV, $CONDA_PREFIX,
 *       ~/.local, /usr/local, /usr and /opt/conda (where PyTorch's CUDA libraries live).</li>
 * </ol>
 * A library found nowhere gives a one-line {@link CudaUnavailableException} naming what was searched and the
 * property that overrides it.
 */
public final class CudaLibraries {

    /**
     * A library to find: the property key, sonames newest first, what to tell a user who lacks it, and a glob of
     * companion libraries it dlopens by soname at run time (loaded first from the same folder, so the loader finds
     * them already resident when the folder is not on its path).
     */
    public record Spec(String key, List<String> sonames, String what, String companions) {
        public Spec(String key, List<String> sonames, String what) {
            this(key, sonames, what, null);
        }
    }

    /** The major version in a library's file name ({@code …/libcublas.so.13} → 13), or −1 when it has none. */
    static int sonameMajor(String nameOrPath) {
        if (nameOrPath == null) return -1;
        Matcher m = SONAME_MAJOR.matcher(nameOrPath);
        return m.find() ? Integer.parseInt(m.group(1)) : -1;
    }

    private static final Pattern SONAME_MAJOR = Pattern.compile("\\.so\\.(\\d+)");

    /**
     * The major version of the library file at {@code p}: in its name, else in the name of the file it links to (the
     * unversioned {@code libcublas.so} → {@code libcublas.so.13.1.0.3}: 13); −1 when neither name has one.
     */
    static int fileMajor(Path p) {
        int major = sonameMajor(p.getFileName().toString());
        return major >= 0 ? major : sonameMajor(linkedName(p));
    }

    /** The name of the file {@code p} is or links to, null when it cannot be resolved. */
    private static String linkedName(Path p) {
        try {
            return p.toRealPath().getFileName().toString();
        } catch (IOException e) {
            return null;
        }
    }

    public static final Spec DRIVER = new Spec("driver", List.of("libcuda.so.1", "libcuda.so"),
            "the NVIDIA driver library (no NVIDIA driver or GPU on this machine?)");
    public static final Spec NVRTC = new Spec("nvrtc",
            List.of("libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"), "NVRTC, the CUDA runtime compiler (CUDA toolkit or the nvidia-cuda-nvrtc pip wheel)",
            "libnvrtc-builtins.so.[0-9]*");
    public static final Spec CUBLAS = new Spec("cublas",
            List.of("libcublas.so.13", "libcublas.so.12", "libcublas.so"), "cuBLAS (CUDA toolkit or the nvidia-cublas pip wheel)",
            "libcublasLt.so.[0-9]*");

    private CudaLibraries() {}

    /** Opens {@code spec} from the real environment. */
    public static Opened open(Spec spec) {
        return open(spec, System::getenv, System.getProperties()::getProperty, CudaLibraries::dlopen);
    }

    /**
     * Opens {@code spec} for a driver of CUDA {@code cudaVersion} (≤ 0: unknown): first a soname the driver can run,
     * wherever it is, then any. A CUDA 13 cuBLAS fails on a CUDA 12 driver, so where both are installed (a CUDA 13
     * toolkit beside PyTorch's CUDA 12 wheels, say) the .so.12 must win there; with only a newer one the user gets
     * its own error, which {@link Cublas} explains.
     */
    public static Opened open(Spec spec, int cudaVersion) {
        return open(spec, cudaVersion, System::getenv, System.getProperties()::getProperty, CudaLibraries::dlopen);
    }

    static Opened open(Spec spec, int cudaVersion, Function<String, String> env, Function<String, String> props,
                       Function<String, SymbolLookup> opener) {
        if (cudaVersion > 0) {
            try {
                return openUpTo(spec, cudaVersion / 1000, env, props, opener);
            } catch (CudaUnavailableException e) {
                // none the driver runs: any the machine has (the next call says what was searched)
            }
        }
        return open(spec, env, props, opener);
    }

    /** An opened library and the place it came from (for the log). */
    public record Opened(SymbolLookup lookup, String from) {}

    /**
     * Opens {@code spec}, reading the environment and properties through the given functions and opening a candidate
     * (a soname or a file path) with {@code opener}, which returns null when it cannot be opened (tests replace it).
     */
    static Opened open(Spec spec, Function<String, String> env, Function<String, String> props, Function<String, SymbolLookup> opener) {
        return openUpTo(spec, Integer.MAX_VALUE, env, props, opener);
    }

    /**
     * The same, skipping a library whose CUDA major is above {@code maxMajor}: on the loader path a soname that names
     * one (the unversioned one is the loader's to choose), in the directories a file whose name, or for an
     * unversioned name the file it links to, names one (a CUDA toolkit's {@code libcublas.so} links to its .so.13,
     * which a CUDA 12 driver cannot run).
     */
    private static Opened openUpTo(Spec spec, int maxMajor, Function<String, String> env, Function<String, String> props,
                                   Function<String, SymbolLookup> opener) {
        String explicit = props.apply("nanochat4j.cuda." + spec.key());
        if (explicit != null && !explicit.isBlank()) {
            loadCompanions(spec, Path.of(explicit).getParent(), opener);
            SymbolLookup l = opener.apply(explicit);
            if (l == null) {
                throw new CudaUnavailableException("CUDA: cannot open " + spec.sonames().getFirst() + " at -Dnanochat4j.cuda."
                        + spec.key() + "=" + explicit + " (missing file or wrong architecture)");
            }
            return new Opened(l, explicit);
        }
        for (String soname : spec.sonames()) {
            if (sonameMajor(soname) > maxMajor) continue;
            SymbolLookup l = opener.apply(soname);
            if (l != null) return new Opened(l, soname + " (loader path)");
        }
        List<Path> dirs = searchDirs(env, props);
        for (Path dir : dirs) {
            for (String soname : spec.sonames()) {
                Path p = dir.resolve(soname);
                if (Files.isRegularFile(p) || Files.isSymbolicLink(p)) {
                    int major = fileMajor(p);
                    if (major > maxMajor) continue;
                    loadCompanions(spec, dir, opener);
                    SymbolLookup l = opener.apply(p.toString());
                    // an unversioned name says which library it is (Cublas.newerThanDriver reads the major from it)
                    String from = major >= 0 && sonameMajor(soname) < 0 ? p + " -> " + linkedName(p) : p.toString();
                    if (l != null) return new Opened(l, from);
                }
            }
        }
        throw new CudaUnavailableException("CUDA: " + spec.sonames().getFirst() + " not found: " + spec.what()
                + "; searched the loader path, " + (dirs.isEmpty() ? "no directories" : dirs.size() + " directories ($CUDA_HOME, /usr/local/cuda/lib64, pip wheels …)")
                + "; set -Dnanochat4j.cuda." + spec.key() + "=/path/to/" + spec.sonames().getFirst());
    }

    private static void loadCompanions(Spec spec, Path dir, Function<String, SymbolLookup> opener) {
        if (spec.companions() == null || dir == null) return;
        for (Path c : list(dir, spec.companions())) opener.apply(c.toString());
    }

    /** Directories searched after the loader, in order, existing ones only. */
    static List<Path> searchDirs(Function<String, String> env, Function<String, String> props) {
        Set<Path> out = new LinkedHashSet<>();
        String extra = props.apply("nanochat4j.cuda.libdirs");
        if (extra != null) {
            for (String d : extra.split(java.io.File.pathSeparator)) if (!d.isBlank()) out.add(Path.of(d));
        }
        for (String var : List.of("CUDA_HOME", "CUDA_PATH", "CUDA_ROOT")) {
            String v = env.apply(var);
            if (v != null && !v.isBlank()) {
                out.add(Path.of(v, "lib64"));
                out.add(Path.of(v, "lib"));
            }
        }
        for (String d : List.of("/usr/local/cuda/lib64", "/usr/local/nvidia/lib64", "/usr/lib/x86_64-linux-gnu",
                "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib/wsl/lib")) {
            out.add(Path.of(d));
        }
        List<Path> roots = new ArrayList<>();
        for (String var : List.of("VIRTUAL_ENV", "CONDA_PREFIX")) {
            String v = env.apply(var);
            if (v != null && !v.isBlank()) roots.add(Path.of(v));
        }
        // conda-forge's libcublas and cuda-nvrtc packages install into the environment's lib, which its programs
        // reach through their RPATH, not the loader's path
        String conda = env.apply("CONDA_PREFIX");
        if (conda != null && !conda.isBlank()) out.add(Path.of(conda, "lib"));
        String home = props.apply("user.home");
        if (home != null) roots.add(Path.of(home, ".local"));
        roots.add(Path.of("/usr/local"));
        roots.add(Path.of("/usr"));
        roots.add(Path.of("/opt/conda"));
        for (Path root : roots) out.addAll(pipWheelLibDirs(root));
        List<Path> existing = new ArrayList<>();
        for (Path p : out) if (Files.isDirectory(p)) existing.add(p);
        return existing;
    }

    /**
     * {@code <root>/lib/python3*}{@code /(site|dist)-packages/nvidia/*}{@code /lib}, and the same under lib64 (where
     * pip puts platform wheels on Fedora and RHEL). CUDA 13's wheels share one folder, nvidia/cu13/lib; CUDA 12's
     * have one a library, nvidia/cublas/lib: the glob finds both.
     */
    static List<Path> pipWheelLibDirs(Path root) {
        List<Path> out = new ArrayList<>();
        List<Path> pythons = new ArrayList<>(list(root.resolve("lib"), "python3*"));
        pythons.addAll(list(root.resolve("lib64"), "python3*"));
        for (Path py : pythons) {
            for (String pk : List.of("site-packages", "dist-packages")) {
                for (Path pkg : list(py.resolve(pk).resolve("nvidia"), "*")) {
                    Path lib = pkg.resolve("lib");
                    if (Files.isDirectory(lib)) out.add(lib);
                }
            }
        }
        return out;
    }

    private static List<Path> list(Path dir, String glob) {
        List<Path> out = new ArrayList<>();
        if (!Files.isDirectory(dir)) return out;
        try (DirectoryStream<Path> ds = Files.newDirectoryStream(dir, glob)) {
            for (Path p : ds) out.add(p);
        } catch (IOException e) {
            return out; // an unreadable directory is simply not a place the library can be
        }
        out.sort(null);
        return out;
    }

    /** dlopen through FFM; null when the loader cannot open it. */
    private static SymbolLookup dlopen(String nameOrPath) {
        try {
            return SymbolLookup.libraryLookup(nameOrPath, Arena.global());
        } catch (IllegalArgumentException e) {
            return null;
        }
    }
}
