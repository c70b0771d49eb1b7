#!/usr/bin/env bash
# test_gpu.sh [--backend cuda|cpu] [--jobs N] PPCC PPRUN WRITE_PLAN PRECISION_EMULATOR
#
# pprun's GPU test cases (suite 'gpu'): every shipped schedule and 1-, 2-,
# 4- and 8-device plans run on ONE GPU through the local transport (a
# stream per pipeline device, copies + events), the step captured as a
# CUDA graph, each with --check against single-device CPU training at
# pprun's tolerance for its precision (fp32 1e-5, tf32 2e-2, bf16 1e-2);
# also the eager path (--no-graph), and with 2 GPUs a model spread over
# both and an NCCL run of 2 processes.  One line per case as it finishes.
#
# A tf32 or bf16 case is also judged by measurement: its run's trained
# weights (--dump) against PRECISION_EMULATOR's emulations of the same plan
# and steps without rounding and under each rounding the GPU may apply
# (precision_emulator --match: tf32 truncated or rounded to nearest, bf16
# round to nearest even).  The case's line then says which one the GPU
# matches ("match: ... matches tf32, truncated"); a run that matches none
# fails, and so does a "tf32" run without tensor-core rounding in the case
# large enough that cuBLAS must use them (--tensor-cores below).
#
# --backend cpu runs the same cases on the CPU backend (suite 'runtime', in
# CI), so that a case that cannot pass whatever the CUDA code does (a
# diverging model, a tolerance tighter than the precision allows, a judge
# that cannot tell the roundings apart at its shapes) fails before any GPU
# time is spent.  A tf32/bf16 case's run is then a stand-in for the GPU's:
# the emulator under each rounding in turn, its sums in another order
# (--sum reverse), checked at pprun's tolerance and judged like a GPU run;
# the judge must name the stand-in's own rounding.  The 2-GPU cases need a
# GPU.
#
# Shapes: the reference MLP's activations grow geometrically with depth
# (each residual layer adds gelu(x W) with W ~ U(-1, 1)/sqrt(H)), and with
# them the loss and the gradients, so at the shipped lr (0.01) a deep, wide
# model's first steps overshoot and training turns chaotic: rounding
# differences between the pipelined and the single-device sums then grow
# without bound (16 layers at hidden 256: loss 1497, 174, 2.8e14; --check
# 1.8e-2 in fp32).  The wide variant of every schedule therefore trains 8
# layers (loss 173, 128, 123), the depth of most shipped schedules.
#
# Every run has a short --timeout (a stuck hand-off fails in 5 s, not 60)
# and a wall-clock limit; --jobs N runs N cases at once (tools/gpu-check
# does on the GPU: the cases are small, the GPU and its 16 cores are not).
# Exit 77 (skipped) only when pprun has no CUDA backend, or it cannot run
# on a GPU and the driver lists none (nvidia-smi, /proc/driver/nvidia); a
# GPU listed but unusable is a failure.
set -u
backend=cuda jobs=1
while [ $# -gt 0 ]; do
    case "$1" in
    --backend) backend=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    *) break ;;
    esac
