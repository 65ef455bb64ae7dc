#!/usr/bin/env bash
# Runs the whole test suite (all modules) with a JDK >= 25, then the GPU tests on cudasim, the CPU simulation of the
# CUDA driver (scripts/cuda-sim-checks.sh: the CUDA kernels themselves, without a GPU). Extra arguments go to Maven.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/jdk.sh
nanochat4j_find_jdk
./mvnw -B -ntp install "$@" # verify, and the modules installed for the cudasim stage's per-module run
if [ "$(uname -s)" != Linux ]; then
  echo "test: the CUDA kernels' tests on cudasim run on Linux only: skipped" >&2
elif command -v g++ > /dev/null; then
  exec scripts/cuda-sim-checks.sh --installed
elif [ "${CI:-}" = true ]; then
  echo "test: g++ not found (apt-get install g++): the CUDA kernels' tests on cudasim cannot run" >&2
  exit 1
else
  echo "test: g++ not found: the CUDA kernels' tests on cudasim skipped (apt-get install g++ to run them)" >&2
fi
