package nanochat4j.tensor.cuda;

import java.lang.foreign.AddressLayout;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/** Small FFM helpers shared by the bindings. */
final class Ffi {
    static final Linker LINKER = Linker.nativeLinker();
    static final ValueLayout.OfInt I = ValueLayout.JAVA_INT;
    static final ValueLayout.OfLong J = ValueLayout.JAVA_LONG;
    static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    static final AddressLayout P = ValueLayout.ADDRESS;

    private Ffi() {}

    /**
     * Where a binding class gets its downcalls: {@link #of} a loaded library in production; FfiSignaturesTest binds
     * the same classes to a recorder and checks every descriptor against the C prototypes in CUDA's headers.
     */
    @FunctionalInterface
    interface Binder {
        /** A downcall for the first of {@code names} the library has (versioned symbols such as {@code _v2} first). */
        MethodHandle fn(FunctionDescriptor fd, String... names);

        static Binder of(CudaLibraries.Opened lib, String libName) {
            return (fd, names) -> {
                for (String n : names) {
                    var sym = lib.lookup().find(n);
                    if (sym.isPresent()) return LINKER.downcallHandle(sym.get(), fd);
                }
                throw new CudaUnavailableException("CUDA: " + libName + " has no symbol " + String.join(" / ", names)
                        + " (library too old for this build?)");
            };
        }
    }

    /** int f(args…): the CUresult / nvrtcResult / cublasStatus_t convention. */
    static FunctionDescriptor rc(MemoryLayout... args) {
        return FunctionDescriptor.of(I, args);
    }

    /** A NUL-terminated C string at {@code p} (empty for NULL). */
    static String cString(MemorySegment p) {
        if (p == null || p.equals(MemorySegment.NULL)) return "";
        return p.reinterpret(Long.MAX_VALUE).getString(0);
    }
}
