#!/usr/bin/env bash
# test_pprun_schedules.sh PPCC PPRUN — every shipped schedule, compiled by
# ppcc (a few shapes each through -D) and replayed by pprun --check, trains
# the same weights as single-device training, with overlap (ppcc's default:
# receives posted early, waited on at their consumer) and without it
# (-D overlap=false, the version-1 form); --timeline draws the run.
set -u
ppcc=$1 pprun=$2
src=${PP_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
run() { # NAME.pp [-D ...]
    local pp=$1
    shift
    runs=$((runs + 1))
    if ! "$ppcc" "$src/schedules/$pp" "$@" -o "$tmp/plan.json" >"$tmp/out.txt" 2>&1; then
        echo "FAIL: ppcc $pp $*"; cat "$tmp/out.txt"; fails=$((fails + 1)); return
    fi
    if ! "$pprun" "$tmp/plan.json" --steps 2 --check >"$tmp/out.txt" 2>&1; then
        echo "FAIL: pprun --check on $pp $*"; cat "$tmp/out.txt"; fails=$((fails + 1)); return
    fi
    echo "$pp $*: $(grep '^check:' "$tmp/out.txt")"
}
n=0
for f in "$src"/schedules/*.pp; do
    pp=$(basename "$f")
    grep -q '^model gpt' "$f" && continue # test_pprun_gpt.sh trains the transformers
    n=$((n + 1))
    run "$pp"
    run "$pp" -D overlap=false
    run "$pp" -D microbatches=8 -D hidden=16 -D batch=16
    # custom.pp spells out each device's ops and auto.pp costs its stage 3:
    # both are tied to their 4-device shape (ppcc refuses the reshape).
    case "$pp" in
    custom.pp | auto.pp) ;;
    *) run "$pp" -D devices=2 -D hidden=8 -D batch=8 -D microbatches=4 ;;
    esac
done
[ $n -gt 0 ] || { echo "no schedules found"; exit 1; }
# The reference MLP trains at depth with its defaults (docs/model.md, the 1/sqrt(L) of its
# initialisation): 64 layers, 20 steps, --check ok and the loss falling by a quarter (deeper
# models, measured in docs/model.md, cost too much time under the sanitizers).
for L in 64; do
    runs=$((runs + 1))
    if ! "$ppcc" "$src/schedules/1f1b.pp" -D layers=$L -o "$tmp/deep.json" >"$tmp/out.txt" 2>&1 ||
       ! "$pprun" "$tmp/deep.json" --steps 20 --check >"$tmp/out.txt" 2>&1; then
        echo "FAIL: $L layers at the defaults"; cat "$tmp/out.txt"; fails=$((fails + 1)); continue
    fi
    first=$(sed -n 's/^step 1\/20  loss \([0-9.]*\) .*/\1/p' "$tmp/out.txt")
    last=$(sed -n 's/^step 20\/20  loss \([0-9.]*\) .*/\1/p' "$tmp/out.txt")
    if ! awk -v a="$first" -v b="$last" 'BEGIN { exit !(a > 0 && b > 0 && b < 0.75 * a) }'; then
        echo "FAIL: $L layers: loss $first -> $last does not fall"; fails=$((fails + 1))
    else
        echo "$L layers: loss $first -> $last, $(grep '^check:' "$tmp/out.txt")"
    fi
done
# the measured timeline of the last one
"$ppcc" "$src/schedules/1f1b.pp" -o "$tmp/plan.json" || exit 1
if ! "$pprun" "$tmp/plan.json" --timeline >"$tmp/out.txt" 2>&1 || ! grep -q '^d0 |' "$tmp/out.txt" ||
   ! grep -q '^d3 |' "$tmp/out.txt"; then
    echo "FAIL: --timeline"; cat "$tmp/out.txt"; fails=$((fails + 1))
fi
# a plan that spells data_parallel = 1 runs as one without it (test_pprun_dp runs replicas)
runs=$((runs + 1))
"$ppcc" "$src/schedules/1f1b.pp" -o "$tmp/one.json" >"$tmp/out.txt" 2>&1
sed 's/"split_backward":false/"split_backward":false,"data_parallel":1/' "$tmp/one.json" >"$tmp/dp1.json"
if ! grep -q '"data_parallel":1' "$tmp/dp1.json" || ! "$pprun" "$tmp/dp1.json" --steps 2 --check >"$tmp/out.txt" 2>&1; then
    echo "FAIL: pprun on a plan with data_parallel 1"; cat "$tmp/out.txt"; fails=$((fails + 1))
fi
echo "$runs runs, $fails failed"
exit $((fails > 0))
