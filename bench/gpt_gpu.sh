#!/usr/bin/env bash
# gpt_gpu.sh — pprun's transformer on one GPU against PyTorch eager on the
# same model, in one run: a GPT-2-small shape (12 layers, hidden 768, 12
# heads, seq 1024, vocabulary 50257, tied head, AdamW, synthetic tokens),
# BATCH sequences a step in MICROBATCHES micro-batches, one pipeline device
# (CUDA graph), at each precision of PRECISIONS.  pprun's step is the mean
# of its steps after the third (graph replays); PyTorch's (bench/torch_gpt.py)
# the mean over CUDA events after warm-up, with attention as pprun computes
# it (scores materialised, "manual") and, for reference, torch's fused
# scaled_dot_product_attention ("sdpa").  Tokens/s = BATCH * 1024 / step.
# The target (docs/bench.md): pprun >= 1.2x PyTorch eager (manual) at each
# precision.  Exit 77 without a GPU; 1 if a run failed.
#   bench/gpt_gpu.sh [BUILD_DIR]     (a build with CUDA, or tools/gpu-bundle's build-gpu/)
# Environment: PRECISIONS (default "fp32 tf32 bf16"), BATCH (16), MICROBATCHES (2),
# STEPS (12), PP_TORCH_PYTHON (python3).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
[ -d "$build/lib" ] && export LD_LIBRARY_PATH="$build/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ppcc=$build/compiler/ppcc pprun=$build/runtime/pprun
py=${PP_TORCH_PYTHON:-python3}
precisions=${PRECISIONS:-fp32 tf32 bf16}
batch=${BATCH:-16} mb=${MICROBATCHES:-2} steps=${STEPS:-12}
L=12 H=768 NH=12 T=1024 V=50257
if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
    echo "gpt_gpu: no GPU listed by nvidia-smi: skipped"
    exit 77
fi
"$pprun" --version 2>&1 | grep -q cuda || { echo "gpt_gpu: $pprun has no CUDA backend" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
echo "gpt_gpu: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), $(date -u '+%Y-%m-%d %H:%M UTC')," \
    "$L layers x $H, $NH heads, seq $T, vocab $V, batch $batch in $mb micro-batches"
"$ppcc" "$root/schedules/gpt.pp" -D devices=1 -D layers=$L -D hidden=$H -D heads=$NH -D seq=$T \
    -D vocab=$V -D data=none -D batch=$batch -D microbatches=$mb -o "$tmp/plan.json" ||
    { echo "gpt_gpu: ppcc failed" >&2; exit 1; }

step_ms() { # mean step time of steps 4..N of a pprun run's progress lines
    grep -E '^step [0-9]+/' "$1" | awk 'NR > 3 { s += $6; n++ } END { if (n) printf "%.3f", s / n }'
}
tps() { awk -v ms="$1" -v n=$((batch * T)) 'BEGIN { if (ms > 0) printf "%.0f", n / (ms * 1e-3) }'; }

printf '%-6s %14s %14s %14s %8s\n' precision "pprun tok/s" "torch tok/s" "sdpa tok/s" ratio
for prec in $precisions; do
    "$pprun" "$tmp/plan.json" --backend cuda --steps "$steps" --precision "$prec" \
        >"$tmp/pprun_$prec.txt" 2>&1 || { status=1; echo "gpt_gpu: pprun $prec failed: $(tail -1 "$tmp/pprun_$prec.txt")"; }
    p=$(tps "$(step_ms "$tmp/pprun_$prec.txt")")
    for att in manual sdpa; do
        "$py" "$root/bench/torch_gpt.py" --layers $L --hidden $H --heads $NH --seq $T --vocab $V \
            --batch "$batch" --microbatches "$mb" --steps "$steps" --precision "$prec" \
            --attention $att >"$tmp/torch_${prec}_$att.txt" 2>&1 ||
            echo "gpt_gpu: torch $prec $att: $(tail -1 "$tmp/torch_${prec}_$att.txt")"
    done
    t=$(awk '/^torch tokens\/s/ { print $3 }' "$tmp/torch_${prec}_manual.txt")
    s=$(awk '/^torch tokens\/s/ { print $3 }' "$tmp/torch_${prec}_sdpa.txt")
    ratio=$([ -n "$p" ] && [ -n "$t" ] && awk -v p="$p" -v t="$t" 'BEGIN { printf "%.2f", p / t }')
    verdict=$([ -n "$ratio" ] && awk -v r="$ratio" 'BEGIN { print (r >= 1.2) ? "meets" : "MISSES" }')
    printf '%-6s %14s %14s %14s %8s %s\n' "$prec" "${p:--}" "${t:--}" "${s:--}" "${ratio:--}" \
        "${verdict:+($verdict the 1.2x target)}"
done
exit $status
