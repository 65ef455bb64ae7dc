#!/usr/bin/env bash
# Runs on a GPU machine with no Java and no network, from the folder scripts/gpu-pack.sh built, within 8 minutes
# (a deadline of GPU_CHECK_BUDGET seconds, default 470: each stage runs under `timeout` with the smaller of its own
# budget and the time left, and a stage with under 15 s left is skipped with a JSON line saying so). Stages, most
# important first, each appending its JSON lines to $OUT/gpu-check.jsonl as it ends:
#   1. probe (40 s): the device, its memory and the driver library, or the one-line reason CUDA is unusable (exit 3)
#   2. conformance (110 s): the backend suite on CPU and CUDA (fp32, and bf16 matmuls at bf16 tolerance), the
#      PyTorch fixtures, NVRTC compiles, our tensor-core GEMM, the GPU decoder (its steps replayed as CUDA graphs),
#      the GPU training step against the CPU one in fp32 and bf16, the device optimizer — one JUnit run
#   3. train extras (100 s): the two-GPU-worker training test, the exact GPU resume test, base-eval's bpb on the
#      GPU against the CPU, chat-rl on the GPU against the CPU and resumed there (correctness first)
#   4. bench kernels --device cuda --ops gemm,attention (70 s): cuBLAS fp32/bf16 and our GEMM per d12/d20/d24 layer
#      shape (TFLOP/s, % of cuBLAS), attention fwd/bwd/decode
#   5. bench infer --device cuda --depth 20 (60 s): decode speed, batch 1, linear layers in bf16 (nanochat's engine),
#      each step replayed from a CUDA graph and, again, launched kernel by kernel (the launch cost per step)
#   6. base-train --device cuda (tokenizer 30 s, training 110 s): d12, batch 32 x 2048, bf16, 30 steps, on the
#      carried Gutenberg text: median step time, tok/s, MFU (of 989 TFLOP/s), peak device memory (nvidia-smi, and
#      the allocator's own: peak in tensors, as nanochat's max_memory_allocated, and full-device pool flushes),
#      where the last step's device time went, kernel by kernel (--profile-step; that step is left out of the medians),
#      and the GEMM choices its first step timed: ours against cuBLAS on each product (forward, dx, dW)
#   7. real nanochat on this GPU (120 s): its own model and optimizer, bf16; d20 batch-1 decode (tok/s) first, then
#      the d12 step with torch.compile at batch 32 x 2048, 30 steps (tok/s, MFU, peak memory): the same session
#   then `bench gpu-targets` (seconds): issues 20-21's targets beside what this run measured, ours against nanochat's,
#      each MET, MISSED or NOT MEASURED, in the log and as one JSON line (kind "targets")
# GPU_CHECK_STAGES (comma-separated) picks the stages after the probe; the default is the list above. Three more, for
# a second call (about 8 minutes, GPU_CHECK_STAGES=d24,allreduce,gemm-bwd) that measures what the first leaves NOT
# MEASURED:
#   d24 (ours 150 s, nanochat's 150 s): base-train --depth 24 at 16 x 2048, bf16, 12 steps, and nanochat's own d24
#      step at batch 16 with torch.compile (tok/s, MFU, peak memory; the tokenizer stage runs first, as for d12)
#   allreduce (100 s): launch --nproc 2 base-train --device cuda d12, 2 ranks x 16 x 2048, 10 steps, one rank a GPU
#      where the machine has two (else both ranks share its one GPU, a proxy): the share of a step the ranks waited
#      for the gradient all-reduce that overlaps the backward
#   gemm-bwd (up to 120 s, what the budget leaves): bench kernels --ops gemm-bwd, our GEMM beside cuBLAS on the
#      backward's dx and dW products of every d12/d20/d24 layer (split-K tiles where they fit); the rows printed
#      before a timeout count for the GEMM target
#   `bench gpu-targets OUT1/gpu-check.jsonl OUT2/gpu-check.jsonl` then judges both calls' figures together; given
#   GPU_CHECK_EARLIER=OUT1/gpu-check.jsonl (carried to the machine), the second call's own summary does.
# Writes $OUT/gpu-check.log (everything) and $OUT/gpu-check.jsonl; OUT defaults to ./out beside this script.
# Exit 0 only when the probe found a GPU, the test stages asked for (2, 3) ran and passed, and every other stage
# that ran passed; 3 when CUDA is unusable here.
# Usage: [OUT=dir] [GPU_CHECK_BUDGET=s] [GPU_CHECK_STAGES=list] [GPU_CHECK_EARLIER=jsonl] ./gpu-check.sh [pack-dir]
set -uo pipefail
t_start=$(date +%s)
budget="${GPU_CHECK_BUDGET:-470}"
stages="${GPU_CHECK_STAGES:-conformance,train-extras,bench-kernels,bench-infer,base-train,nanochat}"
for s in ${stages//,/ }; do
  case "$s" in
    conformance|train-extras|bench-kernels|bench-infer|base-train|nanochat|d24|allreduce|gemm-bwd) ;;
    *) echo "gpu-check: GPU_CHECK_STAGES=$stages: unknown stage '$s' (conformance, train-extras, bench-kernels, bench-infer, base-train, nanochat, d24, allreduce, gemm-bwd)" >&2; exit 2 ;;
  esac
