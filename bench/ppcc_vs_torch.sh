#!/usr/bin/env bash
# ppcc_vs_torch.sh — ppcc against PyTorch's own schedule lowering and
# simulation (torch.distributed.pipelining.schedules, pure Python) on the
# same interleaved pipelines: 64 devices x 4 chunks x M micro-batches,
# M = 64, 128, 256.  ppcc: whole process with --stats (compile, lower,
# verify, simulate; no plan written), best of RUNS.  PyTorch: in-process
# time of schedule + _add_send_recv + _simulate_comms_compute, best of 3,
# `import torch` excluded (bench/torch_lowering.py).  Both sides are taken
# in this one run, so the ratios are comparable.
#   bench/ppcc_vs_torch.sh [PPCC] [RUNS]
# PP_TORCH_PYTHON names an interpreter that can import torch (default
# python3); without one the benchmark is skipped.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
ppcc=${1:-$root/build/compiler/ppcc}
runs=${2:-5}
py=${PP_TORCH_PYTHON:-python3}
shapes=64,128,256

if ! "$py" -c 'import torch.distributed.pipelining' >/dev/null 2>&1; then
    echo "ppcc_vs_torch: skipped: '$py' cannot import torch.distributed.pipelining"
    echo "  (python3 -m venv /tmp/torchbench-venv && /tmp/torchbench-venv/bin/pip install torch,"
    echo "   then PP_TORCH_PYTHON=/tmp/torchbench-venv/bin/python $0)"
    exit 0
fi

. "$root/bench/lib.sh"

sched="$root/schedules/interleaved.pp"
defs=(-D devices=64 -D virtual=4 -D layers=256 -D schedule.group=64)

# PyTorch first, all shapes in one interpreter: one line per shape.
torch_out=$("$py" "$root/bench/torch_lowering.py" --devices 64 --virtual 4 \
    --microbatches "$shapes" --runs 3)
field() { # line key -> value of key=value
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}
head=$(head -n 1 <<<"$torch_out")

echo "ppcc vs PyTorch schedule lowering + simulation: 64 devices x 4 chunks, interleaved"
echo "  ppcc --stats whole process best of $runs; torch $(field "$head" torch) in-process best of 3"
echo "  (python $(field "$head" python), import torch $(field "$head" import) s not counted; $(nproc) cores)"
printf '%5s %9s %9s %10s %10s %10s %10s %10s %8s\n' M "ppcc ops" "torch ops" "ppcc ms" \
    "schedule s" "lower s" "simulate s" "torch s" ratio
for M in ${shapes//,/ }; do
    b=$((M * 4))
    line=$(grep "^M=$M " <<<"$torch_out")
    ops=$("$ppcc" "$sched" "${defs[@]}" -D microbatches=$M -D batch=$b --stats |
        sed -n 's/.* ops=\([0-9]*\).*/\1/p')
    ms=$(best_ms "$runs" "$ppcc" "$sched" "${defs[@]}" -D microbatches=$M -D batch=$b --stats)
    total=$(field "$line" total)
    ratio=$(awk -v t="$total" -v m="$ms" 'BEGIN { printf "%.0fx", t * 1000 / m }')
    printf '%5d %9s %9s %10s %10s %10s %10s %10s %8s\n' "$M" "$ops" "$(field "$line" ops)" "$ms" \
        "$(field "$line" schedule)" "$(field "$line" lower)" "$(field "$line" simulate)" "$total" "$ratio"
done
