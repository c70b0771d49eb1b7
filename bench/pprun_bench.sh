#!/usr/bin/env bash
# pprun_bench.sh — the CPU runtime's figures, in one run: replay overhead
# per op (hidden 1, many micro-batches, so compute is nearly free), the CPU
# backend's GEMM GFLOP/s at the micro-batch shapes, and what a 1F1B replay
# of a real-size model achieves.  Plans come from ppcc.
#   bench/pprun_bench.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ppcc=$build/compiler/ppcc
bench=$build/bench/pprun_bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "pprun (CPU) benchmark, $(nproc) cores, $(date -u +%Y-%m-%d)"
for dev in 2 4; do
    "$ppcc" "$root/schedules/1f1b.pp" -D devices=$dev -D layers=$dev -D hidden=1 \
        -D microbatches=2048 -D batch=2048 -o "$tmp/ov.json"
    "$bench" overhead "$tmp/ov.json" 10
done
for h in 512 1024; do
    "$bench" gemm 64 $h $h 5
    "$ppcc" "$root/schedules/1f1b.pp" -D devices=2 -D layers=4 -D hidden=$h \
        -D microbatches=8 -D batch=512 -o "$tmp/model.json"
    "$bench" model "$tmp/model.json" 3
done