done
# whether a stage was asked for
want() { [[ ",$stages," == *",$1,"* ]]; }
pack="$(cd "${1:-$(dirname "$(readlink -f "$0")")}" && pwd)"
out="${OUT:-$pack/out}"
mkdir -p "$out"
log="$out/gpu-check.log"
jsonl="$out/gpu-check.jsonl"
: > "$log"
: > "$jsonl"
say() { echo "gpu-check: $*" | tee -a "$log" >&2; }
json() { echo "$1" >> "$jsonl"; }
# seconds a stage may run: its budget, or what is left before the deadline
left() { local l=$((t_start + budget - $(date +%s))); [ "$l" -lt "$1" ] && echo "$l" || echo "$1"; }
# starts a stage: prints its timeout, or returns 1 (and records the skip) when under 15 s are left
stage() {
  local t
  t=$(left "$2")
  if [ "$t" -lt 15 ]; then
    say "skipping $1: ${t}s left of the ${budget}s budget"
    json "{\"kind\":\"$1\",\"skipped\":\"budget\"}"
    return 1
  fi
  echo "$t"
}
failed=0

for f in runtime.tar.xz nanochat4j.jar tensor-tests.jar model-tests.jar train-tests.jar junit-console.jar; do
  [ -f "$pack/$f" ] || { say "missing $pack/$f (build the folder with scripts/gpu-pack.sh)"; json "{\"kind\":\"pack-incomplete\",\"missing\":\"$f\"}"; exit 2; }
done
work="$(mktemp -d)"
smi_pid=""
trap '[ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null; rm -rf "$work"' EXIT
# xz may be missing on a bare image: Python's tarfile reads it too (PyTorch's machines have Python)
tar -xJf "$pack/runtime.tar.xz" -C "$work" 2>> "$log" \
  || python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$pack/runtime.tar.xz" "$work" 2>> "$log" \
  || { say "cannot unpack runtime.tar.xz"; json '{"kind":"pack-incomplete","missing":"runtime"}'; exit 2; }
java="$work/runtime/bin/java"
# The driver compiles our PTX to machine code at each module's first load and caches it (~/.nv/ComputeCache by
# default, which a bare machine may lack or not let us write): here, in a folder this run owns, so every stage's JVM
# after the first loads the modules without compiling them again.
export CUDA_CACHE_DISABLE=0 CUDA_CACHE_PATH="$work/nv-compute-cache" CUDA_CACHE_MAXSIZE=1073741824
# the launcher's flags (./nanochat4j): the JUnit runs start with -cp, so they get none of the jar manifest's
flags=(--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED --add-opens java.base/jdk.internal.misc=ALL-UNNAMED
  --sun-misc-unsafe-memory-access=allow -Xss4m -XX:PerMethodRecompilationCutoff=10000 -Dnanochat4j.cuda.cache="$work/ptx-cache"
  -Dshared.dir="$pack/shared")
say "$("$java" -version 2>&1 | head -n 1); $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"

