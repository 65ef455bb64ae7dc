#!/usr/bin/env bash
# The main job: a tiny end-to-end nanochat run on CPU. Each stage of the pipeline adds its step here.
set -euo pipefail
cd "$(dirname "$0")/.."
./nanochat4j --version
