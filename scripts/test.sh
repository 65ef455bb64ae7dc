#!/usr/bin/env bash
# Runs the whole test suite (all modules) with a JDK >= 25. Extra arguments go to Maven.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/jdk.sh
nanochat4j_find_jdk
exec ./mvnw -B -ntp verify "$@"
