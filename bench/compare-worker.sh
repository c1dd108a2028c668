#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds helios-worker from a git revision (default: main) in a build directory of its own and
# measures it side by side with the worker of this tree's build directory, in one run:
#   bench/compare-worker.sh [REV] [worker-bench options, e.g. --rounds 7]
# BUILD names this tree's build directory (default: build).
set -eu

rev=${1:-main}
[ $# -gt 0 ] && shift
top=$(git rev-parse --show-toplevel)
build=${BUILD:-$top/build}
tmp=$(mktemp -d /tmp/helios-compare-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM

mkdir "$tmp/src"
git -C "$top" archive "$rev" | tar -x -C "$tmp/src"
meson setup "$tmp/build" "$tmp/src" >/dev/null
ninja -C "$tmp/build" worker/helios-worker >/dev/null
# Under ninja (bench-worker-compare) this tree is built already, and ninja must not be entered twice.
[ -n "${BUILT:-}" ] || ninja -C "$build" bench/worker-bench worker/helios-worker >/dev/null
echo "baseline: $rev ($(git -C "$top" rev-parse --short "$rev")); worker: $(git -C "$top" describe --always --dirty)"
"$build/bench/worker-bench" --worker "$build/worker/helios-worker" --baseline "$tmp/build/worker/helios-worker" "$@"