# peak GPU memory used while a command runs (nvidia-smi, MiB, the whole device: the same measure for both sides)
smi_start() {
  : > "$work/smi.txt"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$work/smi.txt" 2>/dev/null &
    smi_pid=$!
  fi
}
smi_peak() {
  [ -n "$smi_pid" ] && kill "$smi_pid" 2>/dev/null && wait "$smi_pid" 2>/dev/null
  smi_pid=""
  local m
  m=$(sort -n "$work/smi.txt" 2>/dev/null | tail -n 1 | tr -dc '0-9')
  [ -n "$m" ] && awk -v m="$m" 'BEGIN { printf "%.2f", m / 1024 }' || echo null
}
# "tests successful/failed/aborted" of a JUnit console log, and its exit turned into 4 when CUDA cases were skipped
# (the console's own summary lines only, "[        12 tests successful      ]": a test's output may say "tests skipped")
junit_summary() { grep -E '^\[ *[0-9]+ tests (successful|failed|skipped|aborted)' "$1" | tr -s ' []' | tr -dc 'a-z0-9 ;\n' | tr '\n' ';'; }
junit_exit() {
  local rc=$1 aborted
  aborted="$(grep -E '^\[ *[0-9]+ tests aborted' "$2" | tr -dc '0-9')"
  # an aborted (assumption-skipped) case means a GPU half did not run: a failure on a GPU machine
  if [ "$rc" -eq 0 ] && [ "${aborted:-0}" -ne 0 ]; then echo 4; else echo "$rc"; fi
}
# runs a JUnit test stage: junit KIND SECONDS LOG REPORTS-DIR TEST-JARS SELECTORS…; its JSON line, and failed=1 unless
# it passed. On the JVM's own class path (not JUnit's --class-path): the two-worker test starts workers with
# java.class.path. Poisoned as in the Maven suites: new and recycled device memory reads as NaN until a kernel writes it.
junit() {
  local kind=$1 t=$2 jlog=$3 reports=$4 jars=$5 rc
  shift 5
  CI=true timeout -k 10 "$t" "$java" "${flags[@]}" -Dnanochat4j.recycler.poison=true -cp "$pack/junit-console.jar:$pack/nanochat4j.jar:$jars" \
    org.junit.platform.console.ConsoleLauncher execute "$@" \
    --details=tree --disable-banner --disable-ansi-colors --reports-dir "$reports" > "$jlog" 2>&1
  rc=$(junit_exit $? "$jlog")
  cat "$jlog" >> "$log"
  json "{\"kind\":\"$kind\",\"exit\":$rc,\"summary\":\"$(junit_summary "$jlog")\"}"
  say "$kind exit $rc: $(junit_summary "$jlog")"
  [ "$rc" -eq 0 ] || failed=1
}

# ---- 1. probe
t=$(stage probe 40) || exit 3
timeout -k 10 "$t" "$java" "${flags[@]}" -cp "$pack/nanochat4j.jar" nanochat4j.tensor.cuda.CudaCheck probe >> "$jsonl" 2>> "$log"
rc=$?
if [ "$rc" -ne 0 ]; then
  reason="$(tail -n 1 "$log")"
  if [ "$rc" -eq 3 ]; then say "no CUDA driver or GPU usable here: $reason"; else say "probe failed (exit $rc): $reason"; fi
  json "{\"kind\":\"probe-failed\",\"exit\":$rc}"
  exit 3
fi
say "probe: $(tail -n 1 "$jsonl")"

