#!/usr/bin/env bash
# The CUDA checks that need no GPU, with everything they need: NVRTC compiles every kernel source as the backend
# will at run time (NvrtcCompileTest), every FFM descriptor matches its prototype in cuda.h / nvrtc.h /
# cublas_api.h (FfiSignaturesTest), nvcc compiles every kernel without spills (KernelCompileTest, where nvcc is on
# the PATH). README's test command runs the same tests but skips what it cannot find; this script fetches NVIDIA's
# wheels with pip (NVRTC, cuBLAS and the runtime's headers: about 520 MB, once, into $NANOCHAT4J_CUDA_CACHE or
# ~/.cache/nanochat4j/cuda) and points the tests at their libnvrtc and headers. No GPU, driver or CUDA toolkit is
# needed (nvcc is optional).
#
#   scripts/cuda-host-checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/jdk.sh
nanochat4j_find_jdk

cache="${NANOCHAT4J_CUDA_CACHE:-$HOME/.cache/nanochat4j/cuda}"
mkdir -p "$cache/wheels" "$cache/include" "$cache/lib"
pip=$(command -v pip3 || command -v pip || true)
[ -n "$pip" ] || { echo "cuda-host-checks: pip not found (apt-get install python3-pip)" >&2; exit 2; }

# fetch WHEEL GLOB...: download the newest wheel once; unpack the files it has under nvidia/<pkg>/include and
# nvidia/<pkg>/lib that match a glob into $cache/include and $cache/lib (each through a temp file and a rename).
fetch() {
  local name=$1 whl
  shift
  whl=$(ls "$cache/wheels/${name//-/_}"-*.whl 2> /dev/null | tail -1 || true)
  if [ -z "$whl" ]; then
    echo "cuda-host-checks: downloading $name ..." >&2
    "$pip" download --no-deps --only-binary=:all: --dest "$cache/wheels" "$name" >&2
    whl=$(ls "$cache/wheels/${name//-/_}"-*.whl | tail -1)
  fi
  python3 -c '
import fnmatch, os, sys, zipfile
whl, cache, globs = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        parts = n.split("/")
        if len(parts) < 4 or parts[2] not in ("include", "lib") or n.endswith("/"):
            continue
        if not any(fnmatch.fnmatch(n, g) for g in globs):
            continue
        out = os.path.join(cache, *parts[2:])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.replace(out + ".tmp", out)
' "$whl" "$cache" "$@"
}

# cuda.h and the runtime headers cublas_api.h includes (driver_types.h; cuda_fp16.h needs crt/ and CCCL's nv/target)
fetch nvidia-cuda-runtime 'nvidia/*/include/*'
fetch nvidia-cuda-crt 'nvidia/*/include/*'
fetch nvidia-cuda-cccl 'nvidia/*/include/*'
fetch nvidia-cuda-nvrtc 'nvidia/*/lib/libnvrtc*.so*' 'nvidia/*/include/nvrtc.h'
fetch nvidia-cublas 'nvidia/*/include/cublas_api.h' 'nvidia/*/include/cublas_v2.h'

./mvnw -B -ntp -pl tensor -am test -Dtest='NvrtcCompileTest,FfiSignaturesTest,KernelCompileTest' \
  -Dsurefire.failIfNoSpecifiedTests=false \
  "-Dtest.jvm.extra=-Dnanochat4j.cuda.libdirs=$cache/lib -Dnanochat4j.cuda.include=$cache/include"
