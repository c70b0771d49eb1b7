#!/usr/bin/env bash
# gpt_vs_torch_cpu.sh — pprun's CPU step time against PyTorch eager on the
# same transformer, in one run: model gpt (docs/gpt.md), 4 blocks x hidden
# 256 x 4 heads, seq 128, vocab 256, head tied to the token embedding,
# AdamW, BATCH sequences a step in 8 micro-batches, fp32, synthetic tokens
# (bench/torch_gpt.py: the same math; attention as plain matmuls and a
# masked softmax, as pprun computes it).  One device on one thread against
# torch on one thread, two devices (1F1B, a thread each) against torch on
# two threads.  torch runs two ways: accumulating the gradients of the same
# 8 micro-batches (what pprun computes) and the whole batch at once; the
# ratio is taken against the faster of the two.  The sides alternate,
# ROUNDS times; each run's step time is the median of its steps after the
# first two (warm-up), and the best run of each side is reported, so a
# machine shared with other work shows each side at its least disturbed.
#   bench/gpt_vs_torch_cpu.sh [BUILD_DIR] [ROUNDS] [BATCH]
# PP_TORCH_PYTHON: the python with torch (default python3); without torch
# only pprun's side is measured.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
rounds=${2:-3}
batch=${3:-32}
ppcc=$build/compiler/ppcc
pprun=$build/runtime/pprun
py=${PP_TORCH_PYTHON:-python3}
steps=6
shape=(-D layers=4 -D hidden=256 -D heads=4 -D seq=128 -D vocab=256 -D tie=1)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
have_torch=1
"$py" -c 'import torch' 2>/dev/null || { have_torch=0; echo "no torch under $py: pprun's side only"; }
echo "pprun vs PyTorch eager on the CPU, the transformer (4 x 256 x 4 heads, seq 128, batch $batch in 8 micro-batches), $(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC'), load $(cut -d' ' -f1-3 /proc/loadavg)"
[ $have_torch = 1 ] && "$py" -c 'import torch; print("torch", torch.__version__, "| pprun with", end=" ")' && \
    (ldd "$pprun" | grep -o 'libopenblas[^ ]*' | head -1 || true)

pprun_ms() { # PLAN: median step ms of one run after the first two steps
    "$pprun" "$1" --backend cpu --steps $steps |
        sed -n 's/^step \([0-9]*\)\/[0-9]*  loss [^ ]*  time \([0-9.]*\) ms.*/\1 \2/p' |
        awk '$1 > 2 { print $2 }' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
torch_ms() { # THREADS MICROBATCHES
    "$py" "$root/bench/torch_gpt.py" --device cpu --threads "$1" --microbatches "$2" --layers 4 \
        --hidden 256 --heads 4 --seq 128 --vocab 256 --batch "$batch" --attention manual \
        --steps $((steps - 2)) --warmup 2 | sed -n 's/^torch step ms //p'
}
min() { awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b + 0 < a + 0) ? b : a }'; }

printf '%-28s %10s %16s %16s %8s\n' "case" "pprun ms" "torch ms (M=8)" "torch ms (whole)" "ratio"
for dev in 1 2; do
    "$ppcc" "$root/schedules/gpt.pp" -D schedule=1f1b -D devices=$dev -D microbatches=8 \
        -D batch="$batch" "${shape[@]}" -D data=none -o "$tmp/plan$dev.json"
    best_p="" best_a="" best_w=""
    for _ in $(seq "$rounds"); do
        best_p=$(min "$best_p" "$(pprun_ms "$tmp/plan$dev.json")")
        if [ $have_torch = 1 ]; then
            best_a=$(min "$best_a" "$(torch_ms $dev 8)")
            best_w=$(min "$best_w" "$(torch_ms $dev 1)")
        fi
    done
    ratio=-
    [ -n "$best_a" ] && ratio=$(awk -v p="$best_p" -v a="$best_a" -v w="$best_w" \
        'BEGIN { t = a + 0 < w + 0 ? a : w; printf "%.2f", p / t }')
    printf '%-28s %10s %16s %16s %8s\n' "$dev device(s) / $dev thread(s)" "$best_p" "${best_a:--}" \
        "${best_w:--}" "$ratio"
done
echo "ratio: pprun / the faster torch; load now $(cut -d' ' -f1-3 /proc/loadavg)"
