#!/usr/bin/env bash
# test_pprun_nproc.sh PPCC PPRUN PPRUN_FAULT — one process a rank on the cpu
# backend (docs/multinode.md, "The cpu backend"): pprun --nproc joins the
# ranks by socket pairs, and the run — launcher, bootstrap, one-rank
# replays, replica reductions, the losses sent to the reporting rank —
# trains what the one-process run trains: the same step losses, printed
# once, and every rank's --check passes, for mlp and gpt plans with
# replicas, ZeRO-1, split backward and a mirrored dualpipe.  A rank killed,
# failing or hanging mid-step ends the run, named, well within the
# timeout (a hang: at it); a signal to the launcher, or its death, ends
# every rank; a bad PPRUN_PEER_FDS and the cpu backend under another
# launcher are refused.
set -u
ppcc=$1 pprun=$2 pprun_fault=$3
src=${PP_SOURCE_ROOT:?}
. "$src/tests/lib.sh"

# compile NAME SCHEDULE -D...: NAME.json
compile() {
    local name=$1 pp=$2
    shift 2
    "$ppcc" "$src/schedules/$pp" "$@" -o "$name.json" >ppcc.txt 2>&1 || { fail "ppcc $pp $*"; cat ppcc.txt >&2; return 1; }
}
# same RANKS NAME: --nproc RANKS --backend cpu prints the one-process run's step lines' losses,
# once, and every rank's check passes
same() {
    local ranks=$1 name=$2
    checks=$((checks + 1))
    if ! "$pprun" "$name.json" --backend cpu --steps 3 --check >one.txt 2>&1; then
        fail "$name: one process"; sed 's/^/    /' one.txt >&2; return
    fi
    if ! timeout 60 "$pprun" "$name.json" --nproc "$ranks" --backend cpu --steps 3 --check >many.txt 2>&1; then
        fail "$name: --nproc $ranks"; sed 's/^/    /' many.txt >&2; return
    fi
    local want got ok
    want=$(sed -n 's/^step \([0-9]*\/3\)  loss \([^ ]*\) .*/\1 \2/p' one.txt)
    got=$(sed -n 's/^step \([0-9]*\/3\)  loss \([^ ]*\) .*/\1 \2/p' many.txt)
    ok=$(grep -c '^rank [0-9]*: check: .* ok ' many.txt)
    if [ "$got" != "$want" ] || [ "$(echo "$got" | wc -l)" != 3 ] || [ "$ok" != "$ranks" ]; then
        fail "$name: --nproc $ranks: steps '$got' (one process: '$want'), $ok of $ranks checks ok"
        sed 's/^/    /' many.txt >&2
        return
    fi
    echo "$name: $ranks processes: $(echo $got | tr '\n' ' ')"
}
mlp=(-D hidden=8 -D microbatches=4)
compile dp2 1f1b.pp -D devices=2 -D data_parallel=2 "${mlp[@]}" -D batch=16 && same 4 dp2
compile zb3 zb-h1.pp -D devices=2 -D data_parallel=3 "${mlp[@]}" -D batch=24 && same 6 zb3
compile inter interleaved.pp -D devices=2 -D data_parallel=2 "${mlp[@]}" -D batch=16 && same 4 inter
compile dual dualpipe.pp -D devices=2 "${mlp[@]}" -D batch=16 && same 2 dual
compile dual2 dualpipe.pp -D devices=2 -D data_parallel=2 "${mlp[@]}" -D batch=16 && same 4 dual2
gpt=(-D layers=2 -D hidden=32 -D heads=2 -D seq=16 -D vocab=256 -D data=none -D microbatches=4)
compile gptz decoder-7b-64gpu.pp -D devices=2 -D data_parallel=2 "${gpt[@]}" -D layers=4 -D ffn=64 -D batch=8 -D model.eps=1e-6 &&
    same 4 gptz
compile gpt gpt.pp -D devices=2 -D data_parallel=2 "${gpt[@]}" -D batch=8 && same 4 gpt

# under a low descriptor limit the launcher raises it to what the pairs take, and a rank holds
# no more than that (its own ends are kept, not copied)
compile r13 1f1b.pp -D devices=1 -D data_parallel=13 -D hidden=8 -D microbatches=1 -D batch=13 &&
    expect 0 '^rank 12: check: .* ok ' -- bash -c 'ulimit -Sn 64 && exec "$0" r13.json --nproc 13 --backend cpu --check' \
        "$pprun"

# a rank that goes mid-step: the run ends at once (a hang: at the timeout), with the rank named
# ends SECONDS STATUS-REGEX PATTERN -- command...: it exits non-zero within SECONDS, its
# output matching PATTERN
ends() {
    local within=$1 pattern=$2
    shift 3
    checks=$((checks + 1))
    local t0=$SECONDS
    timeout 60 "$@" >out.txt 2>&1
    local got=$? took=$((SECONDS - t0))
    if [ "$got" = 0 ] || [ "$took" -gt "$within" ] || ! grep -Eq -- "$pattern" out.txt; then
        fail "$* exited $got after $took s (want non-zero within $within s, /$pattern/)"; sed 's/^/    /' out.txt >&2
    fi
}
# (the first to end is rank 3, or a rank that read the end of its connection and named it)
ends 5 '(^pprun: rank 3 was killed by signal 9; stopping the others$|waiting for rank 3 \(device 1, replica 1\): it (closed|broke) its connection)' -- \
    env PPRUN_TEST_FAULT=3:B1.1:kill "$pprun_fault" dp2.json --nproc 4 --backend cpu --steps 3 --timeout 20
