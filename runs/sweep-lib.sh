# What runs/scaling_laws.sh and runs/miniseries.sh share (sourced, not run): the device and its workers, the data,
# the tokenizer, one base-train run of a sweep, and whether a run already finished.
export NANOCHAT_BASE_DIR="${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat4j}"

# DEVICE: cuda where an NVIDIA driver is present, else cpu; NPROC: the GPUs this job may use (CUDA_VISIBLE_DEVICES,
# else the driver's, else 1), one base-train worker each over the ring; 1 on the CPU
sweep_device() {
  if [ -z "${DEVICE:-}" ]; then
    if [ -e /proc/driver/nvidia/version ] || nvidia-smi -L > /dev/null 2>&1; then DEVICE=cuda; else DEVICE=cpu; fi
  fi
  case "$DEVICE" in cpu|cuda) ;; *) echo "$0: DEVICE=$DEVICE: cpu or cuda" >&2; exit 2 ;; esac
  if [ -z "${NPROC:-}" ]; then
    NPROC=1
    if [ "$DEVICE" = cuda ]; then
      if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then NPROC=$(tr ',' '\n' <<< "$CUDA_VISIBLE_DEVICES" | grep -c . || true)
      else NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true); fi
      [ "$NPROC" -ge 1 ] 2>/dev/null || NPROC=1
    fi
  fi
  if [ "$NPROC" -gt 1 ]; then RUN=(./nanochat4j launch --nproc "$NPROC"); else RUN=(./nanochat4j); fi
}

# DATA: --data DIR, else ClimbMix shards in the base dir, else (CPU) ../shared's Gutenberg books, else SHARDS shards
# downloaded; then a tokenizer of VOCAB tokens in the base dir unless one is there (one tokenizer for the whole sweep)
sweep_data() {
  local shards="$NANOCHAT_BASE_DIR/base_data_climbmix" books=../shared/data/pretrain_text/gutenberg_books
  if [ -n "${DATA:-}" ]; then
    [ -d "$DATA" ] || { echo "$0: --data $DATA is not a directory" >&2; exit 1; }
  elif [ "$(ls "$shards"/shard_*.parquet 2>/dev/null | wc -l)" -ge "${SHARDS:-2}" ]; then
    DATA="$shards"
  elif [ "$DEVICE" = cpu ] && [ -d "$books" ]; then
    DATA="$books"
  else
    ./nanochat4j dataset -n "${SHARDS:-2}"
    DATA="$shards"
  fi
  echo "$0: data from $DATA"
  if [ -f "$NANOCHAT_BASE_DIR/tokenizer/tokenizer.bpe" ]; then
    echo "$0: the tokenizer already in $NANOCHAT_BASE_DIR/tokenizer (delete it for a new one of VOCAB=$VOCAB tokens)"
  else
    ./nanochat4j tok-train --data "$DATA" --vocab-size "$VOCAB"
  fi
}

# a run that fails (out of memory at one depth, say) does not stop the sweep: it is named at the end, and the exit is 1
failed=()
sweep_failed() {
  [ "${#failed[@]}" -eq 0 ] && return 0
  echo "$0: ${#failed[@]} run(s) failed, their logs in $RESULTS: ${failed[*]}" >&2
  exit 1
}

# whether base_checkpoints/TAG holds a finished run: base-train writes a meta file last, and only at the end here
sweep_done() { compgen -G "$NANOCHAT_BASE_DIR/base_checkpoints/$1/meta_*.json" > /dev/null; }

# sweep_train TAG DEPTH ARGS…: one base-train of the sweep (its log beside the results), the device's sizes, final val bpb
# (and CORE on CORE_PER_TASK examples a task unless it is off), no samples, one checkpoint at the end
sweep_train() {
  local tag=$1 depth=$2 sizes core=()
  shift 2
  if [ "$DEVICE" = cuda ]; then
    # nanochat's: 2048-token rows, device batch 32 (16 from depth 20, 8 from 28), the derived total batch
    local db=32
    [ "$depth" -ge 20 ] && db=16
    [ "$depth" -ge 28 ] && db=8
    sizes=(--device cuda --device-batch-size "${DEVICE_BATCH:-$db}")
  else
    sizes=(--device cpu --head-dim 64 --window-pattern L --max-seq-len "$SEQ" --device-batch-size "$DEVICE_BATCH"
      --total-batch-size "$TOTAL_BATCH" --warmup-steps "$WARMUP")
  fi
  core=(--core-metric-every -1)
  [ "${CORE_PER_TASK:-off}" = off ] || core=(--core-metric-every 999999 --core-metric-max-per-task "$CORE_PER_TASK")
  echo "[$(date '+%F %T')] $0: $tag"
  "${RUN[@]}" base-train --depth "$depth" "${sizes[@]}" "$@" --model-tag "$tag" --data "$DATA" --eval-every 999999 \
    --eval-tokens "$EVAL_TOKENS" "${core[@]}" --sample-every -1 --save-every -1 2>&1 | tee "$RESULTS/$tag.log" || return 1
  # KEEP_WEIGHTS=0: only the meta file, metrics and chart stay (what `scaling` reads); a GPU sweep's weights and
  # optimizer state run to hundreds of GB
  local dir="$NANOCHAT_BASE_DIR/base_checkpoints/$tag"
  if [ "${KEEP_WEIGHTS:-1}" = 0 ]; then rm -f "$dir"/model_*.safetensors "$dir"/optim_*.safetensors; fi
}
