#!/usr/bin/env bash
# Runs on a GPU machine with no Java and no network, from the folder scripts/gpu-pack.sh built:
#   1. unpacks the jlinked runtime
#   2. probe: the device, its memory and the driver library, or the one-line reason CUDA is unusable (exit 3)
#   3. the backend conformance suite (CPU and CUDA against float64 references and the PyTorch fixtures), the CUDA
#      checks, the NVRTC compile of every kernel and the GPU decoder against the CPU model, via JUnit's console
#   4. kernel timings (launch overhead, cuBLAS fp32/bf16 GEMM, attention fwd/bwd/decode) as JSON lines, then
#      `bench kernels --device cuda --json` (every backend op family at nanochat's shapes), then
#      `bench infer --device cuda` at d12 and d20 (head dim 128, GPU-resident weights and KV cache)
# Writes $OUT/gpu-check.log (everything) and $OUT/gpu-check.jsonl (one JSON object per line); OUT defaults to
# ./out beside this script. Exit 0 only when the probe found a GPU and every conformance test passed.
# Usage: [OUT=dir] ./gpu-check.sh [pack-dir]
set -uo pipefail
pack="$(cd "${1:-$(dirname "$(readlink -f "$0")")}" && pwd)"
out="${OUT:-$pack/out}"
mkdir -p "$out"
log="$out/gpu-check.log"
jsonl="$out/gpu-check.jsonl"
: > "$log"
: > "$jsonl"
say() { echo "gpu-check: $*" | tee -a "$log" >&2; }
for f in runtime.tgz nanochat4j.jar tensor-tests.jar bench-tests.jar junit-console.jar; do
  [ -f "$pack/$f" ] || { say "missing $pack/$f (build the folder with scripts/gpu-pack.sh)"; exit 2; }
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
tar -xzf "$pack/runtime.tgz" -C "$work" || { say "cannot unpack runtime.tgz"; exit 2; }
java="$work/runtime/bin/java"
flags=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED -Xss4m -Dnanochat4j.cuda.cache="$work/ptx-cache"
  -Dshared.dir="$pack/shared")
say "$("$java" -version 2>&1 | head -n 1); $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"

timeout 120 "$java" "${flags[@]}" -cp "$pack/nanochat4j.jar" nanochat4j.tensor.cuda.CudaCheck probe >> "$jsonl" 2>> "$log"
rc=$?
if [ "$rc" -ne 0 ]; then
  reason="$(tail -n 1 "$log")"
  if [ "$rc" -eq 3 ]; then say "no CUDA driver or GPU usable here: $reason"; else say "probe failed (exit $rc): $reason"; fi
  exit 3
fi
say "probe: $(tail -n 1 "$jsonl")"

say "conformance suite ..."
CI=true timeout 360 "$java" "${flags[@]}" -jar "$pack/junit-console.jar" execute \
  --class-path "$pack/nanochat4j.jar:$pack/tensor-tests.jar:$pack/bench-tests.jar" \
  --select-class nanochat4j.tensor.cuda.BackendConformanceTest --select-class nanochat4j.tensor.cuda.CudaBackendTest \
  --select-class nanochat4j.tensor.cuda.NvrtcCompileTest --select-class nanochat4j.tensor.cuda.PyTorchFixturesConformanceTest \
  --select-class nanochat4j.bench.DeviceDecoderTest \
  --details=tree --disable-banner --reports-dir "$out/junit" >> "$log" 2>&1
conf=$?
summary="$(grep -E 'tests (successful|failed|skipped|aborted)' "$log" | tr -s ' []' | tr '\n' ';')"
aborted="$(grep -E 'tests aborted' "$log" | tr -dc '0-9')"
# an aborted (assumption-skipped) case here means the CUDA half did not run: that is a failure on a GPU machine
if [ "$conf" -eq 0 ] && [ "${aborted:-0}" -ne 0 ]; then conf=4; fi
echo "{\"kind\":\"conformance\",\"exit\":$conf,\"summary\":\"$summary\"}" >> "$jsonl"
say "conformance exit $conf: $summary"

say "kernel timings ..."
timeout 180 "$java" "${flags[@]}" -cp "$pack/nanochat4j.jar" nanochat4j.tensor.cuda.CudaCheck bench >> "$jsonl" 2>> "$log"
bench=$?
say "bench exit $bench"

say "bench kernels --device cuda ..."
timeout 240 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench kernels --device cuda --json >> "$jsonl" 2>> "$log"
kernels=$?
say "bench kernels exit $kernels"

infer=0
for depth in 12 20; do
  say "bench infer --device cuda --depth $depth ..."
  timeout 150 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench infer --device cuda --depth "$depth" --head-dim 128 --seq 2048 --json \
    >> "$jsonl" 2>> "$log" || { infer=$?; say "bench infer d$depth failed (exit $infer)"; }
done
cat "$jsonl" >> "$log"
[ "$conf" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$kernels" -eq 0 ] && [ "$infer" -eq 0 ]