# ---- 2. conformance: fp32 and bf16, the GPU training step, the device optimizer
if ! want conformance; then :
elif t=$(stage conformance 110); then
  say "conformance suite (${t}s) ..."
  junit conformance "$t" "$out/conformance.log" "$out/junit" "$pack/tensor-tests.jar:$pack/model-tests.jar:$pack/train-tests.jar" \
    --select-class nanochat4j.tensor.cuda.BackendConformanceTest --select-class nanochat4j.tensor.cuda.Bf16MatmulConformanceTest \
    --select-class nanochat4j.tensor.cuda.CudaBackendTest --select-class nanochat4j.tensor.cuda.NvrtcCompileTest \
    --select-class nanochat4j.tensor.cuda.PyTorchFixturesConformanceTest --select-class nanochat4j.tensor.cuda.TensorCoreGemmTest \
    --select-class nanochat4j.tensor.cuda.DeterministicScatterTest --select-class nanochat4j.model.gpt.GPTCudaTest \
    --select-class nanochat4j.train.optim.GpuTrainStepTest --select-class nanochat4j.train.optim.GpuAdamWTest \
    --select-class nanochat4j.train.optim.DeviceMuonTest --select-class nanochat4j.train.collective.OverlappedGradReduceTest \
    --select-class nanochat4j.train.CudaDecodeHostWaitsTest --select-class nanochat4j.tensor.cuda.CudaSimulatorTest \
    --select-class nanochat4j.tensor.cuda.CudaGraphTest --select-class nanochat4j.train.CudaTrainStepHostWaitsTest \
    --select-class nanochat4j.tensor.cuda.KernelProfileTest
else
  failed=1 # a test stage that did not run is not a pass
fi

# ---- 3. correctness across processes and runs: two GPU workers over the ring, exact resume on the GPU
if ! want train-extras; then :
elif t=$(stage train-extras 100); then
  say "GPU data-parallel, resume, base-eval and chat-rl tests (${t}s) ..."
  junit train-tests "$t" "$out/train-tests.log" "$out/junit-train" "$pack/tensor-tests.jar:$pack/model-tests.jar:$pack/train-tests.jar" \
    --select-method nanochat4j.train.base.BaseTrainTest#resumingOnTheGpuIsExact \
    --select-method nanochat4j.train.base.DataParallelTrainTest#twoGpuWorkersOnOneGpuEqualOneGpuProcess \
    --select-method nanochat4j.train.eval.BaseEvalCommandTest#theModelRunsOnTheDeviceAsked \
    --select-method nanochat4j.train.chat.RlTest#aRunOnTheGpuMatchesTheCpuAndResumesThere \
    --select-method nanochat4j.train.chat.RlTest#anUpdateOnTheGpuGivesTheCpusLossAndGradients
else
  failed=1
fi

# ---- 4. kernels: cuBLAS vs our tensor-core GEMM on the layer shapes, attention
if want bench-kernels && t=$(stage bench-kernels 70); then
  say "bench kernels --device cuda --ops gemm,attention (${t}s) ..."
  timeout -k 10 "$t" "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench kernels --device cuda --ops gemm,attention --json >> "$jsonl" 2>> "$log"
  rc=$?
  say "bench kernels exit $rc"
  [ "$rc" -eq 0 ] || { failed=1; json "{\"kind\":\"bench-kernels\",\"exit\":$rc}"; }
  # attention fwd+bwd at nanochat's flop count, per kernel family (issue 20's target: >= 40% of the bf16 peak)
  grep -E '"op":"attention fwd\+bwd' "$jsonl" \
    | sed -E 's/.*"op":"([^"]*)","shape":"([^"]*)","ms":[^,]*,"tflops":([0-9.eE+-]+),"peak_tflops":([0-9.eE+-]+).*/\1|\2|\3|\4/' \
    | awk -F'|' 'NF == 4 { printf "%s, %s: %.1f TFLOP/s, %.1f%% of peak\n", $1, $2, $3, 100 * $3 / $4 }' \
    | while IFS= read -r line; do say "$line"; done
fi

# ---- 5. decode speed at d20 (helper "forward"'s command, unchanged)
if want bench-infer && t=$(stage bench-infer 60); then
  say "bench infer --device cuda --depth 20 (${t}s) ..."
  timeout -k 10 "$t" "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench infer --device cuda --depth 20 --head-dim 128 --seq 2048 --json \
    >> "$jsonl" 2>> "$log"
  rc=$?
  say "bench infer d20 exit $rc"
  [ "$rc" -eq 0 ] || { failed=1; json "{\"kind\":\"bench-infer\",\"depth\":20,\"exit\":$rc}"; }
fi

# ---- 6. base-train on the GPU (d12 here; d24 and the two-rank all-reduce below), on the carried Gutenberg text
base="$work/base"
mkdir -p "$base/data"
trainrc=0
if ! want base-train && ! want d24 && ! want allreduce; then :
elif [ -f "$pack/data.tgz" ]; then
  tar -xzf "$pack/data.tgz" -C "$base/data" || trainrc=2
