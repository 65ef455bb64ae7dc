#!/usr/bin/env bash
# nanochat's runs/speedrun.sh for one GPU node: dataset → tokenizer → base-train on CUDA (one worker per GPU over
# the ring) → base-eval → the chat stages this build has. Sized by the depth dial like nanochat.
#
#   runs/speedrun.sh [--depth N] [--nproc N] [--device-batch-size N] [--precision bf16|fp32] [--quick] [--rl]
#
# --depth 24 is nanochat's speedrun model (default); --quick is the d12 variant (depth 12, fewer shards, fewer
# CORE examples). --nproc defaults to the GPUs this job may use (CUDA_VISIBLE_DEVICES, else the driver's; 1 when
# it cannot tell). Data: ClimbMix shards in $NANOCHAT_BASE_DIR/base_data_climbmix (downloaded when missing) or
# --data DIR. --precision: the linear layers' operands (bf16 as nanochat on CUDA, the default; fp32 master weights),
# for every stage that runs a model. --rl adds chat-rl on GSM8K and its evaluation (optional in nanochat's too).
set -euo pipefail
cd "$(dirname "$0")/.."

DEPTH=24
NPROC=""
DEVICE_BATCH=16
SHARDS=170
DATA=""
CORE_MAX=-1
PRECISION=bf16
RL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --depth) DEPTH="$2"; shift 2 ;;
    --depth=*) DEPTH="${1#--depth=}"; shift ;;
    --nproc) NPROC="$2"; shift 2 ;;
    --nproc=*) NPROC="${1#--nproc=}"; shift ;;
    --device-batch-size) DEVICE_BATCH="$2"; shift 2 ;;
    --device-batch-size=*) DEVICE_BATCH="${1#--device-batch-size=}"; shift ;;
    --precision) PRECISION="$2"; shift 2 ;;
    --precision=*) PRECISION="${1#--precision=}"; shift ;;
    --data) DATA="$2"; shift 2 ;;
    --data=*) DATA="${1#--data=}"; shift ;;
    --rl) RL=1; shift ;;
    --quick) DEPTH=12; DEVICE_BATCH=32; SHARDS=24; CORE_MAX=500; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "speedrun.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
export NANOCHAT_BASE_DIR="${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat4j}"
if [ -z "$NPROC" ]; then
  # the GPUs this job may use: its CUDA_VISIBLE_DEVICES list, else the driver's /proc folders, else nvidia-smi
  # (containers often mount neither /proc/driver/nvidia nor all of it)
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    NPROC=$(tr ',' '\n' <<< "$CUDA_VISIBLE_DEVICES" | grep -c .)
  else
    NPROC=$(ls -d /proc/driver/nvidia/gpus/* 2>/dev/null | wc -l)
    if [ "$NPROC" -eq 0 ] && command -v nvidia-smi > /dev/null; then
      NPROC=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    fi
  fi
  [ "$NPROC" -ge 1 ] || NPROC=1
fi
[ -e /proc/driver/nvidia/version ] || command -v nvidia-smi > /dev/null || echo "speedrun.sh: no NVIDIA driver here; base-train --device cuda will say why it cannot run" >&2

./nanochat4j --version
if [ -z "$DATA" ]; then
  DATA="$NANOCHAT_BASE_DIR/base_data_climbmix"
  ./nanochat4j dataset -n 8                      # enough for the tokenizer
  ./nanochat4j dataset -n "$SHARDS" &            # the rest while the tokenizer trains
  DOWNLOAD=$!
fi
./nanochat4j tok-train --data "$DATA"
./nanochat4j tok-eval --data "$DATA" || echo "speedrun.sh: tok-eval failed (its code/chat texts live in ../shared); continuing" >&2
[ -n "${DOWNLOAD:-}" ] && wait "$DOWNLOAD"

TAG="d$DEPTH"
if [ "$NPROC" -gt 1 ]; then RUN=(./nanochat4j launch --nproc "$NPROC"); else RUN=(./nanochat4j); fi
"${RUN[@]}" base-train --device cuda --precision "$PRECISION" --depth "$DEPTH" --target-param-data-ratio 8 --device-batch-size "$DEVICE_BATCH" \
  --data "$DATA" --model-tag "$TAG" --core-metric-max-per-task "$CORE_MAX"
./nanochat4j base-eval --model-tag "$TAG" --device-batch-size "$DEVICE_BATCH" --max-per-task "$CORE_MAX" --precision "$PRECISION"

# chat stages: a stage gets --device cuda (and --precision) when its --help offers it, else it runs on its default
# device (said here)
has() { ./nanochat4j "$1" --help > /dev/null 2>&1; }
offers() { ./nanochat4j "$1" --help 2>&1 | grep -q -- "$2"; }
dev() {
  if offers "$1" --device; then echo --device cuda; else echo "speedrun.sh: $1 has no --device flag: it runs on the CPU" >&2; fi
  if offers "$1" --precision; then echo --precision "$PRECISION"; fi
}
if has chat-data; then ./nanochat4j chat-data; else echo "speedrun.sh: this build has no 'chat-data' stage; skipped" >&2; fi
if has chat-sft; then
  # shellcheck disable=SC2046
  "${RUN[@]}" chat-sft --model-tag "$TAG" --device-batch-size "$DEVICE_BATCH" $(dev chat-sft)
else
  echo "speedrun.sh: this build has no 'chat-sft' stage; skipped" >&2
fi
if has chat-eval; then
  # shellcheck disable=SC2046
  ./nanochat4j chat-eval -i sft -g "$TAG" $(dev chat-eval)
else
  echo "speedrun.sh: this build has no 'chat-eval' stage; skipped" >&2
fi
if [ "$RL" = 1 ]; then
  # shellcheck disable=SC2046
  "${RUN[@]}" chat-rl --model-tag "$TAG" $(dev chat-rl)
  # shellcheck disable=SC2046
  ./nanochat4j chat-eval -i rl -g "$TAG" -a GSM8K $(dev chat-eval)
fi
if has report; then ./nanochat4j report; fi
echo "speedrun.sh: done. Talk to the model: ./nanochat4j chat -g $TAG   (or ./nanochat4j serve)"
