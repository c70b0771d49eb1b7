#!/usr/bin/env bash
# test_async.sh PPCC PPRUN PPRUN_FAULT — the asynchronous policies executed
# (docs/async.md): pipedream and 2bw compiled for several shapes and
# replayed by pprun --check against their own update rules; the check
# FAILS when the runtime ignores the stash (PPRUN_TEST_IGNORE_STASH, read
# by pprun_fault, the test build of pprun: pprun itself has no such
# switch); the rules really differ from synchronous
# training; the weight-memory line; the loader's refusals.  Then
# pipedream's vertical sync (schedule.vertical_sync): the same shapes
# against its rule, the check failing without the stash, final weights
# that differ from plain pipedream for D >= 2, its weight-memory line.
set -u
ppcc=$1 pprun=$2 pprun_fault=$3
src=${PP_SOURCE_ROOT:?}
. "$(dirname "$0")/../lib.sh"

ok_line='^check: largest relative error .* vs the %s rule \(docs/async.md\): ok'
for sch in pipedream 2bw; do
    want=$(printf "$ok_line" "$sch")
    for shape in "" "-D devices=2 -D microbatches=4 -D hidden=8 -D batch=8" \
        "-D devices=3 -D microbatches=5 -D layers=6 -D hidden=8 -D batch=10" \
        "-D devices=5 -D microbatches=3 -D layers=5 -D hidden=8 -D batch=6" \
        "-D devices=1 -D microbatches=4 -D layers=2 -D hidden=8 -D batch=8"; do
        # shellcheck disable=SC2086
        expect 0 '' -- "$ppcc" "$src/schedules/$sch.pp" $shape -o plan.json
        expect 0 "$want" -- "$pprun" plan.json --steps 3 --check
    done
    # without the stash (B on the current weights) the check must catch it
    "$ppcc" "$src/schedules/$sch.pp" -o plan.json || fail "ppcc $sch"
    expect 1 "vs the $sch rule \(docs/async.md\): FAILED" -- env PPRUN_TEST_IGNORE_STASH=1 "$pprun_fault" plan.json --steps 2 --check
    # pprun itself has no such switch: the variable changes nothing
    expect 0 "vs the $sch rule \(docs/async.md\): ok" -- env PPRUN_TEST_IGNORE_STASH=1 "$pprun" plan.json --steps 2 --check
done
# a failed --check (exit 1) leaves --trace and --dump in place, to look at
# (docs/outputs.md: the outputs are committed when the training succeeded)
expect 1 'FAILED' -- env PPRUN_TEST_IGNORE_STASH=1 "$pprun_fault" plan.json --steps 2 --check --trace t.json --dump d
checks=$((checks + 1))
[ -s t.json ] && [ -s d/w_final.npy ] || fail "a failed --check left no --trace or --dump"
rm -rf t.json d

# the default shape's weight memory: pipedream device d holds D-d versions
# of its stage (2 layers of 64x64 + 64 floats = 33280 bytes), 2bw two
"$ppcc" "$src/schedules/pipedream.pp" -o plan.json || fail "ppcc pipedream"
expect 0 '^weights \(pipedream\): peak versions per device 4 3 2 1; extra weight memory \(bytes\) 99840 66560 33280 0$' -- "$pprun" plan.json
"$ppcc" "$src/schedules/2bw.pp" -o plan.json || fail "ppcc 2bw"
expect 0 '^weights \(2bw\): peak versions per device 2 2 2 2; extra weight memory \(bytes\) 33280 33280 33280 33280$' -- "$pprun" plan.json
"$ppcc" "$src/schedules/1f1b.pp" -o sync.json || fail "ppcc 1f1b"
expect 0 '' -- "$pprun" sync.json
grep -q '^weights' out.txt && fail "a synchronous run printed a weights line"

# pipedream's peak versions on device d (docs/async.md): with w = min(D-d-1, M)
# warm-up forwards, 1 + min(w, M - w) when M > w, else 2 (1 if M = 1)
for D in 1 2 3 4 5 6; do
    for M in 1 2 3 4 5 7 8; do
        want=""
        for d in $(seq 0 $((D - 1))); do
            w=$((D - d - 1 < M ? D - d - 1 : M))
            if [ $M -gt $w ]; then v=$((1 + (w < M - w ? w : M - w))); else v=$((M > 1 ? 2 : 1)); fi
            want="$want $v"
        done
        "$ppcc" "$src/schedules/pipedream.pp" -D devices=$D -D microbatches=$M -D layers=$D -D hidden=4 \
            -D batch=$M -o plan.json || fail "ppcc pipedream D=$D M=$M"
        expect 0 "^weights \(pipedream\): peak versions per device$want;" -- "$pprun" plan.json --check
    done
done

# the rules are not synchronous training: 2bw's first step is 1F1B's (both
# start from W^0), its second is not; pipedream's first differs already
loss() { "$pprun" "$1" --steps 2 2>/dev/null | sed -n "s/^step $2\/2  loss \([0-9.]*\).*/\1/p"; }
checks=$((checks + 1))
"$ppcc" "$src/schedules/2bw.pp" -o bw.json || fail "ppcc 2bw"
[ -n "$(loss bw.json 1)" ] || fail "no loss read from the progress lines"
[ "$(loss bw.json 1)" = "$(loss sync.json 1)" ] || fail "2bw step 1 loss differs from 1f1b's"
[ "$(loss bw.json 2)" != "$(loss sync.json 2)" ] || fail "2bw step 2 loss equals 1f1b's"
"$ppcc" "$src/schedules/pipedream.pp" -o pd.json || fail "ppcc pipedream"
[ "$(loss pd.json 1)" != "$(loss sync.json 1)" ] || fail "pipedream step 1 loss equals 1f1b's"

