#!/usr/bin/env bash
# test_pprun_cli.sh PPRUN WRITE_PLAN — the pprun command line as users meet
# it: exit codes (0 ok, 1 bad plan or failed run/check, 2 usage), messages
# that name what is wrong, progress lines, --check, --trace, --dump files.
set -u
pprun=$1 write_plan=$2
. "$(dirname "$0")/../lib.sh"

"$write_plan" 1f1b-2x4 plan.json || exit 1

expect 0 '^usage: pprun PLAN.json' -- "$pprun" --help
expect 0 '^pprun [0-9]' -- "$pprun" --version
expect 2 'expected one plan file, got none' -- "$pprun"
expect 2 'expected one plan file, got several' -- "$pprun" plan.json plan.json
expect 2 "unknown option '--bogus'" -- "$pprun" plan.json --bogus
expect 2 "--steps: 'abc' is not an integer" -- "$pprun" plan.json --steps abc
expect 2 "--steps: '0' is not an integer" -- "$pprun" plan.json --steps 0
expect 2 "--steps: '3x' is not an integer" -- "$pprun" plan.json --steps 3x
expect 2 "--timeout: '-1' is not a number" -- "$pprun" plan.json --timeout -1
expect 2 "--timeout: 'nan' is not a number" -- "$pprun" plan.json --timeout nan
# the emulated link (docs/pprun.md, "Overlap"): bad values, and real links, are usage errors
expect 2 "^pprun: error: --link-latency: '-1' is not a number of seconds in \[0, 1000\]\$" -- "$pprun" plan.json --link-latency -1
expect 2 "^pprun: error: --link-latency: 'nan' is not a number of seconds in \[0, 1000\]\$" -- "$pprun" plan.json --link-latency nan
expect 2 "^pprun: error: --link-bandwidth: '0MB': must be more than 0 bytes per second\$" -- "$pprun" plan.json --link-bandwidth 0MB
expect 2 "^pprun: error: --link-bandwidth: '100': a size needs its unit, as in 100GB" -- "$pprun" plan.json --link-bandwidth 100
expect 2 "^pprun: error: --link-latency: the emulated link is the cpu backend's \(its threads transport\); --backend cuda runs on real links\$" -- \
    "$pprun" plan.json --link-latency 0.001 --backend cuda
expect 2 "^pprun: error: --link-bandwidth: the emulated link is the cpu backend's \(its threads transport\); --nproc runs on real links\$" -- \
    "$pprun" plan.json --link-bandwidth 1GB --nproc 2
expect 2 "^pprun: error: --link-latency given twice \('0.1', then '0.2'\)\$" -- "$pprun" plan.json --link-latency 0.1 --link-latency 0.2
expect 0 '^step 1/1 ' -- "$pprun" plan.json --backend cpu --link-latency 0.0001 --link-bandwidth 10GB
expect 2 "--backend: 'gpu' is not cpu or cuda" -- "$pprun" plan.json --backend gpu
expect 2 '--steps needs a value' -- "$pprun" plan.json --steps
# Every usage error reads "pprun: error: ...", as ppcc's do.
expect 2 "^pprun: error: unknown option '--bogus'" -- "$pprun" plan.json --bogus
expect 2 '^pprun: error: --steps needs a value' -- "$pprun" plan.json --steps
expect 2 '^pprun: error: expected one plan file, got none' -- "$pprun"
# --backend cuda without a GPU, and the default backend's notice, depend on the build
if "$pprun" --version | grep -q 'cuda'; then
    if [ "${CUDA_VISIBLE_DEVICES-unset}" = "" ] || ! command -v nvidia-smi >/dev/null 2>&1 ||
        ! nvidia-smi -L >/dev/null 2>&1; then
        # no GPU here (or hidden): the error and the fallback notice; without a driver CUDA
        # says why it cannot start (test_cuda_startup covers each case)
        nogpu='(no GPU is visible|CUDA cannot start: cudaError[A-Za-z]+: .*)'
        nogpu_notice='(no GPU visible|CUDA cannot start \(cudaError[A-Za-z]+: .*\)), running on the CPU'
        expect 1 "^pprun: error: --backend cuda: $nogpu\$" -- "$pprun" plan.json --backend cuda
        expect 0 "^pprun: $nogpu_notice\$" -- "$pprun" plan.json
        expect 0 "^pprun: $nogpu_notice\$" -- env CUDA_VISIBLE_DEVICES= "$pprun" plan.json
    fi
    expect 1 '^pprun: error: --backend cuda: (no GPU is visible|CUDA cannot start: cudaError[A-Za-z]+: .*)$' -- \
        env CUDA_VISIBLE_DEVICES= "$pprun" plan.json --backend cuda
