#!/usr/bin/env bash
# nanochat's runs/scaling_laws.sh: IsoFLOP profiles. For each FLOP budget, base-train at each depth for exactly that
# budget (--target-flops) and its final val bpb; then `nanochat4j scaling` fits the compute-optimal model of each
# budget (a parabola in ln params) and the power laws across budgets: results.csv (nanochat's columns), scaling.md,
# scaling.png in $NANOCHAT_BASE_DIR/scaling_<label>_results.
#
#   runs/scaling_laws.sh [--label NAME] [--data DIR]
#
# A run already finished (base_checkpoints/scaling_<label>_<budget>_d<depth> holds its checkpoint) is skipped, so a
# stopped sweep goes on where it stopped; delete a folder to run it again. DEVICE=cuda|cpu (default: cuda where an
# NVIDIA driver is present), NPROC GPU workers (default: every GPU). Sizes (env): FLOPS_BUDGETS and DEPTHS; on the GPU
# nanochat's (1e18 2.15e18 4.64e18 1e19; depths 10-20); on the CPU a sweep of tiny models, 1e13 3e13 1e14 at depths
# 1-4 (2048-token vocabulary, 256-token rows, 2,048 tokens a step). KEEP_WEIGHTS=0 deletes each run's weights and
# optimizer state once it finished (a GPU sweep's come to hundreds of GB). EVAL_TOKENS (final val bpb), CORE_PER_TASK
# (CORE examples per task at the end: GPU -1 = all, as nanochat; CPU off), VOCAB, SEQ, DEVICE_BATCH, TOTAL_BATCH, WARMUP.
set -euo pipefail
cd "$(dirname "$0")/.."
LABEL="$(date +%b%d | tr '[:upper:]' '[:lower:]')"
DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --label) LABEL="$2"; shift 2 ;;
    --label=*) LABEL="${1#--label=}"; shift ;;
    --data) DATA="$2"; shift 2 ;;
    --data=*) DATA="${1#--data=}"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "scaling_laws.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
. runs/sweep-lib.sh
sweep_device
if [ "$DEVICE" = cuda ]; then
  FLOPS_BUDGETS="${FLOPS_BUDGETS:-1e18 2.15e18 4.64e18 1e19}" DEPTHS="${DEPTHS:-10 12 14 16 18 20}"
  VOCAB="${VOCAB:-32768}" EVAL_TOKENS="${EVAL_TOKENS:-$((100 * 524288))}" SHARDS="${SHARDS:-370}" CORE_PER_TASK="${CORE_PER_TASK:--1}"
else
  FLOPS_BUDGETS="${FLOPS_BUDGETS:-1e13 3e13 1e14}" DEPTHS="${DEPTHS:-1 2 3 4}"
  VOCAB="${VOCAB:-2048}" EVAL_TOKENS="${EVAL_TOKENS:-65536}" SEQ="${SEQ:-256}" DEVICE_BATCH="${DEVICE_BATCH:-8}"
  TOTAL_BATCH="${TOTAL_BATCH:-2048}" WARMUP="${WARMUP:-10}"
fi
PREFIX="scaling_${LABEL}_"
RESULTS="$NANOCHAT_BASE_DIR/${PREFIX}results"
mkdir -p "$RESULTS"
./nanochat4j --version
sweep_data
for flops in $FLOPS_BUDGETS; do
  for d in $DEPTHS; do
    tag="${PREFIX}${flops}_d${d}"
    if sweep_done "$tag"; then echo "scaling_laws.sh: $tag already finished"; continue; fi
    # the horizon from the budget alone (nanochat's --target-param-data-ratio=-1 here)
    sweep_train "$tag" "$d" --target-flops "$flops" --target-param-data-ratio -1 || failed+=("$tag")
  done
done
./nanochat4j scaling --prefix "$PREFIX" --out "$RESULTS"
sweep_failed