# the loader
sed 's/"async": *"pipedream"/"async": "hogwild"/' pd.json >bad.json
expect 1 'pipeline.async: unknown "hogwild"' -- "$pprun" bad.json
sed 's/"vertical_sync": *false/"vertical_sync": true/' bw.json >bad.json
expect 1 'pipeline.vertical_sync: true needs "async": "pipedream"' -- "$pprun" bad.json
sed 's/"vertical_sync": *false/"vertical_sync": 1/' pd.json >bad.json
expect 1 'pipeline.vertical_sync: expected a boolean' -- "$pprun" bad.json
# a pipedream list read as synchronous: the verifier refuses the per-B updates
sed 's/"async": *"pipedream",//' pd.json >bad.json
expect 1 'second update \(the first is op' -- "$pprun" bad.json

# ---- vertical sync (docs/async.md): every stage uses version k(m) ----
vs_ok='^check: largest relative error .* vs the pipedream vertical-sync rule \(docs/async.md\): ok'
for shape in "" "-D devices=2 -D microbatches=4 -D hidden=8 -D batch=8" \
    "-D devices=3 -D microbatches=5 -D layers=6 -D hidden=8 -D batch=10" \
    "-D devices=5 -D microbatches=3 -D layers=5 -D hidden=8 -D batch=6" \
    "-D devices=6 -D microbatches=12 -D layers=6 -D hidden=8 -D batch=12" \
    "-D devices=1 -D microbatches=4 -D layers=2 -D hidden=8 -D batch=8"; do
    # shellcheck disable=SC2086
    expect 0 '' -- "$ppcc" "$src/schedules/pipedream.pp" -D schedule.vertical_sync=1 $shape -o vs.json
    grep -q '"vertical_sync": *true' vs.json || fail "vs.json ($shape) does not say vertical_sync: true"
    expect 0 "$vs_ok" -- "$pprun" vs.json --steps 3 --check
    # the rule is not plain pipedream's: final weights differ, except on one device
    # shellcheck disable=SC2086
    "$ppcc" "$src/schedules/pipedream.pp" $shape -o pd.json || fail "ppcc pipedream $shape"
    "$pprun" vs.json --steps 2 --dump vsd >/dev/null 2>&1 || fail "pprun --dump vs.json ($shape)"
    "$pprun" pd.json --steps 2 --dump pdd >/dev/null 2>&1 || fail "pprun --dump pd.json ($shape)"
    checks=$((checks + 1))
    case "$shape" in
    *devices=1*) cmp -s vsd/w_final.npy pdd/w_final.npy || fail "D=1: vertical sync changed the weights" ;;
    *) cmp -s vsd/w_final.npy pdd/w_final.npy && fail "($shape): vertical sync left the final weights unchanged" ;;
    esac
    rm -rf vsd pdd
done
# B on the current weights instead of k(m)'s: the check must catch it
"$ppcc" "$src/schedules/pipedream.pp" -D schedule.vertical_sync=1 -o vs.json || fail "ppcc vertical sync"
expect 1 'vs the pipedream vertical-sync rule \(docs/async.md\): FAILED' -- \
    env PPRUN_TEST_IGNORE_STASH=1 "$pprun_fault" vs.json --steps 2 --check
# its table of versions, out of memory: named, with its size (once an abort())
expect 1 '^pprun: error: out of memory: cannot allocate 32 bytes for the vertical-sync weight versions$' -- \
    env PPRUN_TEST_NOMEM='the vertical-sync weight versions' "$pprun_fault" vs.json
# the file's own block form, and other schedules refused
printf 'devices = 3\nschedule pipedream { vertical_sync = 1 }\nmodel mlp { hidden = 8 }\n' >vs.pp
expect 0 '' -- "$ppcc" vs.pp -o vs3.json
grep -q '"vertical_sync": *true' vs3.json || fail "vs.pp: no vertical_sync: true in the plan"
expect 1 'only schedule pipedream has a vertical sync, but schedule = 1f1b' -- \
    "$ppcc" "$src/schedules/1f1b.pp" -D schedule.vertical_sync=1 -o x.json
# weight memory: every device holds what device 0 holds without vertical
# sync (docs/async.md): w0 = min(D-1, M); 1 + min(w0, M - w0) when M > w0,
# else 2 (1 if M = 1) -- the same on every device
expect 0 '^weights \(pipedream, vertical sync\): peak versions per device 4 4 4 4; extra weight memory \(bytes\) 99840 99840 99840 99840$' -- "$pprun" vs.json
for D in 1 2 3 4 5 6; do
    for M in 1 2 3 4 5 7 8 11; do
        w=$((D - 1 < M ? D - 1 : M))
        if [ $M -gt $w ]; then v=$((1 + (w < M - w ? w : M - w))); else v=$((M > 1 ? 2 : 1)); fi
        want=""
        for _ in $(seq 1 $D); do want="$want $v"; done
        "$ppcc" "$src/schedules/pipedream.pp" -D schedule.vertical_sync=1 -D devices=$D -D microbatches=$M \
            -D layers=$D -D hidden=4 -D batch=$M -o vs.json || fail "ppcc vertical sync D=$D M=$M"
        expect 0 "^weights \(pipedream, vertical sync\): peak versions per device$want;" -- "$pprun" vs.json --steps 2 --check
        grep -Eq "$vs_ok" out.txt || fail "vertical sync D=$D M=$M: check not ok"
    done
done

finish test_async
