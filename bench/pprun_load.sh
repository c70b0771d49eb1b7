#!/usr/bin/env bash
# pprun_load.sh — the plan loader's time and memory: 2-device GPipe plans
# from ppcc with group ids as written (ascending) and renumbered downwards
# (once quadratic), at 131k and 524k ops, then a 468 MB plan (6.8 M ops)
# for the peak RSS of loading it.  Times are the best CPU time of 3 loads
# in one process (pprun_bench load).
#   bench/pprun_load.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
ppcc=$build/compiler/ppcc
bench=$build/bench/pprun_bench
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "pprun plan loading, $(nproc) cores, $(date -u +%Y-%m-%d)"
for m in 16384 65536; do
    "$ppcc" "$root/schedules/gpipe.pp" -D devices=2 -D microbatches=$m -D batch=$m -D hidden=1 \
        -o "$tmp/up.json"
    awk '{ if (match($0, /"group": [0-9]+/)) {
             n = substr($0, RSTART + 9, RLENGTH - 9)
             $0 = substr($0, 1, RSTART - 1) "\"group\": " (1000000000 - n) substr($0, RSTART + RLENGTH) }
           print }' "$tmp/up.json" >"$tmp/down.json"
    echo "groups ascending:  $("$bench" load "$tmp/up.json" 3)"
    echo "groups descending: $("$bench" load "$tmp/down.json" 3)"
done
rm -f "$tmp/up.json" "$tmp/down.json"
"$ppcc" "$root/schedules/gpipe.pp" -D devices=2 -D microbatches=856064 -D batch=856064 -D hidden=1 \
    -o "$tmp/big.json"
echo "$(($(stat -c %s "$tmp/big.json") / 1000000)) MB plan: $("$bench" load "$tmp/big.json" 1)"
