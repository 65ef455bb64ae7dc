#!/usr/bin/env bash
# nanochat's runs/miniseries.sh: a series of compute-optimal base models, one per depth (the horizon each depth's
# dial derives, --target-param-data-ratio), with final val bpb; then `nanochat4j scaling` gathers them into
# results.csv, scaling.md (val bpb against training FLOPs) and scaling.png in $NANOCHAT_BASE_DIR/<series>_miniseries_results.
#
#   runs/miniseries.sh [series_name] [--data DIR]      (series_name defaults to today's date, e.g. dec07)
#
# A finished depth (base_checkpoints/<series>_miniseries_d<depth> holds its checkpoint) is skipped; delete the folder
# to run it again. DEVICE=cuda|cpu (default: cuda where an NVIDIA driver is present), NPROC GPU workers (default:
# every GPU). Sizes (env): DEPTHS (GPU: nanochat's 12 14 … 26; CPU: 1 2 3 with a 2048-token vocabulary, 256-token
# rows, 2,048 tokens a step), RATIO (tokens per scaling param, base-train's default 12), KEEP_WEIGHTS=0 (delete each
# run's weights and optimizer state once it finished), EVAL_TOKENS, CORE_PER_TASK (CORE examples per task at the end:
# GPU -1 = all, as nanochat; CPU off), VOCAB, SEQ, DEVICE_BATCH, TOTAL_BATCH, WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
SERIES="${SERIES_NAME:-$(date +%b%d | tr '[:upper:]' '[:lower:]')}"
DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --data=*) DATA="${1#--data=}"; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "miniseries.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    *) SERIES="$1"; shift ;;
  esac
done
. runs/sweep-lib.sh
sweep_device
if [ "$DEVICE" = cuda ]; then
  DEPTHS="${DEPTHS:-12 14 16 18 20 22 24 26}" RATIO="${RATIO:-12}" VOCAB="${VOCAB:-32768}" EVAL_TOKENS="${EVAL_TOKENS:-$((80 * 524288))}"
  SHARDS="${SHARDS:-370}" CORE_PER_TASK="${CORE_PER_TASK:--1}"
else
  DEPTHS="${DEPTHS:-1 2 3}" RATIO="${RATIO:-12}" VOCAB="${VOCAB:-2048}" EVAL_TOKENS="${EVAL_TOKENS:-65536}" SEQ="${SEQ:-256}"
  DEVICE_BATCH="${DEVICE_BATCH:-8}" TOTAL_BATCH="${TOTAL_BATCH:-2048}" WARMUP="${WARMUP:-10}"
fi
PREFIX="${SERIES}_miniseries_"
RESULTS="$NANOCHAT_BASE_DIR/${PREFIX}results"
mkdir -p "$RESULTS"
./nanochat4j --version
sweep_data
for d in $DEPTHS; do
  tag="${PREFIX}d${d}"
  if sweep_done "$tag"; then echo "miniseries.sh: $tag already finished"; continue; fi
  sweep_train "$tag" "$d" --target-param-data-ratio "$RATIO" || failed+=("$tag")
done
./nanochat4j scaling --prefix "$PREFIX" --out "$RESULTS"
sweep_failed