else
  say "no data.tgz in the pack: base-train skipped"
  trainrc=2
fi
tokok=0
if (want base-train || want d24 || want allreduce) && [ "$trainrc" -eq 0 ] && t=$(stage tok-train 30); then
  NANOCHAT_BASE_DIR="$base" timeout -k 10 "$t" "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" tok-train --data "$base/data" --vocab-size 32768 \
    >> "$log" 2>&1 && tokok=1 || { trainrc=$?; say "tok-train failed (exit $trainrc)"; json "{\"kind\":\"tok-train\",\"exit\":$trainrc}"; }
fi
# median of a figure over a training log's steps after the first five (they compile kernels and time the GEMM choices),
# the profiled one left out (its events slow it a little): med LOG SED-PATTERN (one \(…\) group) [PROFILED-STEP];
# "null" when no step got that far
med() {
  grep -E '^(\[rank 0\] )?step [0-9]+/' "$1" | sed -E 's/^\[rank 0\] //' | awk -F'[ /]' -v p="${3:-0}" '$2 + 0 > 5 && $2 + 0 != p' \
    | sed -n "s/.*$2.*/\\1/p" | tr -d , \
    | sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "null" }'
}
# train KIND SECONDS LOG DEPTH BATCH STEPS [launch --nproc N]: base-train --device cuda in bf16 at batch BATCH x 2048 (one
# micro-step a rank and step), its JSON line (medians, peak memory by nvidia-smi and by our allocator), trainrc; the
# last step's device time by kernel (--profile-step) to the log, its top lines to the summary; no checkpoint (writing
# d24's model and optimizer state, ~16 GB, would take the stage's time and the disk)
train() {
  local kind=$1 t=$2 blog=$3 depth=$4 batch=$5 steps=$6 ranks=1 peak dt tok mfu n tensors flushes waited
  shift 6
  [ "$#" -gt 0 ] && ranks=$3
  smi_start
  NANOCHAT_BASE_DIR="$base" timeout -k 10 "$t" "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" "$@" base-train --device cuda --precision bf16 \
    --depth "$depth" --head-dim 128 --window-pattern SSSL --device-batch-size "$batch" --max-seq-len 2048 \
    --total-batch-size $((ranks * batch * 2048)) --num-iterations "$steps" --warmup-steps 5 --eval-every -1 --core-metric-every -1 \
    --sample-every -1 --data "$base/data" --checkpoint-dir "$base/ckpt-$kind-d$depth" --profile-step "$steps" --no-save-final > "$blog" 2>&1
  trainrc=$?
  peak=$(smi_peak)
  cat "$blog" >> "$log"
  dt=$(med "$blog" 'dt: \([0-9.]*\)ms' "$steps")
  tok=$(med "$blog" 'tok\/sec: \([0-9,]*\)' "$steps")
  mfu=$(med "$blog" 'mfu: \([0-9.]*\)%' "$steps")
  n=$(grep -cE '^(\[rank 0\] )?step [0-9]+/' "$blog")
  # the allocator's own figures (nanochat's gpu-nanochat-bench.py reports torch.cuda.max_memory_allocated, the first)
  tensors=$(sed -En 's/^(\[rank 0\] )?Peak device memory: ([0-9.]*) GiB in tensors.*/\2/p' "$blog" | tail -n 1)
  flushes=$(sed -En 's/^(\[rank 0\] )?Peak device memory: .*; ([0-9]*) pool flush.*/\2/p' "$blog" | tail -n 1)
  waited=$(sed -En 's/^(\[rank 0\] )?Gradient all-reduce .*: waited ([0-9.]*)% of the step time.*/\2/p' "$blog" | tail -n 1)
  json "{\"kind\":\"$kind\",\"depth\":$depth,\"batch\":$batch,\"seq\":2048,\"precision\":\"bf16\",\"activations\":\"bf16\",\"ranks\":$ranks,\"gpus\":$gpus,\"exit\":$trainrc,\"steps\":$n,\"dt_ms\":$dt,\"tok_per_s\":$tok,\"mfu_pct\":$mfu,\"peak_gpu_mem_gib\":$peak,\"peak_tensors_gib\":${tensors:-null},\"pool_flushes\":${flushes:-null},\"reduce_wait_pct\":${waited:-null}}"
  say "$kind d$depth exit $trainrc: $tok tok/s, MFU $mfu%, step $dt ms, peak $peak GiB (nvidia-smi), ${tensors:-?} GiB in tensors, ${flushes:-?} pool flushes${waited:+, waited $waited% of the step for the all-reduce} ($(tail -n 1 "$blog"))"
  # a kernel of ours the first-use checks turned down (attention's wgmma or mma.sync, a GEMM tile): named here
  # (not the JVM's own "WARNING: Using incubator modules" line)
  grep -E 'WARNING|differs? from the fp32' "$blog" | grep -v 'incubator modules' | head -n 8 | while IFS= read -r line; do say "$kind: $line"; done
  # the GEMM choices the first step timed: every layout the training step multiplies in (forward, dx, dW), ours (its
  # fastest tile, split-K ones included) against cuBLAS, as JSON lines the GEMM target reads beside bench kernels'
  sed -En "s/^(\[rank 0\] )?cuda: gemm ([0-9x]+ [NT][NT]) → .* ([0-9.]+) ms ours \(tile (.*), [0-9]+% of cuBLAS's speed\) vs ([0-9.]+) ms cuBLAS.*/{\"kind\":\"gemm-choice\",\"depth\":$depth,\"shape\":\"\2\",\"ours_ms\":\3,\"tile\":\"\4\",\"cublas_ms\":\5}/p" "$blog" >> "$jsonl"
  # where the profiled step's device time went: its header and the ten longest kernels (all of them in the log)
  awk '{ sub(/^\[rank 0\] /, "") } /^Device time of step/ { on = 1; print; next } on && /^  / { print; next } { on = 0 }' "$blog" \
    | head -n 12 | while IFS= read -r line; do say "$kind d$depth: $line"; done
  [ "$trainrc" -eq 0 ] || failed=1
}
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ')
[ "$gpus" -ge 1 ] 2>/dev/null || gpus=1
[ "$trainrc" -eq 0 ] || failed=1
if [ "$tokok" -eq 1 ] && want base-train && t=$(stage base-train 110); then
  say "base-train --device cuda d12, 32 x 2048, bf16, 30 steps (${t}s) ..."
  train base-train "$t" "$out/base-train.log" 12 32 30
