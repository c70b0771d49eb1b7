#!/usr/bin/env bash
# pprun_vs_torch_cpu.sh — pprun's CPU step time against PyTorch eager on the
# same model, in one run: the reference MLP, 8 layers x hidden 1024, batch
# 512 in 8 micro-batches (docs/model.md; bench/torch_mlp.py --device cpu),
# one device on one thread against torch on one thread, two devices (1F1B,
# a thread each) against torch on two threads.  The two sides alternate,
# ROUNDS times; each run's step time is the median of its steps after the
# first two (warm-up), and the best run of each side is reported, so a
# machine shared with other work shows each side at its least disturbed.
#   bench/pprun_vs_torch_cpu.sh [BUILD_DIR] [ROUNDS]
# PP_TORCH_PYTHON: the python with torch (default python3); without torch
# only pprun's side is measured.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
ppcc=$build/compiler/ppcc
pprun=$build/runtime/pprun
py=${PP_TORCH_PYTHON:-python3}
steps=8
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "no torch under $py: pprun's side only"; }
echo "pprun vs PyTorch eager on the CPU, $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
[ $have_torch = 1 ] && "$py" -c 'import torch; print("torch", torch.__version__, "| pprun with", end=" ")' && \
    (ldd "$pprun" | grep -o 'libopenblas[^ ]*' | head -1 || true)

pprun_ms() { # PLAN: median step ms of one run after the first two steps
    "$pprun" "$1" --backend cpu --steps $steps |
        sed -n 's/^step \([0-9]*\)\/[0-9]*  loss [^ ]*  time \([0-9.]*\) ms.*/\1 \2/p' |
        awk '$1 > 2 { print $2 }' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
torch_ms() { # THREADS
    "$py" "$root/bench/torch_mlp.py" --device cpu --threads "$1" --layers 8 --hidden 1024 \
        --batch 512 --microbatches 8 --steps $((steps - 2)) --warmup 2 | sed -n 's/^torch step ms //p'
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }

printf '%-34s %12s %12s %8s\n' "case" "pprun ms" "torch ms" "ratio"
for dev in 1 2; do
    "$ppcc" "$root/schedules/1f1b.pp" -D devices=$dev -D layers=8 -D hidden=1024 \
        -D microbatches=8 -D batch=512 -o "$tmp/plan$dev.json"
    best_p="" best_t=""
    for _ in $(seq "$rounds"); do
        best_p=$(min "$best_p" "$(pprun_ms "$tmp/plan$dev.json")")
        [ $have_torch = 1 ] && best_t=$(min "$best_t" "$(torch_ms $dev)")
    done
    ratio=$([ -n "$best_t" ] && awk -v p="$best_p" -v t="$best_t" 'BEGIN { printf "%.2f", p / t }' || echo -)
    printf '%-34s %12s %12s %8s\n' "$dev device(s) / $dev thread(s), 8x1024" "$best_p" "${best_t:--}" "$ratio"
done