else
    expect 1 '^pprun: error: the cuda backend is not built in this binary' -- "$pprun" plan.json --backend cuda
    checks=$((checks + 1))
    "$pprun" plan.json >out.txt 2>&1 && ! grep -q 'no GPU' out.txt || fail "a CPU-only build printed a GPU notice"
fi
expect 2 "--precision: 'fp16' is not fp32, tf32 or bf16" -- "$pprun" plan.json --precision fp16
# options only a GPU run honours are refused, never silently ignored: a usage error when the
# command line itself says cpu or --nproc, an error when the run would fall back to the CPU
expect 2 '^pprun: error: --precision bf16: the cpu backend computes in fp32' -- "$pprun" plan.json --backend cpu --precision bf16
expect 2 '^pprun: error: --precision tf32: the cpu backend computes in fp32' -- "$pprun" plan.json --precision tf32 --backend cpu
expect 2 '^pprun: error: --gpus 2: the cpu backend runs every device in one process' -- "$pprun" plan.json --backend cpu --gpus 2
expect 2 '^pprun: error: --gpus 2: with --nproc each process runs on one GPU of its own' -- "$pprun" plan.json --nproc 2 --gpus 2
expect 0 'steps in' -- "$pprun" plan.json --backend cpu --precision fp32 --gpus 1 --no-graph
if "$pprun" --version | grep -q 'cuda'; then
    # no GPU here; where no driver is installed CUDA says why (test_cuda_startup covers each case)
    gpu_missing='(needs a GPU and none is visible|needs a GPU, and CUDA cannot start: cudaError[A-Za-z]+: )'
else
    gpu_missing='needs the cuda backend, which is not built in this binary'
fi
expect 1 "^pprun: error: --precision bf16 $gpu_missing" -- env CUDA_VISIBLE_DEVICES= "$pprun" plan.json --precision bf16
expect 1 '^pprun: error: --gpus 3: the plan has 2 devices, one GPU at most each$' -- "$pprun" plan.json --gpus 3
expect 1 "^pprun: error: --gpus 2 $gpu_missing" -- env CUDA_VISIBLE_DEVICES= "$pprun" plan.json --gpus 2
expect 1 '^pprun: error: rank 0 of 2: --gpus 2: each rank of a multi-process run uses one GPU' -- \
    env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 CUDA_VISIBLE_DEVICES= "$pprun" plan.json --gpus 2
expect 2 "--nproc: '0' is not an integer" -- "$pprun" plan.json --nproc 0
expect 2 "--gpus: 'x' is not an integer" -- "$pprun" plan.json --gpus x
# launched by torchrun/srun-style variables: checked before any work
expect 1 'RANK is set but WORLD_SIZE is not' -- env RANK=0 "$pprun" plan.json
expect 1 '^pprun: error: WORLD_SIZE is set but RANK is not$' -- env -u RANK WORLD_SIZE=4 "$pprun" plan.json
expect 1 'SLURM_PROCID/SLURM_NTASKS is set but MASTER_ADDR' -- env -u RANK SLURM_PROCID=1 SLURM_NTASKS=2 "$pprun" plan.json
expect 1 "NCCL_COMM_ID='nohost' is not HOST:PORT" -- env RANK=0 WORLD_SIZE=2 NCCL_COMM_ID=nohost "$pprun" plan.json
expect 1 'RANK/WORLD_SIZE: rank 3 is not below the world size 2' -- env RANK=3 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" plan.json
expect 1 '^pprun: error: PPRUN_BOOT_FD=0 is not a listening socket \(' -- \
    env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 PPRUN_BOOT_FD=0 "$pprun" plan.json </dev/null
