#!/usr/bin/env bash
# test_precision_judge.sh PPCC PPRUN PRECISION_EMULATOR — the judge of the
# GPU's tf32/bf16 runs (precision_emulator --match, which test_gpu.sh runs
# on every reduced-precision GPU case) on the CPU: fed runs whose rounding
# is known — the emulator's own under each rounding with its sums reversed
# (a stand-in for the GPU's summation order), pprun's fp32 run — it must
# name that rounding, and it must refuse a run of the wrong rounding, a
# "tf32" run without rounding where tensor cores are required, a run that
# differs by more than rounding (another learning rate), and dumps that
# are not the plan's.
set -u
src=${PP_SOURCE_ROOT:?}
ppcc=$1 pprun=$2 emu=$3
. "$(dirname "$0")/../lib.sh"

"$ppcc" "$src/schedules/1f1b.pp" -o plan.json || exit 1
"$ppcc" "$src/schedules/1f1b.pp" -D lr=0.0105 -o lr.json || exit 1
"$ppcc" "$src/schedules/1f1b.pp" -D hidden=32 -o small.json || exit 1
# standin NAME PLAN PRECISION [--tf32 trunc|rna]: an emulated run, sums reversed, in NAME/
standin() {
    local name=$1 plan=$2 prec=$3
    shift 3
    "$emu" "$plan" --steps 3 --precision "$prec" "$@" --sum reverse --dump "$name" >"$name.txt" 2>&1 ||
        { cat "$name.txt"; fail "stand-in $name"; }
}
standin trunc plan.json tf32 --tf32 trunc
standin rna plan.json tf32 --tf32 rna
standin bf16 plan.json bf16
standin lr lr.json tf32 --tf32 trunc
standin small small.json tf32 --tf32 trunc
"$pprun" plan.json --backend cpu --steps 3 --dump fp32 >fp32.txt 2>&1 || { cat fp32.txt; fail "pprun --dump"; }
judge() { "$emu" plan.json --steps 3 "$@"; }

# the roundings it is fed, named
expect 0 'matches tf32, truncated$' -- judge --precision tf32 --match trunc
expect 0 'matches tf32, rounded to nearest$' -- judge --precision tf32 --match rna
expect 0 'matches bf16, round to nearest even$' -- judge --precision bf16 --match bf16
expect 0 'matches fp32: cuBLAS used no tensor cores for this case$' -- judge --precision tf32 --match fp32
# wrong roundings
expect 1 'FAILED: its GEMMs did not round their operands: no tensor cores, though this case is large enough' -- \
    judge --precision tf32 --match fp32 --tensor-cores
expect 1 'FAILED: its GEMMs did not round their operands to bf16' -- judge --precision bf16 --match fp32
expect 1 'FAILED' -- judge --precision bf16 --match trunc
expect 1 'FAILED' -- judge --precision bf16 --match rna
expect 1 'FAILED: the rest is over 1.5 times the effect' -- judge --precision tf32 --match bf16
# a run of another learning rate (0.0105 for 0.01), rounded as the plan's would be
expect 1 'FAILED: the rest is over 1.5 times the effect' -- judge --precision tf32 --match lr
# not this plan's dump
expect 1 "small/w_final.npy: not of the plan's shape \\(want float32 \\(8, 64, 64\\)\\)" -- \
    judge --precision tf32 --match small
mkdir cut
head -c 1000 trunc/w_final.npy >cut/w_final.npy
cp trunc/b_final.npy cut/
expect 1 'cut/w_final.npy: its data is not of the size its shape says' -- judge --precision tf32 --match cut
expect 1 'cannot open nowhere/w_final.npy' -- judge --precision tf32 --match nowhere
# what it cannot judge
expect 2 'usage' -- judge --precision fp32 --match trunc
expect 2 'usage' -- judge --precision tf32 --match trunc --sum reverse
finish test_precision_judge
