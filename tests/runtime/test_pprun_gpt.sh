#!/usr/bin/env bash
# test_pprun_gpt.sh PPCC PPRUN PPRUN_FAULT — the transformer on pprun's CPU
# backend (docs/gpt.md): every policy (dualpipe's two pipelines too), tied and untied, with and without
# recompute, trains the parameters single-device training gives (--check);
# pipedream and 2bw follow their rules (docs/async.md); --dump writes every
# parameter by name, the tokens and the losses, and PyTorch recomputes the
# run from it (tests/ref/gpt_torch_reference.py, when torch is importable:
# PP_REF_PYTHON or python3); the shipped text trains with a falling loss;
# a diverging run is an error naming its step.
set -u
ppcc=$1 pprun=$2 pprun_fault=$3
src=${PP_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
fail() { echo "FAIL: $*"; cat "$tmp/out.txt"; fails=$((fails + 1)); }
# A small shape: 4 blocks of 32, 2 heads, 16 tokens, 8 sequences in 4 micro-batches.
# AdamW's eps is 1e-6 here: docs/gpt.md ("--check") says why 1e-8 amplifies rounding.
base=(-D microbatches=4 -D batch=8 -D layers=4 -D hidden=32 -D heads=2 -D seq=16)
small=("${base[@]}" -D model.eps=1e-6)
check() { # WHAT ppcc-args... : compiles gpt.pp with them, pprun --check passes
    local what=$1
    shift
    runs=$((runs + 1))
    local shape=("${small[@]}")
    case " $* " in *" model.optimizer=sgd "*) shape=("${base[@]}") ;; esac
    if ! "$ppcc" "$src/schedules/gpt.pp" "${shape[@]}" "$@" -o "$tmp/plan.json" >"$tmp/out.txt" 2>&1; then
        fail "ppcc $what"; return
    fi
    if ! "$pprun" "$tmp/plan.json" --steps 3 --check >"$tmp/out.txt" 2>&1; then
        fail "pprun --check $what"; return
    fi
    # at AdamW's eps of 1e-6 (and with SGD) the parameters agree to 1e-5, whatever the
    # tolerance --check allows AdamW (docs/gpt.md, "--check")
    local e
    e=$(sed -n 's/^check: largest relative error \([^ ]*\) .*/\1/p' "$tmp/out.txt")
    awk -v e="$e" 'BEGIN { exit !(e != "" && e + 0 <= 1e-5) }' || { fail "$what: error $e over 1e-5"; return; }
    echo "$what: $(grep '^check:' "$tmp/out.txt")"
}
for tie in 1 0; do
    for rc in never always; do
        for d in 1 2 4; do
            check "1f1b devices=$d tie=$tie recompute=$rc" -D devices=$d -D tie=$tie -D recompute=$rc
        done
        for s in gpipe zb-h1 zb-h2 naive auto; do
            check "$s tie=$tie recompute=$rc" -D schedule=$s -D devices=2 -D tie=$tie -D recompute=$rc
        done
        for s in interleaved looped-bfs interleaved-zb; do
            check "$s tie=$tie recompute=$rc" -D schedule=$s -D devices=2 -D virtual=2 -D tie=$tie -D recompute=$rc
        done
        for s in zbv dualpipev v-half v-min; do # the V places stage 0 and the head on device 0: one wte
            check "$s tie=$tie recompute=$rc" -D schedule=$s -D devices=2 -D virtual=2 -D placement=vshape \
                -D tie=$tie -D recompute=$rc
        done
    done
    # two mirrored pipelines (docs/dualpipe.md): each stage's two copies summed, wte of all four
    # (each pipeline's embedding and head) with them; 2 devices tied, 4 untied and recomputed
    d=$((4 - 2 * tie)) rc=$([ "$tie" = 1 ] && echo never || echo always)
    check "dualpipe devices=$d tie=$tie recompute=$rc" -D schedule=dualpipe -D devices=$d -D virtual=2 \
        -D placement=vshape -D microbatches=$((2 * d)) -D tie=$tie -D recompute=$rc
    check "balance [0,2,2,0] tie=$tie" -D devices=4 -D 'model.balance=[0,2,2,0]' -D tie=$tie
    check "sgd tie=$tie" -D devices=2 -D tie=$tie -D model.optimizer=sgd -D lr=0.1