ends 5 '^pprun: error: \[rank 3 \(device 1, replica 1\)\] test fault: the op failed' -- \
    env PPRUN_TEST_FAULT=3:B1.1:fail "$pprun_fault" dp2.json --nproc 4 --backend cpu --steps 3 --timeout 20
ends 12 'rank 3 \(device 1, replica 1\) within 3 s \(timeout\)' -- \
    env PPRUN_TEST_FAULT=3:B1.1:pause "$pprun_fault" dp2.json --nproc 4 --backend cpu --steps 3 --timeout 3

# a signal to the launcher stops every rank (it goes on to them), and so does the launcher's
# death by SIGKILL (each rank's parent-death signal): no rank is left running
# stopped SIGNAL STATUS: a launcher whose rank 3 hangs, sent SIGNAL after a second
stopped() {
    checks=$((checks + 1))
    local plan="signal-$$-$1.json"
    cp dp2.json "$plan"
    env PPRUN_TEST_FAULT=3:B1.1:pause "$pprun_fault" "$plan" --nproc 4 --backend cpu --steps 3 --timeout 30 \
        >out.txt 2>&1 &
    local launcher=$! up=0
    for _ in $(seq 50); do # until its 4 ranks are up
        up=$(ps -eo args | grep -c "[ ]$plan")
        [ "$up" -ge 5 ] && break
        sleep 0.1
    done
    kill -"$1" "$launcher"
    wait "$launcher"
    local got=$? left=1
    for _ in $(seq 30); do
        left=$(ps -eo args | grep -c "[ ]$plan")
        [ "$left" = 0 ] && break
        sleep 0.1
    done
    if [ "$up" -lt 5 ] || [ "$got" != "$2" ] || [ "$left" != 0 ]; then
        fail "SIG$1 to the launcher: $up processes up, exit $got (want $2), $left left after 3 s"
        sed 's/^/    /' out.txt >&2
    fi
}
stopped TERM 143 # (not SIGINT: a shell's background job ignores it)
stopped KILL 137
# a rank stopped (SIGSTOP, as a debugger does) does not keep the launcher waiting: the others
# time out and end, and the launcher's SIGTERM comes with a SIGCONT
checks=$((checks + 1))
cp dp2.json "sigstop-$$.json"
t0=$SECONDS
"$pprun" "sigstop-$$.json" --nproc 4 --backend cpu --steps 100000 --timeout 2 >out.txt 2>&1 &
launcher=$!
rank2=
for _ in $(seq 50); do
    for p in $(pgrep -f "[ ]sigstop-$$.json"); do
        [ "$p" != "$launcher" ] && tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'RANK=2' && rank2=$p
    done
    [ -n "$rank2" ] && break
    sleep 0.1
done
[ -n "$rank2" ] && kill -STOP "$rank2"
wait "$launcher"
got=$? took=$((SECONDS - t0))
left=$(ps -eo args | grep -c "[ ]sigstop-$$.json")
if [ -z "$rank2" ] || [ "$got" = 0 ] || [ "$took" -gt 15 ] || [ "$left" != 0 ]; then
    fail "a stopped rank 2 (pid ${rank2:-none}): the launcher exited $got after $took s, $left left"
    sed 's/^/    /' out.txt >&2
fi

# what only pprun --nproc hands a rank, and the cpu backend under another launcher
rank0=(env RANK=0 WORLD_SIZE=4 MASTER_ADDR=127.0.0.1 MASTER_PORT=1)
expect 1 "^pprun: error: rank 0 of 4: PPRUN_PEER_FDS='5,6' is not what pprun --nproc hands a rank" -- \
    "${rank0[@]}" PPRUN_PEER_FDS=5,6 "$pprun" dp2.json --backend cpu
expect 1 "^pprun: error: rank 0 of 4: PPRUN_PEER_FDS='-,0,1,2' is not what" -- \
    "${rank0[@]}" PPRUN_PEER_FDS=-,0,1,2 "$pprun" dp2.json --backend cpu </dev/null
# one socket given for every peer: each peer needs its own connection
expect 1 "^pprun: error: rank 0 of 4: PPRUN_PEER_FDS='-,([0-9]+),\\1,\\1' is not what" -- python3 -c '
import os, socket, subprocess, sys
a, b = socket.socketpair()
fd = str(a.fileno())
env = dict(os.environ, RANK="0", WORLD_SIZE="4", MASTER_ADDR="127.0.0.1", MASTER_PORT="1",
           PPRUN_PEER_FDS="-," + ",".join([fd] * 3))
sys.exit(subprocess.run([sys.argv[1], "dp2.json", "--backend", "cpu"], env=env, pass_fds=(a.fileno(),)).returncode)
' "$pprun"
expect 1 '^pprun: error: rank 0 of 4: a multi-process run under torchrun or srun needs the cuda backend' -- \
    "${rank0[@]}" "$pprun" dp2.json --backend cpu
# without --backend where there is no GPU at all: the ranks run on the CPU
if [ ! -d /proc/driver/nvidia/gpus ]; then
    expect 0 '^rank 3: check: .* ok ' -- "$pprun" dp2.json --nproc 4 --steps 2 --check
fi
finish test_pprun_nproc