# --nproc refuses, before starting anything, what every child would fail on
# options that contradict each other are usage errors (exit 2), refused before the plan is
# read; what the machine or the plan cannot honour exits 1 (README: exit status)
expect 0 '^rank 1: check: .* ok ' -- "$pprun" plan.json --nproc 2 --backend cpu --check # socket pairs (test_pprun_nproc)
expect 2 '^pprun: error: --nproc 2: --trace is for single-process runs' -- "$pprun" plan.json --nproc 2 --trace t.json
expect 2 '^pprun: error: --nproc 2: --dump is for single-process runs' -- "$pprun" missing.json --nproc 2 --dump d
expect 2 '^pprun: error: --nproc 2: --timeline is for single-process runs' -- "$pprun" plan.json --timeline --nproc 2
expect 2 '^pprun: error: --nproc 2: every process reads the plan, and standard input can be read once' -- "$pprun" - --nproc 2
expect 2 '^pprun: error: --trace -: standard output carries the progress lines; name a file$' -- "$pprun" plan.json --trace -
# in a multi-process run started by a launcher, the environment (not the command line) says so
expect 1 '^pprun: error: (--dump, --trace and --timeline are for single-process runs|rank 0 of 2: .*)$' -- \
    env RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 "$pprun" plan.json --trace t.json
# An empty path is a usage error, as ppcc's; an option with a value is given once (the
# second used to win silently); flags may repeat; --gpus 1, --precision fp32 and --no-graph
# are satisfied by the CPU as they are (above), not ignored
expect 2 '^pprun: error: --trace: empty file name$' -- "$pprun" plan.json --trace ''
expect 2 '^pprun: error: --dump: empty directory name$' -- "$pprun" plan.json --dump ''
expect 2 "^pprun: error: --steps given twice \('2', then '3'\)\$" -- "$pprun" plan.json --steps 2 --steps=3
expect 2 "^pprun: error: --trace given twice \('a.json', then 'b.json'\)\$" -- "$pprun" plan.json --trace a.json --trace b.json
expect 2 "^pprun: error: --dump given twice \('a', then 'a'\)\$" -- "$pprun" plan.json --dump a --dump a
expect 2 "^pprun: error: --backend given twice \('cpu', then 'cuda'\)\$" -- "$pprun" plan.json --backend cpu --backend cuda
for o in --precision --gpus --nproc --timeout; do
    v=1; [ $o = --precision ] && v=fp32
    expect 2 "^pprun: error: $o given twice \('$v', then '$v'\)\$" -- "$pprun" plan.json $o $v $o $v
done
expect 0 'steps in' -- "$pprun" plan.json --backend cpu --check --check --no-graph --no-graph
# '-' reads the plan from standard input, named <stdin> in errors; '--' ends the options
expect 0 '^step 1/1 ' -- bash -c 'exec "$0" - --backend cpu <plan.json' "$pprun"
expect 0 '^step 2/2 ' -- bash -c 'cat plan.json | exec "$0" - --steps 2 --backend cpu' "$pprun"
cp plan.json ./-x.json
expect 0 '^step 1/1 ' -- "$pprun" --backend cpu -- -x.json
expect 2 "^pprun: error: unknown option '-x'\$" -- "$pprun" --backend cpu -x.json
rm -f ./-x.json
if "$pprun" --version | grep -q cuda; then
    expect 1 '^pprun: error: --nproc 3: the plan has 2 devices, one process each$' -- "$pprun" plan.json --nproc 3
    [ -d /proc/driver/nvidia/gpus ] ||
        expect 1 '^pprun: error: --nproc 2: (0 GPUs are visible, one per process is needed|CUDA cannot start: cudaError[A-Za-z]+: .*)$' -- "$pprun" plan.json --nproc 2 --backend cuda
fi
# a bad plan is refused first, before any notice about GPUs
echo '{' >broken.json
expect 1 '^broken.json:2:1: error: unexpected end of the file in an object' -- "$pprun" broken.json
checks=$((checks + 1))
head -1 out.txt | grep -q '^broken.json:2:1: error' || fail "something was printed before the plan's error"
expect 1 '^pprun: error: cannot open missing.json' -- "$pprun" missing.json
expect 1 '^<stdin>:2:1: error: unexpected end of the file in an object' -- bash -c 'exec "$0" - <broken.json' "$pprun"
expect 1 '^<stdin>:2:1: error: unexpected end of the file in an object' -- bash -c 'cat broken.json | exec "$0" -' "$pprun"
echo '{"format": "ppcc-plan", "version": 1} x' >garbage.json
expect 1 "^garbage.json:1:39: error: trailing characters after the JSON value: 'x'" -- "$pprun" garbage.json
sed 's/"peer":	1/"peer":	9/' plan.json >badpeer.json
expect 1 '^pprun: error: badpeer.json: devices\[0\]\.ops\[1\]\.peer: 9 is not a rank$' -- "$pprun" badpeer.json

