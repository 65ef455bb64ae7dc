#!/usr/bin/env bash
# The main job: a tiny end-to-end nanochat run on CPU (nanochat's runs/runcpu.sh, scaled to a 2-core machine).
# Like nanochat's, its sizes are tuned to a time budget, 20 minutes on a 2-core AVX2 machine (README says how close it comes).
# Each stage of the pipeline adds its step here.
#
#   runs/runcpu.sh [--data DIR]
#
# Data: --data DIR if given, else downloaded shards in $NANOCHAT_BASE_DIR/base_data_climbmix, else
# ../shared/data/pretrain_text/gutenberg_books, else a few shards are downloaded. Sizes can be overridden for a
# quick run: DEPTH, SEQ, DEVICE_BATCH, TOTAL_BATCH, STEPS, EVAL_EVERY, EVAL_TOKENS, VOCAB, TOK_CHARS; for the chat stages
# SFT_STEPS, RL_STEPS, EVAL_PROBLEMS and TASK_DATA (ARC/MMLU/GSM8K/HumanEval/alpaca files, default ../shared/data when present).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=""
while [ $# -gt 0 ]; do
  case "$1" in
    --data) DATA="$2"; shift 2 ;;
    --data=*) DATA="${1#--data=}"; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "runcpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

export NANOCHAT_BASE_DIR="${NANOCHAT_BASE_DIR:-$HOME/.cache/nanochat4j}"
DEPTH="${DEPTH:-4}"
SEQ="${SEQ:-512}"
DEVICE_BATCH="${DEVICE_BATCH:-8}"
TOTAL_BATCH="${TOTAL_BATCH:-4096}"
STEPS="${STEPS:-400}"
EVAL_EVERY="${EVAL_EVERY:-100}"
EVAL_TOKENS="${EVAL_TOKENS:-16384}"
VOCAB="${VOCAB:-8192}"
TOK_CHARS="${TOK_CHARS:-20000000}"

# Each stage prints its wall time, so a run that misses the budget says where the minutes went.
start=$SECONDS lap=$SECONDS
took() { echo "runcpu.sh: $1 took $((SECONDS - lap)) s (run so far $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s)"; lap=$SECONDS; }

./nanochat4j --version

# 1) data
shards="$NANOCHAT_BASE_DIR/base_data_climbmix"
books="../shared/data/pretrain_text/gutenberg_books"
if [ -n "$DATA" ]; then
  [ -d "$DATA" ] || { echo "runcpu.sh: --data $DATA is not a directory" >&2; exit 1; }
elif [ "$(ls "$shards"/shard_*.parquet 2>/dev/null | wc -l)" -ge 2 ]; then
  DATA="$shards"
elif [ -d "$books" ]; then
  DATA="$books"
elif ./nanochat4j dataset -n 2; then
  DATA="$shards"
else
  cat >&2 <<EOF
runcpu.sh: no training data, and the shards could not be downloaded (offline?). Options:
  - runs/runcpu.sh --data DIR     a folder of *.parquet (text column), *.jsonl (text field) or *.txt files;
                                  the last file by name is the validation split
  - ./nanochat4j dataset -n 8     download ClimbMix shards to $shards (needs internet)
  - place ../shared/data/pretrain_text/gutenberg_books beside the checkout
EOF
  exit 1
fi
echo "runcpu.sh: training data from $DATA"

# 2) tokenizer
./nanochat4j tok-train --data "$DATA" --vocab-size "$VOCAB" --max-chars "$TOK_CHARS"
took "data + tokenizer"

# 3) a tiny base model: its val bpb and greedy samples of nanochat's 7 prompts
./nanochat4j base-train --depth="$DEPTH" --head-dim=64 --window-pattern=L --max-seq-len="$SEQ" \
  --device-batch-size="$DEVICE_BATCH" --total-batch-size="$TOTAL_BATCH" --num-iterations="$STEPS" \
  --warmup-steps=10 --eval-every="$EVAL_EVERY" --eval-tokens="$EVAL_TOKENS" --core-metric-every=-1 --sample-every="$STEPS" \
  --data="$DATA" --model-tag=runcpu
took "base-train"
echo "runcpu.sh: checkpoints, metrics.jsonl and base_train.png in $NANOCHAT_BASE_DIR/base_checkpoints/runcpu"

