#!/usr/bin/env bash
# Runs on a GPU machine with no Java and no network, from the folder scripts/gpu-pack.sh built:
#   1. unpacks the jlinked runtime
#   2. probe: the device, its memory and the driver library, or the one-line reason CUDA is unusable (exit 3)
#   3. the backend conformance suite (CPU and CUDA against float64 references and the PyTorch fixtures), the CUDA
#      checks, the NVRTC compile of every kernel and the GPU decoder against the CPU model, via JUnit's console
#   4. kernel timings (launch overhead, cuBLAS fp32/bf16 GEMM, attention fwd/bwd/decode) as JSON lines, then
#      `bench kernels --device cuda --json` (every backend op family at nanochat's shapes), then
#      `bench infer --device cuda` at d12 and d20 (head dim 128, GPU-resident weights and KV cache)
#   5. training on the GPU: the GPU-vs-CPU training step and GPU resume tests, then a 30-step d12 base-train
#      --device cuda (batch 32 x 2048, SSSL, head dim 128) on synthetic text with a tokenizer trained here
#      (vocab 8192), printing its tok/s and MFU (of 989 TFLOP/s) as a JSON line
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
for f in runtime.tgz nanochat4j.jar tensor-tests.jar model-tests.jar train-tests.jar junit-console.jar; do
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
  --class-path "$pack/nanochat4j.jar:$pack/tensor-tests.jar:$pack/model-tests.jar" \
  --select-class nanochat4j.tensor.cuda.BackendConformanceTest --select-class nanochat4j.tensor.cuda.CudaBackendTest \
  --select-class nanochat4j.tensor.cuda.NvrtcCompileTest --select-class nanochat4j.tensor.cuda.PyTorchFixturesConformanceTest \
  --select-class nanochat4j.model.gpt.GPTCudaTest --select-class nanochat4j.tensor.cuda.TensorCoreGemmTest --select-class nanochat4j.tensor.cuda.DeterministicScatterTest \
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

say "GPU training tests ..."
tlog="$work/train-tests.log"
# on the JVM's own class path (not JUnit's --class-path): the two-worker test starts workers with java.class.path
CI=true timeout 300 "$java" "${flags[@]}" -cp "$pack/junit-console.jar:$pack/nanochat4j.jar:$pack/tensor-tests.jar:$pack/train-tests.jar" \
  org.junit.platform.console.ConsoleLauncher execute \
  --select-method nanochat4j.train.base.DataParallelTrainTest#twoGpuWorkersOnOneGpuEqualOneGpuProcess \
  --select-class nanochat4j.train.optim.GpuTrainStepTest --select-class nanochat4j.train.optim.GpuAdamWTest --select-class nanochat4j.train.optim.DeviceMuonTest \
  --select-method nanochat4j.train.base.BaseTrainTest#resumingOnTheGpuIsExact \
  --details=tree --disable-banner --reports-dir "$out/junit-train" > "$tlog" 2>&1
trainconf=$?
cat "$tlog" >> "$log"
tsummary="$(grep -E 'tests (successful|failed|skipped|aborted)' "$tlog" | tr -s ' []' | tr '\n' ';')"
taborted="$(grep -E 'tests aborted' "$tlog" | tr -dc '0-9')"
if [ "$trainconf" -eq 0 ] && [ "${taborted:-0}" -ne 0 ]; then trainconf=4; fi
echo "{\"kind\":\"train-tests\",\"exit\":$trainconf,\"summary\":\"$tsummary\"}" >> "$jsonl"
say "GPU training tests exit $trainconf: $tsummary"

say "base-train --device cuda, d12, 30 steps ..."
base="$work/base"
mkdir -p "$base/data"
# synthetic text: pseudo-words from a fixed seed, enough distinct pieces for 8192 BPE merges (no network here)
for f in 0 1 2; do
  awk -v seed=$((f + 1)) 'BEGIN { srand(seed); c = "etaoinshrdlucmfwypvbgkjqxz";
    for (d = 0; d < 4000; d++) { line = "{\"text\":\"";
      for (w = 0; w < 60 + int(rand() * 200); w++) { n = 1 + int(rand() * 9); s = "";
        for (i = 0; i < n; i++) s = s substr(c, 1 + int(rand() * rand() * 26), 1);
        line = line (w ? " " : "") s }
      print line ".\"}" } }' > "$base/data/part_$f.jsonl"
done
trainrc=0
NANOCHAT_BASE_DIR="$base" timeout 180 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" tok-train --data "$base/data" --vocab-size 8192 \
  >> "$log" 2>&1 || { trainrc=$?; say "tok-train failed (exit $trainrc)"; }
blog="$work/base-train.log"
if [ "$trainrc" -eq 0 ]; then
  NANOCHAT_BASE_DIR="$base" timeout 420 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" base-train --device cuda --depth 12 \
    --device-batch-size 32 --max-seq-len 2048 --total-batch-size 65536 --num-iterations 30 --warmup-steps 5 --eval-every -1 \
    --core-metric-every -1 --sample-every -1 --data "$base/data" --checkpoint-dir "$base/ckpt" > "$blog" 2>&1
  trainrc=$?
  cat "$blog" >> "$log"
  last="$(grep -E '^step 000(2[0-9]|30)/' "$blog" | tail -n 1)"
  tok="$(echo "$last" | sed -n 's/.*tok\/sec: \([0-9,]*\).*/\1/p' | tr -d ,)"
  mfu="$(echo "$last" | sed -n 's/.*mfu: \([0-9.]*\)%.*/\1/p')"
  dt="$(echo "$last" | sed -n 's/.*dt: \([0-9.]*\)ms.*/\1/p')"
  echo "{\"kind\":\"base-train\",\"depth\":12,\"batch\":32,\"seq\":2048,\"exit\":$trainrc,\"tok_per_s\":${tok:-null},\"mfu_pct\":${mfu:-null},\"dt_ms\":${dt:-null}}" >> "$jsonl"
  say "base-train d12 exit $trainrc: ${tok:-?} tok/s, MFU ${mfu:-?}%, step ${dt:-?} ms ($(tail -n 1 "$blog"))"
fi

cat "$jsonl" >> "$log"
[ "$conf" -eq 0 ] && [ "$bench" -eq 0 ] && [ "$kernels" -eq 0 ] && [ "$infer" -eq 0 ] && [ "$trainconf" -eq 0 ] && [ "$trainrc" -eq 0 ]