done
# every shipped transformer, shrunk to a CPU's size in its own policy and shape (one with
# replicas to two of them, with its zero setting)
for f in "$src"/schedules/*.pp; do
    grep -q '^model gpt' "$f" || continue
    pp=$(basename "$f")
    runs=$((runs + 1))
    dp=()
    grep -q '^data_parallel' "$f" && dp=(-D data_parallel=2)
    if ! "$ppcc" "$f" -D devices=2 -D layers=10 -D hidden=32 -D heads=2 -D seq=16 -D ffn=64 -D vocab=256 \
            -D data=none -D batch=8 -D microbatches=4 -D model.eps=1e-6 "${dp[@]}" \
            -o "$tmp/plan.json" >"$tmp/out.txt" 2>&1 ||
       ! "$pprun" "$tmp/plan.json" --steps 2 --check >"$tmp/out.txt" 2>&1; then
        fail "$pp shrunk"; continue
    fi
    echo "$pp shrunk: $(grep '^check:' "$tmp/out.txt")"
done
# the asynchronous policies' rules (an untied head: docs/async.md)
for s in 2bw pipedream; do
    check "$s" -D schedule=$s -D devices=2 -D tie=0
done
check "pipedream vertical sync" -D schedule=pipedream -D schedule.vertical_sync=1 -D devices=4 -D tie=0
# ... which the check tells apart: B on the current weights instead of the stash fails it
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" "${small[@]}" -D schedule=pipedream -D devices=4 -D tie=0 -o "$tmp/pd.json" &&
    PPRUN_TEST_IGNORE_STASH=1 "$pprun_fault" "$tmp/pd.json" --steps 3 --check >"$tmp/out.txt" 2>&1
[ $? = 1 ] && grep -q '^check: .*FAILED' "$tmp/out.txt" || fail "pipedream without its stash passed --check"
# a tied head under an asynchronous rule would read the embedding's current wte: refused
for s in 2bw pipedream; do
    runs=$((runs + 1))
    rm -f "$tmp/t.json"
    if "$ppcc" "$src/schedules/gpt.pp" "${small[@]}" -D schedule=$s -D devices=2 -D tie=1 -o "$tmp/t.json" >"$tmp/out.txt" 2>&1; then
        "$pprun" "$tmp/t.json" >"$tmp/out.txt" 2>&1
        [ $? = 1 ] && grep -q "model.tie: true, but pipeline.async is $s" "$tmp/out.txt" || fail "pprun took a tied head under $s"
    else
        grep -q "tie" "$tmp/out.txt" || fail "ppcc refused a tied head under $s without naming tie"
    fi
done

# --dump: every parameter by name (wte once when tied), tokens and losses
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" "${small[@]}" -D devices=2 -D layers=2 -o "$tmp/d.json" >"$tmp/out.txt" 2>&1 &&
    "$pprun" "$tmp/d.json" --steps 3 --dump "$tmp/dump" >"$tmp/out.txt" 2>&1 || fail "pprun --dump"
want="init/blocks.0.attn.b.npy init/blocks.0.attn.w.npy init/blocks.0.fc.b.npy init/blocks.0.fc.w.npy"
for f in $want final/lnf.w.npy final/wte.npy final/wpe.npy final/blocks.1.fcproj.w.npy tokens.npy loss.npy; do
    [ -f "$tmp/dump/$f" ] || { echo "FAIL: --dump has no $f"; fails=$((fails + 1)); }
done
[ -e "$tmp/dump/init/head.w.npy" ] && { echo "FAIL: a tied head dumped head.w"; fails=$((fails + 1)); }
[ "$(ls "$tmp/dump/init" | wc -l)" = $((2 * 12 + 4)) ] || { echo "FAIL: init/ holds $(ls "$tmp/dump/init" | wc -l) files"; fails=$((fails + 1)); }
# ... from which PyTorch's own layers, autograd and AdamW recompute the run
py=${PP_REF_PYTHON:-python3}
if "$py" -c 'import torch' 2>/dev/null; then
    for tie in 1 0; do
        runs=$((runs + 1))
        rm -rf "$tmp/dump"
        "$ppcc" "$src/schedules/gpt.pp" "${small[@]}" -D devices=2 -D schedule=zb-h1 -D tie=$tie -o "$tmp/d.json" &&
            "$pprun" "$tmp/d.json" --steps 3 --dump "$tmp/dump" >"$tmp/out.txt" 2>&1 &&
            "$py" "$src/tests/ref/gpt_torch_reference.py" "$tmp/dump" "$tmp/d.json" >"$tmp/out.txt" 2>&1 ||
            fail "PyTorch's recomputation of a zb-h1 run, tie=$tie"
        echo "torch, tie=$tie: $(tail -1 "$tmp/out.txt")"
    done
    # ... which can fail: another lr under the same dump
    runs=$((runs + 1))
    sed 's/"lr": *[^,]*,/"lr": 0.002,/' "$tmp/d.json" >"$tmp/wrong.json"
    "$py" "$src/tests/ref/gpt_torch_reference.py" "$tmp/dump" "$tmp/wrong.json" >"$tmp/out.txt" 2>&1 &&
        fail "the PyTorch recomputation accepted another lr"
    # weight decay, pinned: at lr 1e-2 and weight_decay 0.5 (eps 1e-4: no rounding noise to
    # amplify) PyTorch's AdamW agrees, and the same recomputation without decay does not
    runs=$((runs + 1))
    rm -rf "$tmp/dump"
    "$ppcc" "$src/schedules/gpt.pp" "${base[@]}" -D devices=2 -D model.eps=1e-4 -D lr=1e-2 \
        -D model.weight_decay=0.5 -o "$tmp/wd.json" >"$tmp/out.txt" 2>&1 &&
        "$pprun" "$tmp/wd.json" --steps 3 --dump "$tmp/dump" >"$tmp/out.txt" 2>&1 &&
        "$py" "$src/tests/ref/gpt_torch_reference.py" "$tmp/dump" "$tmp/wd.json" >"$tmp/out.txt" 2>&1 ||
        fail "PyTorch's recomputation at weight decay 0.5"
    echo "torch, weight decay 0.5: $(tail -1 "$tmp/out.txt")"
    runs=$((runs + 1))
    sed 's/"weight_decay": *[^,}]*/"weight_decay": 0.0/' "$tmp/wd.json" >"$tmp/nowd.json"
    "$py" "$src/tests/ref/gpt_torch_reference.py" "$tmp/dump" "$tmp/nowd.json" >"$tmp/out.txt" 2>&1 &&
        fail "the PyTorch recomputation without weight decay accepted a run with it"