fi
if [ "$tokok" -eq 1 ] && want d24 && t=$(stage d24 150); then
  say "base-train --device cuda d24, 16 x 2048, bf16, 12 steps (${t}s) ..."
  train base-train "$t" "$out/base-train-d24.log" 24 16 12
fi

# ---- 7. real nanochat on the same GPU: d12 training step and d20 decode; d24's step where asked
py="$(command -v python3 || command -v python || true)"
# nanochat KIND SECONDS ARGS…: gpu-nanochat-bench.py's JSON lines, with nvidia-smi's peak over the run
nanochat() {
  local kind=$1 t=$2 rc peak
  shift 2
  smi_start
  # nanochat prints lines of its own to stdout: only the JSON ones go to the jsonl, all of them to the log
  timeout -k 10 "$t" "$py" "$pack/gpu-nanochat-bench.py" --src "$pack/nanochat_src" "$@" > "$out/$kind.out" 2>> "$log"
  rc=$?
  grep -E '^\{' "$out/$kind.out" >> "$jsonl"
  cat "$out/$kind.out" >> "$log"
  peak=$(smi_peak)
  json "{\"kind\":\"$kind-run\",\"exit\":$rc,\"peak_gpu_mem_gib\":$peak}"
  say "$kind exit $rc, peak $peak GiB (nvidia-smi)"
}
if ! want nanochat && ! want d24; then :
elif [ -z "$py" ] || [ ! -d "$pack/nanochat_src" ] || [ ! -f "$pack/gpu-nanochat-bench.py" ]; then
  say "nanochat side-by-side skipped: python ${py:-missing}, nanochat_src/gpu-nanochat-bench.py in the pack?"
  json "{\"kind\":\"nanochat\",\"skipped\":\"no python or no nanochat_src\"}"
