#!/bin/sh
# Run a libFuzzer target for a bounded time on a scratch copy of its seed corpus.
# Usage: run-fuzz.sh TARGET SEED_DIR SECONDS
set -eu
target=$1 seeds=$2 seconds=$3
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
cp "$seeds"/* "$corpus"/
"$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
        -print_final_stats=1 "$corpus"
