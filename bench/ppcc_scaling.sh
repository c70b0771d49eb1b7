#!/usr/bin/env bash
# ppcc_scaling.sh — how ppcc's time grows with the plan: 64 devices x 4
# chunks, interleaved, M micro-batches doubling from 128 to MAX_M (default
# 2048), in three modes:
#   file   -o PLAN in a scratch directory (the disk, the page cache)
#   null   -o - to /dev/null: the same compilation and JSON, no file system
#   stats  --stats: no JSON at all
# and, for scale, "bytes": the CPU time of writing as many bytes as the plan
# into a file with head -c (the kernel's share of the file mode, no ppcc).
# Each figure is the best of RUNS runs: wall time, and CPU time (user +
# system; on a shared machine it varies less than wall time), with the
# user / system split of the file mode.  "x" is the ratio of CPU time to
# the row above: 2.00 for linear growth.  Ratios are taken in this one run.
#   bench/ppcc_scaling.sh [PPCC] [RUNS] [MAX_M]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ppcc=${1:-$root/build/compiler/ppcc}
runs=${2:-5}
max_m=${3:-2048}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$root/bench/lib.sh"

ratio() { if [ -n "$2" ]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi; }

sched="$root/schedules/interleaved.pp"
defs=(-D devices=64 -D virtual=4 -D layers=256 -D schedule.group=64)
echo "ppcc scaling: 64 devices x 4 chunks, interleaved, best of $runs ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
row='%6s %9s | %6s %6s %6s %6s %5s | %6s %6s %5s | %6s %6s %5s | %6s %5s\n'
printf "$row" "" "" file "" "" "" "" null "" "" stats "" "" bytes ""
printf "$row" M ops wall cpu user sys x wall cpu x wall cpu x cpu x
prev_f="" prev_n="" prev_s="" prev_b=""
for ((M = 128; M <= max_m; M *= 2)); do
    args=("$sched" "${defs[@]}" -D microbatches=$M -D batch=$((M * 4)))
    ops=$("$ppcc" "${args[@]}" --stats | sed -n 's/.* ops=\([0-9]*\).*/\1/p')
    read -r fw fc fu fs <<<"$(best_times "$runs" "$ppcc" "${args[@]}" -o "$tmp/plan.json")"
    read -r nw nc _ _ <<<"$(best_times "$runs" "$ppcc" "${args[@]}" -o -)"
    read -r sw sc _ _ <<<"$(best_times "$runs" "$ppcc" "${args[@]}" --stats)"
    size=$(stat -c %s "$tmp/plan.json")
    read -r _ bc _ _ <<<"$(best_times "$runs" sh -c 'head -c "$1" /dev/zero >"$2"' - "$size" "$tmp/bytes")"
    printf "$row" "$M" "$ops" "$fw" "$fc" "$fu" "$fs" "$(ratio "$fc" "$prev_f")" \
        "$nw" "$nc" "$(ratio "$nc" "$prev_n")" "$sw" "$sc" "$(ratio "$sc" "$prev_s")" "$bc" "$(ratio "$bc" "$prev_b")"
    prev_f=$fc prev_n=$nc prev_s=$sc prev_b=$bc
done
echo "times in ms; the plan for M=$max_m: $(($(stat -c %s "$tmp/plan.json") / 1000000)) MB"
