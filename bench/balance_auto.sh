#!/usr/bin/env bash
# balance_auto.sh — the time of model.balance = auto (docs/costs.md) for 80
# layers on 8 devices x 32 micro-batches, every policy in its natural shape
# (v = 1 loop; interleaved, looped-bfs, interleaved-zb v = 2 loop; zbv,
# dualpipev v = 2 vshape), with skewed layers: a heavy embedding and head
# (loss), blocks of three costs in turn.  Each figure is the best of RUNS
# runs, wall and CPU time (user + system), with the makespan found against
# the even split's.  Then, for the rest of ppcc, 64 x 4 x 256 interleaved
# --stats (a file without layers), against OTHER_PPCC too when given (say,
# main's build): ratios taken in this one run.
#   bench/balance_auto.sh [PPCC] [RUNS] [OTHER_PPCC]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ppcc=${1:-$root/build/compiler/ppcc}
runs=${2:-5}
other=${3:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

. "$root/bench/lib.sh"

{
    echo "devices = 8"
    echo "microbatches = 32"
    echo "layer_costs {"
    echo "    embedding { F = 2  B = 2  activation = 1  weights = 8 }"
    for i in $(seq 0 77); do
        f=$(awk -v i="$i" 'BEGIN { print 1 + (i % 3) / 2 }')
        echo "    block { F = $f  B = $f  W = $f  activation = 2  weights = 1 }"
    done
    echo "    head { F = 6  B = 6  W = 1  activation = 4  weights = 8 }"
    echo "}"
    echo "model mlp { balance = auto }"
} >"$tmp/l80.pp"

echo "balance = auto: 80 layers, 8 devices x 32 micro-batches, best of $runs ($(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
printf '%-15s %-9s %8s %8s  %s\n' policy shape "wall ms" "cpu ms" "found"
for p in gpipe 1f1b zb-h1 zb-h2 pipedream 2bw auto interleaved looped-bfs interleaved-zb zbv dualpipev; do
    shape=() name="1 loop"
    case $p in
    interleaved | looped-bfs | interleaved-zb) shape=(-D virtual=2) name="2 loop" ;;
    zbv | dualpipev) shape=(-D virtual=2 -D placement=vshape) name="2 vshape" ;;
    esac
    args=("$tmp/l80.pp" -D schedule=$p "${shape[@]}" --stats)
    read -r w c _ _ <<<"$(best_times "$runs" "$ppcc" "${args[@]}")"
    found=$("$ppcc" "${args[@]}" 2>&1 >/dev/null | sed -n 's/^balance auto: \(.*\)/\1/p' | head -1)
    printf '%-15s %-9s %8s %8s  %s\n' "$p" "$name" "$w" "$c" "$found"
done

echo
echo "64 devices x 4 chunks x 256 micro-batches, interleaved, --stats, best of $runs"
args=("$root/schedules/interleaved.pp" -D devices=64 -D virtual=4 -D layers=256 -D schedule.group=64
      -D microbatches=256 -D batch=1024 --stats)
read -r w c _ _ <<<"$(best_times "$runs" "$ppcc" "${args[@]}")"
printf '%-10s wall %6s ms  cpu %6s ms\n' "this" "$w" "$c"
if [ -n "$other" ]; then
    read -r ow oc _ _ <<<"$(best_times "$runs" "$other" "${args[@]}")"
    printf '%-10s wall %6s ms  cpu %6s ms  (this / other cpu: %s)\n' "other" "$ow" "$oc" \
        "$(awk -v a="$c" -v b="$oc" 'BEGIN { printf "%.3f", a / b }')"
fi