# 4) evaluate it: CORE on the bundle (16 examples per task), bpb on both splits, samples
BUNDLE="${BUNDLE:-}"
if [ -z "$BUNDLE" ]; then
  if [ -f "$NANOCHAT_BASE_DIR/eval_bundle/core.yaml" ]; then BUNDLE="$NANOCHAT_BASE_DIR/eval_bundle";
  elif [ -f ../shared/data/core_eval_bundle/core.yaml ]; then BUNDLE=../shared/data/core_eval_bundle; fi
fi
if [ -n "$BUNDLE" ]; then
  ./nanochat4j base-eval -g runcpu --bundle "$BUNDLE" --max-per-task "${CORE_PER_TASK:-16}" --device-batch-size "$DEVICE_BATCH" \
    --split-tokens "$EVAL_TOKENS" --data "$DATA"
else
  echo "runcpu.sh: no CORE eval bundle (./nanochat4j base-eval --download-bundle fetches it); evaluating bpb and samples only"
  ./nanochat4j base-eval -g runcpu --eval bpb,sample --device-batch-size "$DEVICE_BATCH" --split-tokens "$EVAL_TOKENS" --data "$DATA"
fi
took "base-eval"

# 5) talk to it (a base model continues the prompt; `./nanochat4j chat -i base -g runcpu` for an interactive session)
./nanochat4j chat -i base -g runcpu -t 0 -m 24 -p "The capital of France is"
took "chat (base)"

# 6) chat SFT on a small mixture (alpaca conversations + ARC train + GSM8K train), then the chat tasks on a few problems
TASK_DATA="${TASK_DATA:-}"
if [ -z "$TASK_DATA" ]; then
  if [ -d "$NANOCHAT_BASE_DIR/task_data/gsm8k" ]; then TASK_DATA="$NANOCHAT_BASE_DIR/task_data";
  elif [ -d ../shared/data/gsm8k ]; then TASK_DATA=../shared/data; fi
fi
if [ -z "$TASK_DATA" ]; then
  echo "runcpu.sh: no chat task data (TASK_DATA=DIR with arc/, mmlu/, gsm8k/, humaneval/, sft/); stopping after the base model"
  exit 0
fi
SFT_STEPS="${SFT_STEPS:-150}"
EVAL_PROBLEMS="${EVAL_PROBLEMS:-24}"
./nanochat4j chat-sft --model-tag=runcpu --max-seq-len="$SEQ" --device-batch-size="$DEVICE_BATCH" --total-batch-size="$TOTAL_BATCH" \
  --num-iterations="$SFT_STEPS" --eval-every="$EVAL_EVERY" --eval-tokens="$EVAL_TOKENS" --chatcore-every=-1 \
  --mmlu-epochs=1 --gsm8k-epochs=1 --task-data="$TASK_DATA"
took "chat-sft"
./nanochat4j chat-eval -i sft -g runcpu -x "$EVAL_PROBLEMS" -m 128 -b "$DEVICE_BATCH" --task-data="$TASK_DATA"
# multiple choice on ARC-Easy's first 200 test problems, against the 25% of guessing
./nanochat4j chat-eval -i sft -g runcpu -a ARC-Easy -x 200 -b "$DEVICE_BATCH" --task-data="$TASK_DATA"
took "chat-eval (sft)"

# 6b) a few RL steps on GSM8K from the SFT model (nanochat's chat_rl, scaled down), then GSM8K on the RL model
RL_STEPS="${RL_STEPS:-3}"
./nanochat4j chat-rl --model-tag=runcpu --num-steps="$RL_STEPS" --examples-per-step=2 --num-samples=4 --device-batch-size=4 \
  --max-new-tokens=64 --eval-every="$RL_STEPS" --eval-examples=8 --task-data="$TASK_DATA"
./nanochat4j chat-eval -i rl -g runcpu -a GSM8K -x "$EVAL_PROBLEMS" -m 128 --task-data="$TASK_DATA"
took "chat-rl + its eval"

# 7) the report card, and one answer from the chat model (the calculator tool runs inside the Engine)
./nanochat4j report
./nanochat4j chat -g runcpu -t 0 -m 64 -p "What is 12 times 7?"
took "report + chat"
echo "runcpu.sh: done in $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s"
