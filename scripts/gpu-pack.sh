#!/usr/bin/env bash
# Builds the folder carried to a GPU machine that has neither Java nor network (see README "Running on a GPU"):
#   runtime.tar.xz   a jlinked JDK 25 (java.base, jdk.incubator.vector, jdk.unsupported, java.management,
#                    java.logging and java.xml for JUnit, java.net.http for the commands that download,
#                    jdk.httpserver for the test classes that serve a download locally,
#                    java.desktop for base-train's chart, jdk.management + jdk.jfr for the C2 inline directive), xz
#   nanochat4j.jar   the shaded jar (every command, the CUDA backend, its kernel sources)
#   tensor-tests.jar the tensor module's test classes (the backend conformance suite)
#   model-tests.jar  the model module's test classes (GPTCudaTest: the KV-cache forward on the GPU against the CPU model)
#   train-tests.jar  the train module's test classes (GPU training step == CPU, exact resume on the GPU)
#   junit-console.jar JUnit's standalone console launcher (runs the suite without Maven)
#   gpu-check.sh     what to run there
#   shared/fixtures/nanochat-tiny/ops.*  the PyTorch op fixtures (from ../shared)
#   data.tgz         ~16 MB of Gutenberg text (../shared/data/pretrain_text, the largest books) for the d12 base-train
#   nanochat_src/    real nanochat (../shared/tools/reference/nanochat_src, ~0.4 MB) and gpu-nanochat-bench.py, which
#                    runs it on the GPU's PyTorch for the side-by-side
# Usage: scripts/gpu-pack.sh [out-dir]   (default target/gpu-pack). Fails when the folder exceeds 64 MiB.
set -euo pipefail
root="$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)"
out="${1:-$root/target/gpu-pack}"
limit=$((64 * 1024 * 1024))
. "$root/scripts/jdk.sh"
nanochat4j_find_jdk
cd "$root"

mvn() { ./mvnw -B -q -ntp -o "$@" || ./mvnw -B -q -ntp "$@"; }
echo "gpu-pack: building the jar and the test classes ..." >&2
mvn -DskipTests package -pl bench -am
mvn test-compile -pl bench -am

junit_version=$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml | head -n 1)
platform_version="1.${junit_version#5.}" # JUnit 5.x.y ships platform 1.x.y
console="$HOME/.m2/repository/org/junit/platform/junit-platform-console-standalone/$platform_version/junit-platform-console-standalone-$platform_version.jar"
if [ ! -f "$console" ]; then
  ./mvnw -B -q -ntp dependency:get -Dartifact="org.junit.platform:junit-platform-console-standalone:$platform_version" >&2 || true
fi
[ -f "$console" ] || { echo "gpu-pack: JUnit console launcher $platform_version not found at $console" >&2; exit 1; }

rm -rf "$out"
mkdir -p "$out"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "gpu-pack: jlink ..." >&2
# Modules: the engine's, plus java.xml (the JUnit console's XML reports), jdk.httpserver (test classes with a local
# download server: without it their whole class fails to load), java.desktop (base-train's loss chart),
# jdk.management + jdk.jfr (the diagnostic command that installs the launcher's C2 inline directive). Stored
# uncompressed and packed with xz: smaller than jlink's own zip-9 inside gzip (~23 MB against ~34 for these modules).
"$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.incubator.vector,jdk.unsupported,java.management,java.logging,java.net.http,jdk.httpserver,java.xml,java.desktop,jdk.management,jdk.jfr \
  --compress=zip-0 --strip-debug --no-header-files --no-man-pages --output "$tmp/runtime"
tar -C "$tmp" -cJf "$out/runtime.tar.xz" runtime
cp bench/target/nanochat4j.jar "$out/nanochat4j.jar"
# The GPU machines are Linux x86-64: the carried copy drops the other platforms' native libraries (aircompressor's
# codecs, JLine's terminal helper; ~2.5 MB of the jar), room under the 64 MiB. Without zip the whole jar goes.
if command -v zip > /dev/null; then
  zip -q -d "$out/nanochat4j.jar" 'aircompressor/linux-aarch64/*' 'aircompressor/linux-ppc64le/*' 'aircompressor/macos-*' \
    'org/jline/nativ/Windows/*' 'org/jline/nativ/Mac/*' 'org/jline/nativ/FreeBSD/*' 'org/jline/nativ/Linux/arm*' \
    'org/jline/nativ/Linux/x86/*' 'org/jline/nativ/Linux/ppc64/*' \
    || echo "gpu-pack: could not drop the other platforms' native libraries from the jar; carrying it whole" >&2
fi
"$JAVA_HOME/bin/jar" --create --file "$out/tensor-tests.jar" -C tensor/target/test-classes .
# model's tests: only GPTCudaTest runs there (the model's KV-cache forward on the GPU against the CPU model)
"$JAVA_HOME/bin/jar" --create --file "$out/model-tests.jar" -C model/target/test-classes .
# train's tests: GpuTrainStepTest and BaseTrainTest's GPU resume run there
"$JAVA_HOME/bin/jar" --create --file "$out/train-tests.jar" -C train/target/test-classes .
cp "$console" "$out/junit-console.jar"
cp scripts/gpu-check.sh "$out/gpu-check.sh"
# the PyTorch op fixtures (0.5 MB) for PyTorchFixturesConformanceTest, when this checkout has shared/ beside it
fixtures="${NANOCHAT4J_SHARED:-$root/../shared}/fixtures/nanochat-tiny"
if [ -f "$fixtures/ops.json" ]; then
  mkdir -p "$out/shared/fixtures/nanochat-tiny"
  cp "$fixtures/ops.json" "$fixtures/ops.bin" "$out/shared/fixtures/nanochat-tiny/"
else
  echo "gpu-pack: no $fixtures/ops.json: the PyTorch fixture cases will fail there (CI=true)" >&2
fi
# text for base-train there (tokenizer trained there too: 2 s for 100 MB here); the last file by name is validation
books="${NANOCHAT4J_SHARED:-$root/../shared}/data/pretrain_text/gutenberg_books"
if [ -d "$books" ]; then
  mapfile -t picked < <(cd "$books" && ls -S -- *.txt | head -n 6 | sort)
  tar -C "$books" -czf "$out/data.tgz" "${picked[@]}"
else
  echo "gpu-pack: no $books: the base-train stage will be skipped there" >&2
fi
# real nanochat, unmodified, and the harness that runs it on the GPU's PyTorch (bf16, torch.compile)
nanochat="${NANOCHAT4J_SHARED:-$root/../shared}/tools/reference/nanochat_src"
if [ -d "$nanochat/nanochat" ]; then
  mkdir -p "$out/nanochat_src"
  cp -r "$nanochat/nanochat" "$nanochat/LICENSE" "$out/nanochat_src/"
  cp scripts/gpu-nanochat-bench.py "$out/gpu-nanochat-bench.py"
else
  echo "gpu-pack: no $nanochat: the nanochat side-by-side will be skipped there" >&2
fi
chmod +x "$out/gpu-check.sh"

total=$(du -cbs "$out" | tail -n 1 | cut -f1)
ls -l "$out" >&2
awk -v o="$out" -v t="$total" 'BEGIN { printf "gpu-pack: %s, %.1f MiB of the 64 MiB that travel\n", o, t / 1048576 }' >&2
if [ "$total" -gt "$limit" ]; then
  echo "gpu-pack: $total bytes exceed the 64 MiB limit" >&2
  exit 1
fi