else
    echo "torch not importable by $py: the PyTorch recomputation skipped"
fi

# The shipped schedule on the shipped text: the loss falls (a short run of the quick start's).
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" -D devices=2 -D layers=2 -D hidden=64 -D seq=32 -D batch=16 -D lr=3e-3 -o "$tmp/q.json" &&
    "$pprun" "$tmp/q.json" --steps 30 >"$tmp/out.txt" 2>&1 || fail "the shipped gpt.pp"
first=$(sed -n 's/^step 1\/30  loss \([0-9.]*\) .*/\1/p' "$tmp/out.txt")
last=$(sed -n 's/^step 30\/30  loss \([0-9.]*\) .*/\1/p' "$tmp/out.txt")
awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 5 && b > 0 && b < a - 1) }' ||
    fail "the loss on data/docs.txt goes $first -> $last, not down by a nat"
echo "gpt.pp on data/docs.txt, 30 steps: loss $first -> $last"

# A plan for bf16 runs in fp32 on the CPU, and says so (docs/pprun.md, --precision).
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" "${small[@]}" -D devices=2 -D precision=bf16 -o "$tmp/b.json" >"$tmp/out.txt" 2>&1 &&
    "$pprun" "$tmp/b.json" --backend cpu --steps 1 --check >"$tmp/out.txt" 2>&1 &&
    grep -q '^pprun: warning: model.precision is bf16: the cpu backend computes in fp32$' "$tmp/out.txt" &&
    grep -q '^check: .*ok (tolerance' "$tmp/out.txt" || fail "a bf16 plan on the CPU"

# At AdamW's default eps (1e-8) --check allows lr x updates / 20, and says so; a wrong run is
# still caught at it: pipedream's B on the current weights instead of its stash.
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" -D devices=2 -D layers=2 -o "$tmp/e.json" >"$tmp/out.txt" 2>&1 &&
    "$pprun" "$tmp/e.json" --steps 3 --check >"$tmp/out.txt" 2>&1 &&
    grep -q "^check: .*: ok (tolerance 0.00015: AdamW's, lr x updates / 20)$" "$tmp/out.txt" ||
    fail "gpt.pp at the default eps"
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" -D schedule=pipedream -D devices=4 -D tie=0 -o "$tmp/pe.json" >"$tmp/out.txt" 2>&1 &&
    "$pprun" "$tmp/pe.json" --steps 3 --check >"$tmp/out.txt" 2>&1 || fail "pipedream at the default eps"
runs=$((runs + 1))
PPRUN_TEST_IGNORE_STASH=1 "$pprun_fault" "$tmp/pe.json" --steps 3 --check >"$tmp/out.txt" 2>&1
[ $? = 1 ] && grep -q "^check: .*FAILED (tolerance 0.0012: AdamW.s, lr x updates / 20)" "$tmp/out.txt" ||
    fail "pipedream without its stash passed AdamW's tolerance"

# Diverged training is an error naming the step (docs/gpt.md).
runs=$((runs + 1))
"$ppcc" "$src/schedules/gpt.pp" "${base[@]}" -D devices=2 -D model.optimizer=sgd -D lr=1e15 \
    -o "$tmp/x.json" >"$tmp/out.txt" 2>&1
"$pprun" "$tmp/x.json" --steps 5 >"$tmp/out.txt" 2>&1
[ $? = 1 ] && grep -q "pprun: error: .*step [0-9] of 5: the loss is .*: the training diverged" "$tmp/out.txt" ||
    fail "a diverging run"

[ $fails = 0 ] && echo "ok: $runs runs"
exit $((fails > 0))