done
case "$backend" in cuda | cpu) ;; *) echo "test_gpu.sh: --backend cuda|cpu"; exit 2 ;; esac
case "$jobs" in [1-9] | [1-9][0-9]) ;; *) echo "test_gpu.sh: --jobs 1..99"; exit 2 ;; esac
ppcc=$1 pprun=$2 write_plan=$3 emulator=${4:-}
src=${PP_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Each run under a wall-clock limit, in the foreground: in this script's process group, so
# that a limit over the whole script (gpu-check's timeout) ends the runs with it.
limit() { if command -v timeout >/dev/null 2>&1; then timeout --foreground -k 5 120 "$@"; else "$@"; fi; }

"$ppcc" "$src/schedules/1f1b.pp" -D devices=2 -D microbatches=4 -o "$tmp/probe.json" || exit 1
if [ "$backend" = cuda ]; then
    if ! "$pprun" --version | grep -q cuda; then
        echo "SKIP: pprun is built without CUDA"; exit 77
    fi
    # GPUs the driver lists, whatever CUDA says
    ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    [ "${ngpu:-0}" -gt 0 ] || ngpu=$(ls /proc/driver/nvidia/gpus 2>/dev/null | wc -l)
    if ! limit "$pprun" "$tmp/probe.json" --backend cuda --timeout 5 >"$tmp/probe.txt" 2>&1; then
        if [ "$ngpu" -eq 0 ] && grep -Eq 'no GPU is visible|CUDA cannot start' "$tmp/probe.txt"; then
            echo "SKIP: no GPU here ($(tail -1 "$tmp/probe.txt"))"; exit 77
        fi
        echo "FAIL: pprun cannot run on the GPU ($ngpu listed by the driver):"
        sed 's/^/    /' "$tmp/probe.txt"; exit 1
    fi
else
    ngpu=0
fi
# (after the probe: whether there is a GPU to test is known without it)
[ -x "$emulator" ] || { echo "test_gpu.sh: PRECISION_EMULATOR is needed (the tf32/bf16 cases' judge)"; exit 2; }
# the emulator rounding nothing is single-device training: its errors are the rounding's
if [ "$backend" = cpu ] && ! "$emulator" "$tmp/probe.json" --steps 3 --precision fp32 >"$tmp/out.txt" 2>&1; then
    echo "FAIL: the precision emulator without rounding:"; sed 's/^/    /' "$tmp/out.txt"; exit 1
fi

fails=0 runs=0
# What the judge prints for each stand-in rounding (precision_emulator.c).
declare -A judged=([trunc]="tf32, truncated" [rna]="tf32, rounded to nearest"
    [bf16]="bf16, round to nearest even")
# run_case ID LABEL PLAN options...: one case; its verdict in $tmp/case_ID.ok or .fail,
# its lines printed at once (one write, so parallel cases do not interleave).
# --tensor-cores among the options goes to the judge, not to pprun.
run_case() {
    local id=$1 label=$2 plan=$3
    shift 3
    local opts=() judge=() prec= nojudge=
    while [ $# -gt 0 ]; do
        case "$1" in
        --tensor-cores) judge+=("$1") ;;
        --no-judge) nojudge=1 ;;
        --precision) prec=$2; opts+=("$1" "$2"); shift ;;
        *) opts+=("$1") ;;
        esac
        shift
    done
    local out=$tmp/out_$id.txt lines=() ok=1 run
    label+=${opts[*]:+ ${opts[*]}}
    if [ -z "$prec" ] || [ -n "$nojudge" ]; then
        limit "$pprun" "$plan" --backend "$backend" --steps 3 --check --timeout 5 "${opts[@]}" \
            >"$out" 2>&1 || ok=0
        lines=("$label: $(grep '^check:' "$out")")
    else
        # runs to judge: the GPU's, or on the CPU one stand-in per rounding of the precision
        local roundings=(gpu)
        [ "$backend" = cpu ] && { [ "$prec" = tf32 ] && roundings=(trunc rna) || roundings=(bf16); }
        : >"$out"
        for run in "${roundings[@]}"; do
            local dump=$tmp/dump_${id}_$run line em=(--steps 3 --precision "$prec")
            if [ "$run" = gpu ]; then
                limit "$pprun" "$plan" --backend cuda --steps 3 --check --timeout 5 "${opts[@]}" \
                    --dump "$dump" >>"$out" 2>&1 || ok=0
                line=$label
            else
                [ "$prec" = tf32 ] && em+=(--tf32 "$run")
                limit "$emulator" "$plan" "${em[@]}" --sum reverse --dump "$dump" >>"$out" 2>&1 || ok=0
                line="$label (CPU stand-in: ${judged[$run]}, sums reversed)"
            fi
            [ $ok = 1 ] && { limit "$emulator" "$plan" --steps 3 --precision "$prec" --match "$dump" \
                "${judge[@]}" >"$out.match" 2>&1 || ok=0; cat "$out.match" >>"$out"; }
            if [ $ok = 1 ] && [ "$run" != gpu ] && ! grep -q "matches ${judged[$run]}\$" "$out.match"; then
                ok=0
                echo "the judge did not name the stand-in's rounding (${judged[$run]})" >>"$out"
            fi
            lines+=("$line: $(grep '^check:' "$out" | tail -1); $(grep '^match:' "$out" | tail -1)")
            [ $ok = 1 ] || break
        done
    fi
    if [ $ok = 1 ]; then
        printf '%s\n' "${lines[@]}" >"$tmp/case_$id.ok"
        cat "$tmp/case_$id.ok"
    else
        { echo "FAIL: $label${judge[*]:+ ${judge[*]}}"; sed 's/^/    /' "$out"; } >"$tmp/case_$id.fail"
        cat "$tmp/case_$id.fail"
    fi
}
check() { # LABEL PLAN pprun-options...
    runs=$((runs + 1))
    if [ "$jobs" -gt 1 ]; then
        while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
        run_case $runs "$@" &
    else
        run_case $runs "$@"
    fi
}
compile() { # NAME.pp OUT -D...
    local pp=$1 out=$2
    shift 2
    "$ppcc" "$src/schedules/$pp" "$@" -o "$out" >"$tmp/ppcc.txt" 2>&1 ||
        { echo "FAIL: ppcc $pp $*"; cat "$tmp/ppcc.txt"; fails=$((fails + 1)); return 1; }
}

