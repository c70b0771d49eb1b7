#!/usr/bin/env bash
# test_pprun_recompute.sh PPCC PPRUN — activation recompute (docs/recompute.md)
# executed: every shipped schedule compiled with -D recompute=always (and
# except_last) carries R ops, replays under pprun --check, and trains
# weights and biases bitwise equal to the same plan without recompute (R
# repeats F's kernels on the same input with the same weights).  pprun's
# measured timeline shows the peak memory ppcc's timeline predicts (one
# accounting, compiler/activation_memory.c; memory.activation 0.5 checks
# the unit).
set -u
ppcc=$1 pprun=$2
src=${PP_SOURCE_ROOT:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
fail() { echo "FAIL: $*"; cat "$tmp/out.txt"; fails=$((fails + 1)); }
# The 'peak memory: d0 X, ...' summary of a timeline, wrapped lines joined.
peaks() { awk '/peak memory:/ { p = 1; sub(/.*peak memory:/, ""); printf "%s", $0; next }
               p && /^  / { printf " %s", $0; next } { p = 0 }' "$1" | tr -s ' '; }
for f in "$src"/schedules/*.pp; do
    pp=$(basename "$f")
    grep -q '^model gpt' "$f" && continue # test_pprun_gpt.sh recomputes the transformers
    shape=(-D microbatches=8 -D hidden=16 -D batch=16)
    case "$pp" in custom.pp | auto.pp) shape=() ;; esac
    if ! "$ppcc" "$f" "${shape[@]}" -o "$tmp/base.json" >"$tmp/out.txt" 2>&1 ||
       ! "$pprun" "$tmp/base.json" --steps 2 --dump "$tmp/base" >"$tmp/out.txt" 2>&1; then
        fail "baseline $pp"; continue
    fi
    for mode in always except_last; do
        runs=$((runs + 1))
        if ! "$ppcc" "$f" "${shape[@]}" -D recompute=$mode -D memory.activation=0.5 -o "$tmp/rc.json" \
            --timeline >"$tmp/predicted.txt" 2>&1; then
            cp "$tmp/predicted.txt" "$tmp/out.txt"; fail "ppcc $pp recompute=$mode"; continue
        fi
        if ! grep -q '"op": "R"' "$tmp/rc.json"; then
            echo "FAIL: $pp recompute=$mode: no R op in the plan"; fails=$((fails + 1)); continue
        fi
        rm -rf "$tmp/rc"
        if ! "$pprun" "$tmp/rc.json" --steps 2 --check --timeline --dump "$tmp/rc" >"$tmp/out.txt" 2>&1; then
            fail "pprun --check $pp recompute=$mode"; continue
        fi
        want=$(peaks "$tmp/predicted.txt") got=$(peaks "$tmp/out.txt")
        if [ -z "$want" ] || [ "$want" != "$got" ]; then
            fail "$pp recompute=$mode: measured peak memory '$got', predicted '$want'"; continue
        fi
        for a in w_final b_final loss; do
            if ! cmp -s "$tmp/base/$a.npy" "$tmp/rc/$a.npy"; then
                echo "FAIL: $pp recompute=$mode: $a.npy differs from the run without recompute"
                fails=$((fails + 1))
            fi
        done
        echo "$pp recompute=$mode: $(grep '^check:' "$tmp/out.txt"); bitwise equal; peak memory$got"
    done
    rm -rf "$tmp/base"
done
echo "$runs runs, $fails failed"
exit $((fails > 0))