# a run: one progress line per step, then --check passes
expect 0 'check: largest relative error .* ok' -- "$pprun" plan.json --steps 3 --check --backend cpu
checks=$((checks + 1))
[ "$(grep -Ec '^step [0-9]+/3  loss [0-9.]+  time [0-9.]+ ms  samples/s [0-9]+$' out.txt)" = 3 ] ||
    { fail "want 3 progress lines"; cat out.txt >&2; }

# a diverged run ends with an error naming the step (lr 100: the loss of step 3 is not finite), and
# no output is written; weights that blow up in the last update are an error too (lr 1e6)
sed 's/"lr":	0.05/"lr":	100/' plan.json >diverge.json
expect 1 '^pprun: error: step 3 of 5: the loss is (-?nan|inf): the training diverged' -- "$pprun" diverge.json --steps 5 --dump diverged
checks=$((checks + 1))
grep -q '^step 3/5' out.txt && fail "a non-finite loss was reported as a step"
checks=$((checks + 1))
[ ! -e diverged ] || fail "a diverged run wrote --dump"
sed 's/"lr":	0.05/"lr":	1e6/' plan.json >blowup.json
expect 1 '^pprun: error: after step 2 of 2 the parameters of layer 0 are not finite' -- "$pprun" blowup.json --steps 2

# out of memory: a plan that cannot fit under the address-space limit is refused before any
# allocation, with what it needs and what is left (the run used to abort() without a word);
# so is --check's single-device reference. Skipped where pprun cannot start under the limit
# (a sanitizer build maps terabytes of shadow memory).
if (ulimit -v 3000000 && "$pprun" --version) >/dev/null 2>&1; then
    sed 's/"hidden":	16,/"hidden":	16384,/' plan.json >huge.json
    expect 1 '^pprun: error: the run needs [0-9.]+ GiB of memory \(parameters, gradients and weight versions 8\.00 GiB, activations [0-9.]+ [KMG]iB, trained weights and op times 4\.00 GiB, other [0-9.]+ GiB\), more than the [0-9.]+ [MG]iB left under the address-space limit \(ulimit -v\)$' -- \
        bash -c 'ulimit -v 3000000 && exec "$0" huge.json' "$pprun"
    sed 's/"hidden":	16,/"hidden":	512,/; s/"batch":	32,/"batch":	262144,/' plan.json >bigbatch.json
    expect 1 '^pprun: error: --check needs [0-9.]+ GiB of memory for the single-device reference \(the whole batch of 262144 rows through 4 layers, and copies of the weights\), more than the [0-9.]+ [MG]iB left under the address-space limit \(ulimit -v\)$' -- \
        bash -c 'ulimit -v 3000000 && exec "$0" bigbatch.json --check' "$pprun"
    checks=$((checks + 1))
    grep -q '^step' out.txt && fail "the run started before --check's memory was checked"
else
    echo "pprun does not start under ulimit -v 3000000: memory checks skipped"
fi

# --help says what --timeout bounds, as docs/pprun.md does: every wait, and an op nothing waits for
expect 0 "seconds a wait may last before the run fails \(default 60\): a\$" -- "$pprun" --help
checks=$((checks + 1))
grep -q "receive, the barrier at a step's flush, a GPU step's" out.txt &&
    grep -q "nothing waits for fails after max(S, 100 x the longest op so far)" out.txt ||
    fail "--help: the --timeout line does not name the flush's barrier and the op limit"

# --trace: valid Chrome JSON, one X event per op and step
expect 0 'steps in' -- "$pprun" plan.json --steps 2 --trace trace.json
checks=$((checks + 1))
nops=$(grep -c '"op":' plan.json)
nx=$(grep -c '"ph":"X"' trace.json)
[ "$nx" = $((2 * nops)) ] || fail "trace has $nx events, want $((2 * nops))"
no_temporaries() {
    checks=$((checks + 1))
    local left
    left=$(find . -name '*.tmp*' | head -5)
    [ -z "$left" ] || fail "$1: temporaries left: $left"
}
no_temporaries "--trace"

# --dump writes the seven files
expect 0 'steps in' -- "$pprun" plan.json --steps 2 --dump dump
for f in x t w_init b_init w_final b_final loss; do
    checks=$((checks + 1))
    [ -s "dump/$f.npy" ] || fail "dump/$f.npy missing"