for f in "$src"/schedules/*.pp; do
    pp=$(basename "$f")
    grep -q '^model gpt' "$f" && continue # the transformers: below
    compile "$pp" "$tmp/$pp.json" && {
        check "$pp" "$tmp/$pp.json"
        check "$pp" "$tmp/$pp.json" --no-graph
        check "$pp" "$tmp/$pp.json" --precision bf16
        check "$pp" "$tmp/$pp.json" --precision tf32
    }
    # a file that lists its layers (layer_costs, docs/costs.md) keeps their number
    wide=(-D microbatches=8 -D hidden=256 -D batch=64)
    grep -q '^layer_costs' "$f" || wide+=(-D layers=8)
    compile "$pp" "$tmp/wide-$pp.json" "${wide[@]}" &&
        check "$pp hidden 256" "$tmp/wide-$pp.json"
done
# The transformer (docs/gpt.md): every policy on one GPU, tied and untied, at fp32's 1e-5; the
# eager path and tf32/bf16 (at their tolerances: --no-judge, as the precision emulator knows the
# MLP only) on four of them (gpt_precision below; test_gpu_check.sh counts their tf32 runs);
# every shipped transformer shrunk.  AdamW's eps is 1e-6 as in test_pprun_gpt.sh.
gsmall=(-D microbatches=4 -D batch=8 -D layers=4 -D hidden=32 -D heads=2 -D seq=16 -D model.eps=1e-6)
gpt_precision=" 1f1b zb-h1 interleaved zbv "
for tie in 1 0; do
    for s in gpipe 1f1b zb-h1 zb-h2 interleaved looped-bfs interleaved-zb zbv dualpipev v-half v-min; do
        shape=(-D schedule=$s -D devices=2 -D tie=$tie)
        case $s in
        interleaved | looped-bfs | interleaved-zb) shape+=(-D virtual=2) ;;
        zbv | dualpipev | v-half | v-min) shape+=(-D virtual=2 -D placement=vshape) ;;
        esac
        compile gpt.pp "$tmp/gpt-$s-$tie.json" "${gsmall[@]}" "${shape[@]}" && {
            check "gpt $s tie=$tie" "$tmp/gpt-$s-$tie.json"
            if [ $tie = 1 ] && [[ "$gpt_precision" == *" $s "* ]]; then
                check "gpt $s tie=$tie" "$tmp/gpt-$s-$tie.json" --no-graph
                if [ "$backend" = cuda ]; then
                    check "gpt $s tie=$tie" "$tmp/gpt-$s-$tie.json" --precision tf32 --no-judge
                    check "gpt $s tie=$tie" "$tmp/gpt-$s-$tie.json" --precision bf16 --no-judge
                fi
            fi
        }
    done
done
compile gpt.pp "$tmp/gpt-rc.json" "${gsmall[@]}" -D devices=4 -D recompute=always &&
    check "gpt 1f1b 4 devices recompute" "$tmp/gpt-rc.json"
# two replicas of the pipeline, every rank on one GPU (docs/pprun.md, "Data parallelism"),
# and the shipped 7B x 64-GPU decoder's ZeRO-1 at 2 x 2 ranks
compile 1f1b.pp "$tmp/dp2.json" -D devices=2 -D data_parallel=2 -D hidden=8 -D batch=16 -D microbatches=4 &&
    check "1f1b 2 devices x 2 replicas" "$tmp/dp2.json"
compile decoder-7b-64gpu.pp "$tmp/dp2-zero.json" -D devices=2 -D data_parallel=2 -D layers=4 -D hidden=32 \
    -D heads=2 -D seq=16 -D ffn=64 -D vocab=256 -D data=none -D batch=8 -D microbatches=4 -D model.eps=1e-6 &&
    check "decoder-7b-64gpu 2 devices x 2 replicas (ZeRO-1)" "$tmp/dp2-zero.json"
compile dualpipe.pp "$tmp/dualpipe2.json" -D devices=2 -D microbatches=4 &&
    check "dualpipe 2 devices" "$tmp/dualpipe2.json"
for f in "$src"/schedules/*.pp; do
    grep -q '^model gpt' "$f" || continue
    pp=$(basename "$f")
    compile "$pp" "$tmp/shrunk-$pp.json" -D devices=2 -D layers=10 -D hidden=32 -D heads=2 -D seq=16 \
        -D ffn=64 -D vocab=256 -D data=none -D batch=8 -D microbatches=4 -D model.eps=1e-6 \
        -D data_parallel=1 -D zero=0 && check "$pp shrunk" "$tmp/shrunk-$pp.json" # one replica (two: above)
done
# Large enough that cuBLAS must run its TF32 GEMMs on tensor cores (2 micro-batches of 128
# rows at hidden 256; the cases above multiply 4 to 8 rows, where cuBLAS may pick an FP32
# kernel, which the judge reports as such): here a "tf32" run must round.
compile 1f1b.pp "$tmp/tc.json" -D devices=2 -D microbatches=2 -D hidden=256 -D batch=256 \
    -D layers=4 && {
    check "1f1b hidden 256, 128 rows" "$tmp/tc.json" --precision tf32 --tensor-cores
    check "1f1b hidden 256, 128 rows" "$tmp/tc.json" --precision bf16
}
# 1, 2, 4 and 8 pipeline devices on one GPU
for d in 1 2 4 8; do
    compile 1f1b.pp "$tmp/plan$d.json" -D devices=$d -D microbatches=8 -D hidden=128 -D batch=64 \
        -D layers=8 && check "1f1b $d devices" "$tmp/plan$d.json"
    compile gpipe.pp "$tmp/gplan$d.json" -D devices=$d -D microbatches=8 -D hidden=128 \
        -D batch=64 -D layers=8 && check "gpipe $d devices" "$tmp/gplan$d.json"
done
# hand-written plans (runtime tests' generator): split backward, several stages per device
# (write_plan is a test binary: absent from a tree built without Check)
if [ -x "$write_plan" ]; then
    for name in 1f1b-2x4 gpipe-4x8 interleaved-2x2x4 same-device-2x4 zb-2x4; do
        "$write_plan" $name "$tmp/$name.json" && check "$name" "$tmp/$name.json"
    done
else
    echo "note: $write_plan not built: hand-written plans skipped"
fi
# nccl PLAN NPROC TIMEOUT: one process a rank over NCCL; every rank's check passes and the
# reporting rank prints the 3 steps (the others send it their losses: step_losses.c)
nccl() {
    runs=$((runs + 1))
    if ! limit "$pprun" "$tmp/$1.json" --nproc "$2" --backend cuda --steps 3 --check --timeout "$3" \
        >"$tmp/out.txt" 2>&1 || [ "$(grep -c 'check: .* ok' "$tmp/out.txt")" != "$2" ] ||
        [ "$(grep -c '^step [0-9]/3  loss' "$tmp/out.txt")" != 3 ]; then
        echo "FAIL: nccl $1, $2 processes"; sed 's/^/    /' "$tmp/out.txt"; touch "$tmp/case_nccl_$1.fail"
    else
        echo "nccl $1, $2 processes: ok"
    fi
}
if [ "${ngpu:-0}" -ge 2 ]; then
    check "1f1b 4 devices over 2 GPUs" "$tmp/plan4.json" --gpus 2
    wait
    nccl plan2 2 10
    nccl dualpipe2 2 10 # a mirrored plan: its other last stage sends the reporter its losses
else
    echo "note: the 2-GPU cases (--gpus 2, nccl 2 processes) need 2 GPUs: not run here"
fi
# one process a rank with replicas (docs/pprun.md, "Data parallelism"): the 2 x 2 plans over
# NCCL, the world communicator and each device's replica communicator (ncclCommSplit)
if [ "${ngpu:-0}" -ge 4 ]; then
    nccl dp2 4 20
    nccl dp2-zero 4 20
else
    echo "note: the 4-GPU cases (nccl 2 devices x 2 replicas, 4 processes) need 4 GPUs: not run here"
fi
wait
fails=$((fails + $(ls "$tmp" | grep -c '^case_.*\.fail$')))
echo "$runs runs, $fails failed"
exit $((fails > 0))
