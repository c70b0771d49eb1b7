#!/usr/bin/env bash
# ppcc_scaling.sh — whole-process time of ppcc on large interleaved
# pipelines: 64 devices x 4 chunks x M micro-batches, M = 128..1024,
# writing the plan (-o) and with --stats only.  Each figure is the best
# of N runs; the ratios between rows are taken in this one run.
#   bench/ppcc_scaling.sh [PPCC] [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ppcc=${1:-$root/build/compiler/ppcc}
runs=${2:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$root/bench/lib.sh"

sched="$root/schedules/interleaved.pp"
defs=(-D devices=64 -D virtual=4 -D layers=256 -D schedule.group=64)
echo "ppcc scaling: 64 devices x 4 chunks, interleaved, best of $runs ($(nproc) cores)"
printf '%6s %10s %12s %12s %10s\n' M ops "plan (ms)" "stats (ms)" "ms/1k mb"
base=""
for M in 128 256 512 1024; do
    b=$((M * 4))
    ops=$("$ppcc" "$sched" "${defs[@]}" -D microbatches=$M -D batch=$b --stats | sed -n 's/.* ops=\([0-9]*\).*/\1/p')
    plan=$(best_ms "$runs" "$ppcc" "$sched" "${defs[@]}" -D microbatches=$M -D batch=$b -o "$tmp/plan.json")
    stats=$(best_ms "$runs" "$ppcc" "$sched" "${defs[@]}" -D microbatches=$M -D batch=$b --stats)
    per=$(awk -v t="$plan" -v m="$M" 'BEGIN { printf "%.1f", t / m * 1000 }')
    printf '%6d %10s %12s %12s %10s\n' "$M" "$ops" "$plan" "$stats" "$per"
done
ls -l "$tmp/plan.json" | awk '{ printf "plan size for M=1024: %.1f MB\n", $5 / 1e6 }'