done
checks=$((checks + 1))
# x: [2, 32, 16] float32 = 4096 bytes of data after a 128-byte header
[ "$(stat -c %s dump/x.npy)" = $((128 + 2 * 32 * 16 * 4)) ] || fail "x.npy has the wrong size"
# ... streaming x and t step by step (regenerated, as the run made them):
# its memory does not grow with the steps.  The peak resident memory of
# 4000 steps stays within 8 MiB of one step's, where holding 4000 steps of
# x and t (15.6 MiB) would not; they once were held whole.  (Resident, not
# the address space: OpenBLAS maps 128 MiB per calling thread, and glibc's
# per-thread arenas come and go with timing.)
peak_rss_kib() { # ARGS...: runs pprun ARGS, prints its peak resident set in KiB
    python3 -c 'import resource, subprocess, sys
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if rc == 0 else -1)' "$pprun" "$@"
}
one=$(peak_rss_kib plan.json --backend cpu --steps 1 --dump probe)
many=$(peak_rss_kib plan.json --backend cpu --steps 4000 --dump big)
checks=$((checks + 1))
[ "$one" -gt 0 ] && [ "$many" -gt 0 ] && [ $((many - one)) -lt 8192 ] ||
    fail "--dump: peak resident memory $one KiB for 1 step, $many KiB for 4000"
checks=$((checks + 1))
[ "$(stat -c %s big/x.npy)" = $((128 + 4000 * 32 * 16 * 4)) ] && cmp -s big/w_init.npy dump/w_init.npy ||
    fail "--dump big: x.npy has the wrong size, or w_init.npy differs"
rm -rf big probe

# Outputs never harm a file (docs/outputs.md).
# They are checked before the run: a long run fails at once, naming the user's path.
expect 1 '^pprun: error: cannot create nodir/sub: the directory nodir does not exist$' -- timeout 30 "$pprun" plan.json --steps 1000000 --dump nodir/sub
checks=$((checks + 1)); ! grep -q '^step' out.txt || fail "--dump nodir/sub: trained before checking it"
cp plan.json in.json
expect 1 '^pprun: error: --trace ./in.json would overwrite the plan in.json$' -- "$pprun" in.json --trace ./in.json
checks=$((checks + 1)); cmp -s in.json plan.json || fail "--trace overwrote the plan"
# a path to standard output is refused as '-' is (the progress lines are there), by any
# name; /dev/null is not the progress lines, even when standard output is /dev/null too
for out in /dev/stdout /dev/fd/1 /proc/self/fd/1; do
    expect 1 "^pprun: error: --trace $out: standard output carries the progress lines; name a file\$" -- "$pprun" plan.json --trace $out
done
expect 0 '' -- bash -c 'exec "$0" plan.json --trace /dev/null >/dev/null' "$pprun"
expect 0 '' -- bash -c 'exec "$0" plan.json --trace /dev/null' "$pprun"
# A path to standard error or to another descriptor the shell opened is written through it
# (as ppcc's -o /dev/stdout is), never replaced: what was in the file stays, and so do
# pprun's own messages to it (the trace used to replace the file)
for out in /dev/stderr /dev/fd/2 /proc/self/fd/2 /dev/fd/3; do
    echo old >elog
    if [ $out = /dev/fd/3 ]; then
        "$pprun" plan.json --trace $out 3>>elog >/dev/null 2>&1 || fail "--trace $out 3>>elog failed"
    else
        "$pprun" plan.json --trace $out 2>>elog >/dev/null || fail "--trace $out 2>>elog failed"
    fi
    checks=$((checks + 1))
    python3 - elog <<'PY' || fail "--trace $out: elog lost its content or holds no trace"
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[0] == "old", lines[:2]
rest = [l for l in lines[1:] if not l.startswith("pprun: ")]  # its notices stay, before the trace
assert len(json.loads("\n".join(rest))["traceEvents"]) > 0
PY
done
if "$pprun" --version | grep -q cuda; then # the notice of a CUDA build without a GPU stays in it
    echo old >elog
    env CUDA_VISIBLE_DEVICES= "$pprun" plan.json --trace /dev/stderr 2>>elog >/dev/null
    checks=$((checks + 1)); grep -q '^pprun: .*running on the CPU$' elog || fail "--trace /dev/stderr: pprun's own stderr line is gone"
