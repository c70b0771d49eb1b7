#!/usr/bin/env bash
# ppcc_instructions.sh — the instructions ppcc executes writing the plan of
# 64 devices x 4 chunks x M micro-batches (interleaved, -o - to /dev/null),
# M doubling from 128 to MAX_M (default 1024), counted by valgrind's
# callgrind: a figure that no other load on the machine changes, so it
# tells whether ppcc's own work grows linearly ("x": ratio to the row
# above, 2.00 for linear).  What the kernel does for ppcc (page faults,
# the page cache) is not counted: bench/ppcc_scaling.sh times that.
# Skips (exit 0, a note) without valgrind.  About a minute.
#   bench/ppcc_instructions.sh [PPCC] [MAX_M]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ppcc=${1:-$root/build/compiler/ppcc}
max_m=${2:-1024}
if ! command -v valgrind >/dev/null; then
    echo "ppcc_instructions: valgrind not found, skipped"
    exit 0
fi
sched="$root/schedules/interleaved.pp"
defs=(-D devices=64 -D virtual=4 -D layers=256 -D schedule.group=64)
echo "ppcc instructions: 64 devices x 4 chunks, interleaved, writing the plan (-o -)"
printf '%6s %10s %16s %6s %14s\n' M ops instructions x "per op"
prev=""
for ((M = 128; M <= max_m; M *= 2)); do
    args=("$sched" "${defs[@]}" -D microbatches=$M -D batch=$((M * 4)))
    ops=$("$ppcc" "${args[@]}" --stats | sed -n 's/.* ops=\([0-9]*\).*/\1/p')
    ir=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$ppcc" "${args[@]}" -o - 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p')
    x=$([ -n "$prev" ] && awk -v a="$ir" -v b="$prev" 'BEGIN { printf "%.3f", a / b }' || echo -)
    printf '%6d %10d %16d %6s %14.1f\n' "$M" "$ops" "$ir" "$x" "$(awk -v a="$ir" -v b="$ops" 'BEGIN { print a / b }')"
    prev=$ir
done
