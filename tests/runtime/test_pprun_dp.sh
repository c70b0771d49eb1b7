#!/usr/bin/env bash
# test_pprun_dp.sh PPCC PPRUN PPRUN_FAULT — data parallelism on pprun's CPU
# runtime (docs/pprun.md, "Data parallelism"): every synchronous policy x
# data_parallel R in {1, 2, 3} x both models trains the parameters
# single-device training on the global batch gives (--check, within 1e-5);
# ZeRO-1 gives the same numbers, bit for bit (--dump), as the unsharded run, and plan version 2's
# asynchronous reductions as the synchronous ones (overlap = false); a group where none may be is
# refused;
# --dump of a D x R run is the single-device run's files; a rank that stops
# mid-step ends the run within the timeout, named, and one whose op fails
# (PPRUN_TEST_FAULT's fail) ends every rank at once, named; one process a
# rank takes a world of devices x replicas (--nproc, torchrun's and Slurm's
# environments), a wrong one refused before any work.
set -u
ppcc=$1 pprun=$2 pprun_fault=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 runs=0
fail() { echo "FAIL: $*"; cat "$tmp/out.txt"; fails=$((fails + 1)); }
src=${PP_SOURCE_ROOT:?}
# pprun --check passes and its error is within 1e-5 (AdamW's bound may be wider: docs/gpt.md)
checked() { # WHAT PLAN
    if ! "$pprun" "$2" --steps 2 --check >"$tmp/out.txt" 2>&1; then
        fail "pprun --check $1"; return 1
    fi
    local e
    e=$(sed -n 's/^check: largest relative error \([^ ]*\) .*/\1/p' "$tmp/out.txt")
    awk -v e="$e" 'BEGIN { exit !(e != "" && e + 0 <= 1e-5) }' || { fail "$1: error $e over 1e-5"; return 1; }
    echo "$1: $(grep '^check:' "$tmp/out.txt")"
}
# same_dumps WHAT PLAN-A PLAN-B WHY: the two plans' --dump files are the same, bit for bit
same_dumps() {
    runs=$((runs + 1))
    rm -rf "$tmp/dump-a" "$tmp/dump-b"
    if ! "$pprun" "$2" --steps 3 --dump "$tmp/dump-a" >"$tmp/out.txt" 2>&1 ||
       ! "$pprun" "$3" --steps 3 --dump "$tmp/dump-b" >"$tmp/out.txt" 2>&1; then
        fail "--dump $1"; return
    fi
    diff -r "$tmp/dump-a" "$tmp/dump-b" >"$tmp/out.txt" 2>&1 || fail "$1: $4"
}
# the mlp: every shipped synchronous policy (and 2bw, whose one update a step the replicas share)
for f in "$src"/schedules/*.pp; do
    pp=$(basename "$f")
    grep -q '^model gpt' "$f" && continue
    [ "$pp" = pipedream.pp ] && continue # refused with R > 1 (below)
    case "$pp" in custom.pp | auto.pp) shape=() ;; *) shape=(-D devices=2) ;; esac
    for R in 1 2 3; do
        runs=$((runs + 1))
        if ! "$ppcc" "$f" "${shape[@]}" -D data_parallel=$R -D hidden=8 -D batch=$((8 * R)) -D microbatches=8 \
                -o "$tmp/plan.json" >"$tmp/out.txt" 2>&1; then
            fail "ppcc $pp R=$R"; continue
        fi
        checked "mlp $pp R=$R" "$tmp/plan.json"
    done
done
# the transformer, tied (the tied pair combines with the replicas' sums) and untied, on a
# hardware description so that ZeRO-1 can be planned (its saving is in bytes)
cat >"$tmp/gpt.pp" <<'EOF'
devices = 2
microbatches = 2
schedule 1f1b
model gpt {
    layers = 4
    hidden = 16
    heads = 2
    seq = 8
    vocab = 64
    batch = 12
    optimizer = adamw
    eps = 1e-6
    lr = 1e-3
}
hardware cpu { }
EOF
policies=(1f1b gpipe zb-h1 zb-h2 naive auto 2bw "interleaved -D virtual=2" "looped-bfs -D virtual=2"
          "interleaved-zb -D virtual=2" "zbv -D virtual=2 -D placement=vshape"
          "dualpipev -D virtual=2 -D placement=vshape -D microbatches=4 -D batch=24" "v-half -D virtual=2 -D placement=vshape"
          "v-min -D virtual=2 -D placement=vshape" "dualpipe -D virtual=2 -D placement=vshape -D microbatches=4 -D batch=24")
for pol in "${policies[@]}"; do
    read -r -a args <<<"-D schedule=$pol"
    for tie in 1 0; do
        [ "$pol" = 2bw ] && [ $tie = 1 ] && continue # a tied gpt is refused under 2bw (docs/gpt.md)
        for R in 1 2 3; do
            [ $R = 1 ] && zs=0 || zs="0 1"
            for z in $zs; do
                what="gpt ${pol%% *} tie=$tie R=$R zero=$z"
                runs=$((runs + 1))
                if ! "$ppcc" "$tmp/gpt.pp" "${args[@]}" -D tie=$tie -D data_parallel=$R -D zero=$z \
                        -o "$tmp/g$z.json" >"$tmp/out.txt" 2>&1; then
                    fail "ppcc $what"; continue
                fi
                checked "$what" "$tmp/g$z.json" || continue
                # ZeRO-1 against the unsharded run: the same floats, every parameter and loss (a
                # tied wte's sums come in another order, docs/plan-format.md: within --check's bound;
                # --dump writes and syncs 30 files, so a few policies stand for all)
                [ $z = 1 ] && [ $tie = 0 ] || continue
                case "${pol%% *}" in 1f1b | interleaved | zbv) ;; *) continue ;; esac
                same_dumps "$what" "$tmp/g0.json" "$tmp/g1.json" "ZeRO-1's numbers differ from the unsharded run's"
            done
        done
    done
done
# plan version 2's asynchronous reductions (docs/pprun.md, "Overlap": each runs at its wait) give
# the numbers of the synchronous ones (overlap = false), bit for bit, sharded or not
for pol in "interleaved -D virtual=2" "zbv -D virtual=2 -D placement=vshape"; do
    read -r -a args <<<"-D schedule=$pol"
    for z in 0 1; do
        what="gpt ${pol%% *} R=2 zero=$z, asynchronous reductions"
        if ! "$ppcc" "$tmp/gpt.pp" "${args[@]}" -D tie=0 -D data_parallel=2 -D zero=$z -o "$tmp/a.json" \
                >"$tmp/out.txt" 2>&1 ||
           ! "$ppcc" "$tmp/gpt.pp" "${args[@]}" -D tie=0 -D data_parallel=2 -D zero=$z -D overlap=false \
                -o "$tmp/s.json" >"$tmp/out.txt" 2>&1; then
            fail "ppcc $what"; continue
        fi
        grep -q '"op": "allreduce", "what": "s[a-z]*", "stage": [0-9]*, "device": [0-9]*, "ranks": \[[0-9, ]*\], "group"' \
            "$tmp/a.json" || { fail "$what: no asynchronous reduction in the plan"; continue; }
        same_dumps "$what" "$tmp/a.json" "$tmp/s.json" "numbers differ from the synchronous plan's"
    done
done
# a group on a synchronous allreduce is refused, naming it
"$ppcc" "$tmp/gpt.pp" -D schedule=interleaved -D virtual=2 -D tie=1 -D data_parallel=2 -D zero=1 -o "$tmp/zt.json" \
    >"$tmp/out.txt" 2>&1 || fail "ppcc interleaved tie=1 R=2 zero=1"
grouped() { # SED-PATTERN (the op's fields before its closing brace) EXPECTED-MESSAGE
    runs=$((runs + 1))
    sed "0,/$1}/s//$1, \"group\": 90}/" "$tmp/zt.json" >"$tmp/bad.json"
    "$pprun" "$tmp/bad.json" --steps 1 >"$tmp/out.txt" 2>&1
    [ $? = 1 ] && grep -qE "^pprun: error: .*: devices\[0\]\.ops\[[0-9]+\]\.group: $2\$" "$tmp/out.txt" ||
        fail "a group on '$1' (expected: $2)"
}
grouped '"what": "gather", "stage": 2, "device": 0, "ranks": \[0, 1\]' 'a gather is synchronous \(right after the update\)'
grouped '"what": "tied", "ranks": \[0, 1\]' 'a tied allreduce is synchronous \(it has no group\)'
"$ppcc" "$tmp/gpt.pp" -D schedule=dualpipe -D virtual=2 -D placement=vshape -D microbatches=4 -D batch=24 \
    -D tie=0 -D data_parallel=2 -o "$tmp/zt.json" >"$tmp/out.txt" 2>&1 || fail "ppcc dualpipe R=2"
grouped '"what": "mirror", "ranks": \[0, 1\], "stage": 0' 'a mirror allreduce is synchronous \(it has no group\)'
# --dump of a D x R run: the files a single-device run of the global batch writes (the
# parameters agree to rounding; the data and the tokens are the same bytes)
runs=$((runs + 1))
"$ppcc" "$src/schedules/1f1b.pp" -D devices=1 -D hidden=8 -D batch=12 -D microbatches=1 -o "$tmp/one.json" &&
    "$ppcc" "$src/schedules/1f1b.pp" -D devices=2 -D data_parallel=3 -D hidden=8 -D batch=12 -D microbatches=2 \
        -o "$tmp/dp.json" && "$pprun" "$tmp/one.json" --steps 2 --dump "$tmp/m1" >"$tmp/out.txt" 2>&1 &&
    "$pprun" "$tmp/dp.json" --steps 2 --dump "$tmp/m3" >"$tmp/out.txt" 2>&1
if [ $? != 0 ] || [ "$(ls "$tmp/m1")" != "$(ls "$tmp/m3")" ] || ! cmp -s "$tmp/m1/x.npy" "$tmp/m3/x.npy" ||
   ! cmp -s "$tmp/m1/t.npy" "$tmp/m3/t.npy" || ! cmp -s "$tmp/m1/w_init.npy" "$tmp/m3/w_init.npy"; then
    fail "--dump of a 2 x 3 run"
fi
# A rank that stops inside an op mid-step (device 1's replica 1 = rank 3, in its B of micro-batch
# 1): every rank ends within the timeout, and the error names the rank and its op
runs=$((runs + 1))
"$ppcc" "$src/schedules/1f1b.pp" -D devices=2 -D data_parallel=2 -D hidden=8 -D batch=16 -D microbatches=4 \
    -o "$tmp/f.json" >"$tmp/out.txt" 2>&1
start=$(date +%s)
PPRUN_TEST_FAULT=3:B1.1:pause timeout 60 "$pprun_fault" "$tmp/f.json" --steps 2 --timeout 1 >"$tmp/out.txt" 2>&1
status=$?
took=$(($(date +%s) - start))
if [ $status != 1 ] || [ $took -gt 10 ] ||
   ! grep -q '^pprun: error: .*rank 3 (device 1, replica 1).* (B1.1)' "$tmp/out.txt"; then
    fail "a paused rank 3: exit $status after $took s"
fi
# ... and one that stops before its reduction: its replica's partner times out there, naming it
runs=$((runs + 1))
PPRUN_TEST_FAULT=2:B1.3:pause timeout 60 "$pprun_fault" "$tmp/f.json" --steps 2 --timeout 1 >"$tmp/out.txt" 2>&1
status=$?
if [ $status != 1 ] || ! grep -q 'rank 2 (device 1, replica 0)' "$tmp/out.txt"; then
    fail "a paused rank 2: exit $status"
fi
# A rank whose op fails mid-step (an error, as a failed kernel or transfer returns): every rank
# ends at once, well inside the timeout (the failure aborts the others' waits), and the error
# names the rank, its device and replica; in a B, and in its reduction (the partner waits there)
for spec in '3:B1.1:fail:rank 3 \(device 1, replica 1\).* during B1\.1' \
            '2:allreduce #1:fail:rank 2 \(device 1, replica 0\).* during allreduce #1'; do
    runs=$((runs + 1))
    fault=${spec%%:fail:*}:fail want=${spec#*:fail:}
    start=$(date +%s)
    PPRUN_TEST_FAULT=$fault timeout 60 "$pprun_fault" "$tmp/f.json" --steps 2 --timeout 20 >"$tmp/out.txt" 2>&1
    status=$?
    took=$(($(date +%s) - start))
    if [ $status != 1 ] || [ $took -gt 5 ] || grep -q 'steps in' "$tmp/out.txt" ||
       ! grep -qE "^pprun: error: \[$want" "$tmp/out.txt"; then
        fail "$fault: exit $status after $took s"
    fi
done
# what is not run is refused before any work: pipedream with replicas (its update after every B)
runs=$((runs + 1))
sed 's/"schedule": *"1f1b"/"schedule":"1f1b","async":"pipedream"/' "$tmp/f.json" >"$tmp/pd.json"
"$pprun" "$tmp/pd.json" --steps 1 >"$tmp/out.txt" 2>&1
[ $? = 1 ] && grep -q 'pipedream updates after every B' "$tmp/out.txt" && ! grep -q '^step' "$tmp/out.txt" ||
    fail "a pipedream plan with replicas"
# One process a rank: the world is devices x replicas, for --nproc and for a launcher's
# environment (torchrun's, Slurm's); a world of the right size goes on to the backend (which
# needs CUDA and a GPU a rank: here, without them, it stops there, before any work)
nproc() { # EXIT-STATUS EXPECTED-ERROR-REGEX ARGS...
    runs=$((runs + 1))
    local want=$1 re=$2
    shift 2
    timeout 20 "$@" >"$tmp/out.txt" 2>&1
    local status=$?
    [ $status = "$want" ] && grep -qE "^pprun: error: $re\$" "$tmp/out.txt" && ! grep -q '^step' "$tmp/out.txt" ||
        fail "$* (exit $status; expected $re)"
}
nproc 1 '--nproc 2: the plan has 2 devices x 2 replicas \(data_parallel\) = 4 ranks, one process each' \
    "$pprun" "$tmp/f.json" --nproc 2
nproc 1 '--nproc( 4)?: (the cuda backend is not built in this binary|0 GPUs are visible, one per process is needed|CUDA cannot start: .*)' \
    "$pprun" "$tmp/f.json" --nproc 4 --backend cuda
nproc 1 'the plan has 2 devices x 2 replicas \(data_parallel\) = 4 ranks, but the run has 2' \
    env RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" "$tmp/f.json"
nproc 1 'the plan has 2 devices x 2 replicas \(data_parallel\) = 4 ranks, but the run has 3' \
    env -u RANK SLURM_PROCID=2 SLURM_NTASKS=3 SLURM_LOCALID=0 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" "$tmp/f.json"
nproc 1 '(rank 3 of 4: a multi-process run under torchrun or srun needs the cuda backend.*|the cuda backend is not built in this binary)' \
    env RANK=3 WORLD_SIZE=4 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 CUDA_VISIBLE_DEVICES= "$pprun" "$tmp/f.json"
# --gpus spreads every rank, replicas included (rank q on GPU q mod N): up to devices x replicas
nproc 1 '--gpus 5: the plan has 2 devices x 2 replicas \(data_parallel\) = 4 ranks, one GPU at most each' \
    "$pprun" "$tmp/f.json" --gpus 5
nproc 1 '--gpus 4 (needs the cuda backend, which is not built in this binary|needs a GPU and none is visible|needs a GPU, and CUDA cannot start: .*)' \
    env CUDA_VISIBLE_DEVICES= "$pprun" "$tmp/f.json" --gpus 4
# the loader refuses a data-parallel plan ppcc would not write, naming the JSON path (of the
# version-1 lists, whose op positions the messages name)
"$ppcc" "$src/schedules/1f1b.pp" -D devices=2 -D data_parallel=2 -D hidden=8 -D batch=16 -D microbatches=4 \
    -D overlap=false -o "$tmp/f1.json" >"$tmp/out.txt" 2>&1 || fail "ppcc, overlap = false"
rejected() { # SED-EXPRESSION EXPECTED-LINE: the version-1 plan so edited is refused with that line
    runs=$((runs + 1))
    sed "$1" "$tmp/f1.json" >"$tmp/bad.json"
    "$pprun" "$tmp/bad.json" --steps 1 >"$tmp/out.txt" 2>&1
    local status=$?
    [ $status = 1 ] && grep -qxF "$2" "$tmp/out.txt" && ! grep -q '^step' "$tmp/out.txt" ||
        fail "the loader on '$1' (exit $status; expected: $2)"
}
refused() { rejected "$1" "pprun: error: $tmp/bad.json: $2"; } # the loader's: after the file's name
refused 's/"what": "stage", "stage": 0/"what": "shard", "stage": 0/' \
    'devices[0].ops[16].what: "shard", but pipeline.zero is false (only ZeRO-1 shards and gathers)'
refused 's/"device": 0, "ranks": \[0, 1\]/"device": 0, "ranks": [0, 2]/' \
    'devices[0].ops[16].ranks: must be [0 .. 1], the ranks of device 0'"'"'s 2 replicas'
refused 's/"stage": 1, "device": 1/"stage": 1, "device": 0/' \
    'devices[1].ops[16].device: 0, but the op is in device 1'"'"'s list'
refused 's/"stage": 1, "device": 1/"stage": 0, "device": 1/' \
    'devices[1].ops[16].stage: 0 is held by device 0, not device 1'
refused 's/"ranks":\[\[0,0\],\[0,1\]/"ranks":[[0,1],[0,0]/' 'pipeline.ranks[0]: must be [0, 0]: rank = device x 2 + replica'
refused 's/"ranks":\[\[0,0\],\[0,1\],/"ranks":[/' 'pipeline.ranks: 2 entries, the world is 2 devices x 2 replicas = 4 ranks'
refused 's/"stages": \[1\], "ranks": \[2, 3\]/"stages": [1], "ranks": [3, 2]/' \
    'devices[1].ranks: must be [2 .. 3], the ranks of device 1'"'"'s 2 replicas'
refused 's/"batch":16/"batch":12/' \
    'model.batch: 12 is not a multiple of pipeline.data_parallel x pipeline.microbatches (2 x 4)'
refused 's/"zero":false,//' 'pipeline: missing field "zero" (data_parallel is 2)'
refused 's/"version": 2/"version": 1/; s/"device": 0, "ranks": \[0, 1\]}/"device": 0, "ranks": [0, 1], "group": 50}/' \
    'devices[0].ops[16].group: an asynchronous reduction is of plan version 2'
# ... and the verifier, the rest (in version 2): a reduction posted ahead has its wait
rejected 's/"device": 0, "ranks": \[0, 1\]}/"device": 0, "ranks": [0, 1], "group": 50}/' \
    'pprun: error: device 0, op 16 (allreduce stage 0 {device 0 x 2 replicas}): asynchronous (group 50) but never waited: the update needs its sum' 
refused 's/"data_parallel":2/"data_parallel":3/' 'pipeline.ranks: 4 entries, the world is 2 devices x 3 replicas = 6 ranks'
# any other integer in the grid, negative or huge, is the same "must be" (not an internal bound)
refused 's/"ranks":\[\[0,0\]/"ranks":[[-1,0]/' 'pipeline.ranks[0]: must be [0, 0]: rank = device x 2 + replica'
refused 's/"stages": \[1\], "ranks": \[2, 3\]/"stages": [1], "ranks": [2, 1e300]/' \
    'devices[1].ranks: must be [2 .. 3], the ranks of device 1'"'"'s 2 replicas'
# a list's peers and rank name pipeline devices: a world rank there is "not a device", not "not a rank"
refused '0,/"peer": 1,/s//"peer": 3,/' \
    'devices[0].ops[1].peer: 3 is not a device (with data_parallel the lists name the pipeline devices of one replica, not world ranks)'
refused 's/{"rank": 1, "stages"/{"rank": 2, "stages"/' \
    'devices[1].rank: 2 is not a device (with data_parallel the lists name the pipeline devices of one replica, not world ranks)'
echo "$runs runs, $fails failed"
exit $((fails > 0))
