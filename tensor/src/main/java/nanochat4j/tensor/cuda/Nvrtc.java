package nanochat4j.tensor.cuda;

import static nanochat4j.tensor.cuda.Ffi.I;
import static nanochat4j.tensor.cuda.Ffi.J;
import static nanochat4j.tensor.cuda.Ffi.P;
import static nanochat4j.tensor.cuda.Ffi.rc;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.List;

/**
 * NVRTC, CUDA's runtime compiler, through FFM: CUDA C source + options → PTX (or a cubin for one architecture).
 * A compile error throws a {@link CudaException} carrying the program name, the options and NVRTC's full log.
 */
public final class Nvrtc {
    private static final String LIB = "libnvrtc";
    private final String from;
    private final MethodHandle create, compile, logSize, log, ptxSize, ptx, cubinSize, cubin, destroy, errorString, version;

    Nvrtc(Ffi.Binder lib, String from) {
        this.from = from;
        create = lib.fn(rc(P, P, P, I, P, P), "nvrtcCreateProgram");
        compile = lib.fn(rc(P, I, P), "nvrtcCompileProgram");
        logSize = lib.fn(rc(P, P), "nvrtcGetProgramLogSize");
        log = lib.fn(rc(P, P), "nvrtcGetProgramLog");
        ptxSize = lib.fn(rc(P, P), "nvrtcGetPTXSize");
        ptx = lib.fn(rc(P, P), "nvrtcGetPTX");
        cubinSize = lib.fn(rc(P, P), "nvrtcGetCUBINSize");
        cubin = lib.fn(rc(P, P), "nvrtcGetCUBIN");
        destroy = lib.fn(rc(P), "nvrtcDestroyProgram");
        errorString = lib.fn(FunctionDescriptor.of(P, I), "nvrtcGetErrorString");
        version = lib.fn(rc(P, P), "nvrtcVersion");
    }

    public static Nvrtc load() {
        CudaLibraries.Opened lib = CudaLibraries.open(CudaLibraries.NVRTC);
        return new Nvrtc(Ffi.Binder.of(lib, LIB), lib.from());
    }

    public String from() {
        return from;
    }

    /** "major.minor" of this NVRTC. */
    public String version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ma = a.allocate(I), mi = a.allocate(I);
            check("nvrtcVersion", (int) version.invokeExact(ma, mi));
            return ma.get(I, 0) + "." + mi.get(I, 0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Compiles {@code source} with {@code options} (e.g. {@code --gpu-architecture=compute_90a}, {@code -DTILE=64}).
     * With a virtual architecture ({@code compute_XX}) the result is PTX text (NUL-terminated); with a real one
     * ({@code sm_XX}) and {@code cubin} true it is the cubin.
     */
    public byte[] compile(String name, String source, List<String> options, boolean wantCubin) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment progP = a.allocate(P);
            check("nvrtcCreateProgram(" + name + ")", (int) create.invokeExact(progP, a.allocateFrom(source), a.allocateFrom(name),
                    0, MemorySegment.NULL, MemorySegment.NULL));
            MemorySegment prog = progP.get(P, 0);
            try {
                MemorySegment opts = a.allocate(P, Math.max(1, options.size()));
                for (int i = 0; i < options.size(); i++) opts.setAtIndex(P, i, a.allocateFrom(options.get(i)));
                int r = (int) compile.invokeExact(prog, options.size(), opts);
                if (r != 0) {
                    throw new CudaException("NVRTC could not compile " + name + " (" + message(r) + ") with options " + options
                            + ":\n" + programLog(a, prog), r);
                }
                MemorySegment size = a.allocate(J);
                if (wantCubin) {
                    check("nvrtcGetCUBINSize", (int) cubinSize.invokeExact(prog, size));
                } else {
                    check("nvrtcGetPTXSize", (int) ptxSize.invokeExact(prog, size));
                }
                MemorySegment out = a.allocate(Math.max(1, size.get(J, 0)));
                if (wantCubin) {
                    check("nvrtcGetCUBIN", (int) cubin.invokeExact(prog, out));
                } else {
                    check("nvrtcGetPTX", (int) ptx.invokeExact(prog, out));
                }
                return out.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            } finally {
                int ignored = (int) destroy.invokeExact(progP);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    private String programLog(Arena a, MemorySegment prog) throws Throwable {
        MemorySegment size = a.allocate(J);
        if ((int) logSize.invokeExact(prog, size) != 0) return "(no log)";
        MemorySegment buf = a.allocate(Math.max(1, size.get(J, 0)));
        if ((int) log.invokeExact(prog, buf) != 0) return "(no log)";
        return buf.getString(0);
    }

    private String message(int r) {
        try {
            return Ffi.cString((MemorySegment) errorString.invokeExact(r));
        } catch (Throwable t) {
            return "nvrtcResult " + r;
        }
    }

    private void check(String call, int r) {
        if (r != 0) throw new CudaException(call + " failed: " + message(r), r);
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }
}