else
  if want nanochat && t=$(stage nanochat 120); then
    say "nanochat (torch) d20 decode + d12 train 30 steps (${t}s) ..."
    nanochat nanochat "$t" --depth 12 --batch 32 --steps 30 --decode-depth 20
  fi
  if want d24 && t=$(stage nanochat-d24 150); then
    say "nanochat (torch) d24 train, batch 16, 12 steps (${t}s) ..."
    nanochat nanochat-d24 "$t" --part train --depth 24 --batch 16 --steps 12
  fi
fi

# ---- 8. the gradient all-reduce's share of a step: two ranks over the ring, one a GPU where there are two
if [ "$tokok" -eq 1 ] && want allreduce && t=$(stage allreduce 100); then
  say "launch --nproc 2 base-train --device cuda d12, 2 ranks x 16 x 2048, bf16, 10 steps, $gpus GPU(s) (${t}s) ..."
  train allreduce "$t" "$out/allreduce.log" 12 16 10 launch --nproc 2
fi

# ---- 9. our GEMM beside cuBLAS on the backward's products (dx, dW) of every d12/d20/d24 layer, in what time is left
if want gemm-bwd && t=$(stage gemm-bwd 120); then
  say "bench kernels --device cuda --ops gemm-bwd (${t}s) ..."
  timeout -k 10 "$t" "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench kernels --device cuda --ops gemm-bwd --json >> "$jsonl" 2>> "$log"
  rc=$?
  say "bench kernels gemm-bwd exit $rc"
  # a timeout here is no failure: the rows printed so far count (the last stage of a call, it takes what is left)
  [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ] || { failed=1; json "{\"kind\":\"bench-gemm-bwd\",\"exit\":$rc}"; }
fi

# ---- the driver JIT's own ptxas report on our modules (CudaContext asks for it at each module load, JitLog reads it):
# spills or serialized wgmma pipelines there that nvcc's build did not have (KernelCompileTest) cost speed silently
jitw=$(cat "$out"/*.log 2>/dev/null | grep -h "cuda: warning: .*the driver's JIT" | sort -u)
if [ -n "$jitw" ]; then
  say "the driver's JIT: $(echo "$jitw" | wc -l) spill or wgmma serialization warning(s) on our kernels:"
  echo "$jitw" | head -n 8 | while IFS= read -r line; do say "  $line"; done
  json "{\"kind\":\"jit-warnings\",\"count\":$(echo "$jitw" | wc -l)}"
else
  say "the driver's JIT: no spill or serialized wgmma pipeline in the modules it compiled (none where its cache held them)"
  json '{"kind":"jit-warnings","count":0}'
fi

# ---- the issues' targets beside this run's figures, ours against nanochat's (a report: the exit status ignores it);
# an earlier call's figures first where GPU_CHECK_EARLIER names its jsonl (this run's replace them where both measured)
runs=("$jsonl")
if [ -n "${GPU_CHECK_EARLIER:-}" ]; then
  if [ -f "$GPU_CHECK_EARLIER" ]; then runs=("$GPU_CHECK_EARLIER" "$jsonl"); say "targets with the earlier call's figures in $GPU_CHECK_EARLIER"
  else say "GPU_CHECK_EARLIER=$GPU_CHECK_EARLIER: no such file; the targets are this run's alone"; fi
fi
if timeout -k 5 30 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench gpu-targets "${runs[@]}" > "$work/targets.txt" 2>> "$log"; then
  while IFS= read -r line; do say "$line"; done < "$work/targets.txt"
  timeout -k 5 30 "$java" "${flags[@]}" -jar "$pack/nanochat4j.jar" bench gpu-targets --json "${runs[@]}" > "$work/targets.json" 2>> "$log"
  cat "$work/targets.json" >> "$jsonl"
else
  say "bench gpu-targets failed (see the log)"
fi

say "done in $(( $(date +%s) - t_start ))s of the ${budget}s budget"
cat "$jsonl" >> "$log"
exit "$failed"
