#!/usr/bin/env bash
# test_gpu.sh PPCC PPRUN WRITE_PLAN — pprun on a GPU (suite 'gpu'): every
# shipped schedule and 1-, 2-, 4- and 8-device plans run on ONE GPU through
# the local transport (a stream per pipeline device, copies + events), with
# the step captured as a CUDA graph, and --check against single-device CPU
# training: fp32 within 1e-5 relative, tf32 within 1e-3, bf16 within 1e-2
# (pprun's --check tolerance per precision).  Also: the eager path
# (--no-graph), a model spread over 2 GPUs when there are 2, and an NCCL run
# of 2 processes when there are 2 GPUs.
# Exit 77 (skipped) when pprun has no CUDA backend or no GPU is visible.
set -u
ppcc=$1 pprun=$2 write_plan=$3
src=${PP_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! "$pprun" --version | grep -q cuda; then
    echo "SKIP: pprun is built without CUDA"; exit 77
fi
"$ppcc" "$src/schedules/1f1b.pp" -D devices=2 -D microbatches=4 -o "$tmp/probe.json" || exit 1
if "$pprun" "$tmp/probe.json" --backend cuda 2>&1 | grep -q 'no GPU is visible'; then
    echo "SKIP: no GPU visible"; exit 77
fi
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)

fails=0 runs=0
check() { # LABEL PLAN pprun-options...
    local label=$1 plan=$2
    shift 2
    runs=$((runs + 1))
    if ! "$pprun" "$plan" --backend cuda --steps 3 --check "$@" >"$tmp/out.txt" 2>&1; then
        echo "FAIL: $label ($*)"; sed 's/^/    /' "$tmp/out.txt"; fails=$((fails + 1)); return
    fi
    echo "$label $*: $(grep '^check:' "$tmp/out.txt")"
}
compile() { # NAME.pp OUT -D...
    local pp=$1 out=$2
    shift 2
    "$ppcc" "$src/schedules/$pp" "$@" -o "$out" >"$tmp/ppcc.txt" 2>&1 ||
        { echo "FAIL: ppcc $pp $*"; cat "$tmp/ppcc.txt"; fails=$((fails + 1)); return 1; }
}

for f in "$src"/schedules/*.pp; do
    pp=$(basename "$f")
    compile "$pp" "$tmp/plan.json" && {
        check "$pp" "$tmp/plan.json"
        check "$pp" "$tmp/plan.json" --no-graph
        check "$pp" "$tmp/plan.json" --precision bf16
        check "$pp" "$tmp/plan.json" --precision tf32
    }
    compile "$pp" "$tmp/plan.json" -D microbatches=8 -D hidden=256 -D batch=64 &&
        check "$pp hidden 256" "$tmp/plan.json"
done
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
if [ "${ngpu:-0}" -ge 2 ]; then
    check "1f1b 4 devices over 2 GPUs" "$tmp/plan4.json" --gpus 2
    runs=$((runs + 1))
    if ! "$pprun" "$tmp/plan2.json" --nproc 2 --backend cuda --steps 3 --check >"$tmp/out.txt" 2>&1 ||
        [ "$(grep -c 'check: .* ok' "$tmp/out.txt")" != 2 ]; then
        echo "FAIL: nccl 2 processes"; sed 's/^/    /' "$tmp/out.txt"; fails=$((fails + 1))
    else
        echo "nccl 2 processes: ok"
    fi
fi
echo "$runs runs, $fails failed"
exit $((fails > 0))
