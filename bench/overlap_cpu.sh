#!/usr/bin/env bash
# overlap_cpu.sh — communication hidden behind compute, measured on the CPU
# through pprun's emulated link (docs/pprun.md, "Overlap") and compared with
# ppcc's prediction for the costs of the same run (docs/bench.md).
#   bench/overlap_cpu.sh [BUILD_DIR] [ROUNDS]
# For each schedule (SCHEDULES, default "1f1b gpipe"): the reference MLP,
# DEVICES devices (default 2: see docs/bench.md), 4 layers of hidden 512 a
# device, batch 1024 in 16 micro-batches.  A first run without a link
# measures a forward F; every transfer then costs F / 2 (--link-latency).
# The plan with overlap (ppcc's default) and without (-D overlap=false)
# are compiled for the costs of a measured run on that link (each stage's
# mean F and B over a calibration run's trace, in microseconds, and the
# latency as cost.comm: ppcc's lowering orders by them), then alternate
# ROUNDS times (default 3); a run's step time is the median of its steps
# after the first two, and each side's best run is kept.  The prediction
# is ppcc's makespan for those costs; --stats --measured gives the per-op
# error of the best run's last step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
ppcc=$build/compiler/ppcc
pprun=$build/runtime/pprun
devices=${DEVICES:-2}
schedules=${SCHEDULES:-1f1b gpipe}
steps=8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
shape=(-D devices="$devices" -D microbatches=16 -D model.hidden=512 -D model.batch=1024
       -D model.layers=$((4 * devices)))

# costs TRACE -> "-D cost.stage.S.F=US -D cost.stage.S.B=US ..." (means over the steps after
# the first two) on one line, then the mean forward in microseconds on the next
costs() {
    python3 - "$1" <<'EOF'
import json, sys
from collections import defaultdict
ev = [e for e in json.load(open(sys.argv[1]))["traceEvents"] if e.get("ph") == "X"]
first = min(e["args"]["step"] for e in ev) + 2
sums = defaultdict(float); counts = defaultdict(int)
for e in ev:
    name = e["name"]
    if e["args"]["step"] >= first and name[0] in "FB" and "." in name:
        key = (name[0], int(name[1:].split(".")[0]))
        sums[key] += e["dur"]; counts[key] += 1
print(" ".join("-D cost.stage.%d.%s=%.1f" % (s, k, sums[(k, s)] / counts[(k, s)]) for k, s in sorted(sums, key=lambda x: (x[1], x[0]))))
f = [sums[k] / counts[k] for k in sums if k[0] == "F"]
print("%.1f" % (sum(f) / len(f)))
EOF
}

# step_ms OUTPUT -> the median step time (ms) after the first two steps
step_ms() {
    sed -n 's/^step \([0-9]*\)\/[0-9]*  loss [^ ]*  time \([0-9.]*\) ms.*/\1 \2/p' "$1" |
        awk '$1 > 2 { print $2 }' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

echo "overlap on the CPU, emulated link: $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$devices devices, 16 micro-batches, MLP 4 layers x 512 a device, batch 1024; a transfer = F / 2"
printf '%-8s %6s %10s %10s %8s %10s %10s %8s %8s %8s\n' schedule F_us on_ms off_ms speedup pred_on pred_off pred_x err_on err_off
for s in $schedules; do
    "$ppcc" "$root/schedules/$s.pp" "${shape[@]}" -o "$tmp/cal.json"
    "$pprun" "$tmp/cal.json" --backend cpu --steps 6 --trace "$tmp/cal.trace" >/dev/null
    f_us=$(costs "$tmp/cal.trace" | tail -1)
    lat=$(awk -v f="$f_us" 'BEGIN { printf "%.6f", f / 2 / 1e6 }')
    comm=$(awk -v l="$lat" 'BEGIN { printf "%.1f", l * 1e6 }')
    "$pprun" "$tmp/cal.json" --backend cpu --steps 6 --link-latency "$lat" --trace "$tmp/cal.trace" >/dev/null
    read -r -a c <<<"$(costs "$tmp/cal.trace" | head -1)"
    declare -A pred=() err=()
    for side in on off; do
        extra=()
        [ $side = off ] && extra=(-D overlap=false)
        "$ppcc" "$root/schedules/$s.pp" "${shape[@]}" "${extra[@]}" "${c[@]}" -D cost.comm="$comm" \
            -o "$tmp/$side.json" --stats >"$tmp/$side.stats"
        pred[$side]=$(sed -n 's/.* makespan=\([0-9.]*\) .*/\1/p' "$tmp/$side.stats" | head -1)
        pred[$side]=$(awk -v u="${pred[$side]}" 'BEGIN { printf "%.3f", u / 1e3 }')
    done
    declare -A best=()
    for _ in $(seq "$rounds"); do
        for side in on off; do
            "$pprun" "$tmp/$side.json" --backend cpu --steps $steps --link-latency "$lat" \
                --trace "$tmp/$side.now" >"$tmp/$side.out"
            ms=$(step_ms "$tmp/$side.out")
            if [ -z "${best[$side]:-}" ] || awk -v a="$ms" -v b="${best[$side]}" 'BEGIN { exit !(a < b) }'; then
                best[$side]=$ms
                mv "$tmp/$side.now" "$tmp/$side.trace"
            fi
        done
    done
    for side in on off; do
        extra=()
        [ $side = off ] && extra=(-D overlap=false)
        "$ppcc" "$root/schedules/$s.pp" "${shape[@]}" "${extra[@]}" "${c[@]}" -D cost.comm="$comm" \
            --stats --measured "$tmp/$side.trace" >"$tmp/$side.stats"
        err[$side]=$(awk -v m="${best[$side]}" -v p="${pred[$side]}" 'BEGIN { printf "%+.1f%%", 100 * (m - p) / p }')
        cp "$tmp/$side.stats" "$tmp/$s.$side.stats"
    done
    printf '%-8s %6.0f %10s %10s %8.2f %10s %10s %8.2f %8s %8s\n' "$s" "$f_us" "${best[on]}" "${best[off]}" \
        "$(awk -v a="${best[off]}" -v b="${best[on]}" 'BEGIN { print a / b }')" "${pred[on]}" "${pred[off]}" \
        "$(awk -v a="${pred[off]}" -v b="${pred[on]}" 'BEGIN { print a / b }')" "${err[on]}" "${err[off]}"
    for side in on off; do
        sed -n "s/^/    $s $side: /; /measured against\\|compute ops/p" "$tmp/$s.$side.stats"
    done
    unset best pred err
done