fi
rm -f elog
mkdir mine; echo keep >mine/notes.txt
expect 1 '^pprun: error: cannot replace mine: it holds notes.txt, which --dump does not write' -- "$pprun" plan.json --dump mine
expect 1 '^pprun: error: --trace dump/t.json lies inside --dump dump' -- "$pprun" plan.json --dump dump --trace dump/t.json
# a guessable temporary name (once PATH.tmp.PID) is never written through
echo victim >victim
expect 0 'steps in' -- bash -c 'ln -s victim trace.json.tmp.$$ && exec "$0" plan.json --trace trace.json' "$pprun"
checks=$((checks + 1)); [ "$(cat victim)" = victim ] || fail "--trace wrote through a planted link"
expect 1 'cannot replace dump: it holds x.npy.tmp.' -- bash -c 'ln -s ../victim dump/x.npy.tmp.$$ && exec "$0" plan.json --dump dump' "$pprun"
checks=$((checks + 1)); [ "$(cat victim)" = victim ] || fail "--dump wrote through a planted link"
rm -f trace.json.tmp.* dump/x.npy.tmp.*
# --dump is one set: a write failing midway (a file-size limit: x and t fit,
# w_init does not) leaves the previous set whole, and nothing else
"$pprun" plan.json --steps 2 --dump set >/dev/null || fail "cannot dump"
md5sum set/* >set.md5
expect 1 '^pprun: error: cannot write set/w_init.npy: File too large$' -- bash -c 'ulimit -f 3 && exec "$0" plan.json --steps 1 --dump set' "$pprun"
checks=$((checks + 1)); md5sum -c --quiet set.md5 || fail "a failed --dump damaged the previous set"
no_temporaries "--dump failing midway"
# all outputs or none: a --trace that fails leaves the previous --dump set
if mknod full c 1 7 2>/dev/null; then devfull=full; else devfull=/dev/full; fi
expect 1 "^pprun: error: cannot write $devfull: No space left on device\$" -- "$pprun" plan.json --steps 1 --dump set --trace "$devfull"
checks=$((checks + 1)); [ -c "$devfull" ] && md5sum -c --quiet set.md5 || fail "--trace $devfull failed, yet the device or --dump changed"
no_temporaries "--trace failing"
# SIGTERM during the run, and while writing (--trace to a FIFO nobody
# reads, after the set is staged), leaves the previous set and no temporary
wait_for() { # up to 10 s for the find expression to match
    for _ in $(seq 100); do [ -n "$(find . "$@" | head -1)" ] && return 0; sleep 0.1; done
    return 1
}
mkfifo stuck
exec 3<>stuck # a reader that never reads: the writer blocks
for case in run write; do
    if [ $case = run ]; then
        "$pprun" plan.json --steps 1000000 --dump set --trace t.json >/dev/null 2>&1 &
        pid=$!
        wait_for -maxdepth 1 -name '.set.tmp-*' || fail "SIGTERM $case: no temporary made"
    else
        "$pprun" plan.json --steps 200 --dump set --trace stuck >/dev/null 2>&1 &
        pid=$!
        wait_for -path './.set.tmp-*/loss.npy' || fail "SIGTERM $case: the set was not staged"
        sleep 0.2
    fi
    kill -TERM "$pid"
    wait "$pid"
    st=$?
    checks=$((checks + 1)); [ "$st" = 143 ] || fail "SIGTERM $case: exit $st, want 143"
    checks=$((checks + 1)); md5sum -c --quiet set.md5 && [ ! -e t.json ] && [ -p stuck ] ||
        fail "SIGTERM $case: outputs changed"
    no_temporaries "SIGTERM $case"
done
exec 3>&-

# an error line is one write: the ranks of a multi-process run share stderr, and their lines
# must not interleave mid-line (strace, where installed, counts the writes)
if command -v strace >/dev/null 2>&1 && strace -o /dev/null true 2>/dev/null; then
    checks=$((checks + 1))
    # (LeakSanitizer cannot run under ptrace, and says so on stderr)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -e trace=write -s 0 -o writes.txt \
        "$pprun" missing.json >/dev/null 2>&1
    n=$(grep -c '^[0-9]* *write(2,' writes.txt)
    [ "$n" = 1 ] || { fail "pprun's error line took $n writes to stderr"; sed 's/^/    /' writes.txt >&2; }
fi

finish test_pprun_cli
